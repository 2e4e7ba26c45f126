//! The hub: the WebSocket endpoint (`GET /ws`) the apps keep open.
//!
//! One task per socket, tracked so a shutdown can close every socket with 1012 ("service
//! restart", the app reconnects elsewhere) and wait for them. A semaphore bounds the
//! sockets one process holds: past it the upgrade is refused with 503 before any buffer is
//! allocated.

mod connection;

use std::sync::Arc;
use std::time::Duration;

use api::error::ApiError;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::metrics::Metrics;
use domain::settings::HubSettings;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Read and write buffers of each socket. tungstenite's defaults (128 KiB write buffer) cost
/// ~136 KB per idle socket; 4 KiB buffers bring that to ~5.4 KB.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// The sockets of this process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    settings: HubSettings,
    metrics: Metrics,
    /// One permit per open socket.
    slots: Arc<Semaphore>,
    /// Every socket task, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Cancelled when the process shuts down; each socket then closes with 1012.
    shutdown: CancellationToken,
}

impl Hub {
    pub fn new(settings: HubSettings, metrics: Metrics) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        Self {
            inner: Arc::new(Inner {
                settings,
                metrics,
                slots,
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// `GET /ws`, ready to merge into the public listener's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/ws", get(upgrade))
            .with_state(self.clone())
    }

    /// Sockets open on this process.
    pub fn connection_count(&self) -> usize {
        self.inner.settings.max_connections - self.inner.slots.available_permits()
    }

    /// Closes every socket with 1012 and waits up to `timeout` for their tasks to end.
    /// Returns false when some were still running at the deadline.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_ok()
    }
}

/// # `GET /ws`
async fn upgrade(State(hub): State<Hub>, upgrade: WebSocketUpgrade) -> Response {
    if hub.inner.shutdown.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this server is restarting",
        )
        .with("retryable", true)
        .into_response();
    }
    let Ok(permit) = hub.inner.slots.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hub_full",
            "this server holds its maximum of sockets",
        )
        .with("retryable", true)
        .into_response();
    };
    let max_frame = hub.inner.settings.max_frame_bytes;
    upgrade
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(SOCKET_BUFFER_BYTES * 16)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let inner = hub.inner.clone();
            let task = connection::run(socket, inner.metrics.clone(), inner.shutdown.child_token());
            async move {
                inner.tasks.spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
        })
}
