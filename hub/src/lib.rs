//! The hub: the WebSocket endpoint (`GET /ws`) the apps keep open.
//!
//! The access token (`Authorization: Bearer` or `?token=`) is checked before the upgrade:
//! a missing or bad token gets a 401 JSON error and no socket. One task per socket, tracked
//! so a shutdown can close every socket with 1012 ("service restart", the app reconnects
//! elsewhere) and wait for them. A semaphore bounds the sockets one process holds: past it
//! the upgrade is refused with 503 before any buffer is allocated.

mod connection;
mod control;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use api::caller::bearer_token;
use api::error::ApiError;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::auth::{AuthContext, AuthError, Principal, Role};
use domain::metrics::Metrics;
use domain::settings::HubSettings;
use domain::store::Store;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use registry::Close;

/// Read and write buffers of each socket. tungstenite's defaults (128 KiB write buffer) cost
/// ~136 KB per idle socket; 4 KiB buffers bring that to ~5.4 KB.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// WebSocket close code when the access token expires on a live socket.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// The sockets of this process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    settings: HubSettings,
    metrics: Metrics,
    store: Store,
    auth: Arc<AuthContext>,
    /// One permit per open socket.
    slots: Arc<Semaphore>,
    /// Live sockets by user, for control messages.
    registry: Arc<registry::Registry>,
    /// Every socket task, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Cancelled when the process shuts down; each socket then closes with 1012.
    shutdown: CancellationToken,
}

impl Hub {
    pub fn new(settings: HubSettings, metrics: Metrics, store: Store, auth: Arc<AuthContext>) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        Self {
            inner: Arc::new(Inner {
                settings,
                metrics,
                store,
                auth,
                slots,
                registry: Arc::default(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// `GET /ws`, ready to merge into the public listener's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new().route("/ws", get(upgrade)).with_state(self.clone())
    }

    /// Starts listening for control messages from other processes (until shutdown).
    pub fn spawn_control_listener(&self) {
        let inner = &self.inner;
        tokio::spawn(control::listen(inner.store.clone(), inner.registry.clone(), inner.shutdown.clone()));
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
        tokio::time::timeout(timeout, self.inner.tasks.wait()).await.is_ok()
    }
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// # `GET /ws`
async fn upgrade(
    State(hub): State<Hub>,
    parts: Parts,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let inner = &hub.inner;
    if inner.shutdown.is_cancelled() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "this server is restarting")
            .with("retryable", true)
            .into_response();
    }
    let query_token = query.ok().and_then(|Query(q)| q.token);
    let principal = match authenticate(inner, &parts, query_token.as_deref()).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "not_a_websocket_upgrade", rejection.body_text())
                .into_response();
        }
    };
    let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "hub_full",
            "this server holds its maximum of sockets",
        )
        .with("retryable", true)
        .into_response();
    };
    let max_frame = inner.settings.max_frame_bytes;
    upgrade
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(SOCKET_BUFFER_BYTES * 16)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let inner = hub.inner.clone();
            async move {
                let tasks = inner.tasks.clone();
                tasks.spawn(async move {
                    connection::run(socket, &inner, principal).await;
                    drop(permit);
                });
            }
        })
}

/// Apps only: the token must belong to a customer or a mitra, never an operator.
async fn authenticate(
    inner: &Inner,
    parts: &Parts,
    query_token: Option<&str>,
) -> Result<Principal, ApiError> {
    let token = match bearer_token(parts)? {
        Some(token) => token,
        None => query_token.filter(|t| !t.is_empty()).ok_or(AuthError::MissingToken)?,
    };
    let principal = domain::auth::session::authenticate(&inner.store, &inner.auth.keys, token).await?;
    if principal.role == Role::Cc {
        return Err(AuthError::WrongRole(Role::Cc).into());
    }
    Ok(principal)
}
