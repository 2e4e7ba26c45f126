//! The hub: the WebSocket endpoint (`GET /ws`) the apps keep open.
//!
//! The access token (`Authorization: Bearer` or `?token=`) is checked before the upgrade:
//! a missing or bad token gets a 401 JSON error and no socket. One task per socket, tracked
//! so a shutdown can close every socket with 1012 ("service restart", the app reconnects
//! elsewhere) and wait for them. A semaphore bounds the sockets one process holds: past it
//! the upgrade is refused with 503 before any buffer is allocated.

mod commands;
mod connection;
mod control;
mod instance;
mod protocol;
mod registry;
mod user_slots;

use std::sync::Arc;
use std::time::Duration;

use api::caller::bearer_token;
use api::error::ApiError;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use domain::Store;
use domain::auth::{AuthContext, AuthError, Principal, Role};
use domain::broker;
use domain::broker::StreamId;
use domain::metrics::Metrics;
use domain::settings::{HubSettings, PresenceSettings};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use commands::{Decoded, decode_command};
pub use registry::{CLOSE_SLOW_CONSUMER, Close};

/// Write buffer of each socket. tungstenite's defaults (128 KiB buffers) cost ~136 KB per
/// idle socket.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;
/// Read buffer of each socket, allocated up front for every socket: app commands are small
/// JSON, and a larger frame only takes more reads (measured in docs/BENCHMARKS.md).
const SOCKET_READ_BUFFER_BYTES: usize = 2 * 1024;

/// Close code when the access token expires on a live socket.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code when the client sent nothing, not even a pong, for `hub.idle_timeout_s`.
pub const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4008;
/// Close code when a client keeps sending over its command rate limit.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// Close code for a frame over `hub.max_frame_bytes`.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// Refused commands in a row (each answered with a `rate_limited` error) before the close.
pub const MAX_RATE_LIMIT_STRIKES: u32 = 10;

/// The sockets of this process.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    settings: HubSettings,
    presence: PresenceSettings,
    metrics: Metrics,
    store: Store,
    /// For the flows a connection starts (offering open requests to a mitra who connects).
    services: Arc<domain::services::Services>,
    auth: Arc<AuthContext>,
    /// This process's name in Redis: its inbox, its lease, the routes to it.
    instance_id: Arc<str>,
    /// One permit per open socket.
    slots: Arc<Semaphore>,
    /// Open sockets per user (`max_sockets_per_user`).
    user_slots: Arc<user_slots::UserSlots>,
    /// Live sockets by user.
    registry: Arc<registry::Registry>,
    /// Route changes waiting for the route lanes (taken when they start).
    route_ops: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<registry::RouteOp>>>,
    /// Every socket task, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Cancelled when the process shuts down; each socket then closes with 1012.
    shutdown: CancellationToken,
}

impl Hub {
    pub fn new(
        settings: HubSettings,
        presence: PresenceSettings,
        services: Arc<domain::services::Services>,
        auth: Arc<AuthContext>,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        let user_slots = user_slots::UserSlots::new(settings.max_sockets_per_user);
        let (route_tx, route_rx) = tokio::sync::mpsc::unbounded_channel();
        let instance_id: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let metrics = services.metrics.clone();
        Self {
            inner: Arc::new(Inner {
                settings,
                presence,
                metrics: metrics.clone(),
                store: services.store.clone(),
                services,
                auth,
                instance_id,
                slots,
                user_slots,
                registry: Arc::new(registry::Registry::new(route_tx, metrics)),
                route_ops: std::sync::Mutex::new(Some(route_rx)),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// `GET /ws` with its OpenAPI description, ready to merge into the public listener's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> OpenApiRouter<S> {
        OpenApiRouter::default().routes(routes!(upgrade)).with_state(self.clone())
    }

    /// This process's instance id in Redis.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Opens the inbox and starts the background tasks: lease heartbeat, inbox reader,
    /// route task, control listener. Call once, before serving sockets.
    pub async fn start(&self) -> Result<(), domain::StoreError> {
        let inner = &self.inner;
        let keep_ms = inner.presence.lease_ms.saturating_mul(6);
        broker::open_inbox(&inner.store, &inner.instance_id, keep_ms).await?;
        broker::heartbeat(&inner.store, &inner.instance_id, inner.presence.lease_ms).await?;
        let route_ops = inner.route_ops.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(route_ops) = route_ops {
            tokio::spawn(instance::apply_routes(inner.clone(), route_ops));
        }
        tokio::spawn(instance::heartbeat(inner.clone(), inner.shutdown.clone()));
        tokio::spawn(instance::read_inbox(inner.clone(), inner.shutdown.clone()));
        tokio::spawn(control::listen(inner.store.clone(), inner.registry.clone(), inner.shutdown.clone()));
        Ok(())
    }

    /// Closes every socket with 1012 and waits up to `timeout` for their tasks to end.
    /// Returns false when some were still running at the deadline.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        let drained = tokio::time::timeout(timeout, self.inner.tasks.wait()).await.is_ok();
        // Leave presence at once rather than waiting for the lease to run out.
        if let Err(error) = broker::retire(&self.inner.store, &self.inner.instance_id).await {
            tracing::warn!(%error, "could not retire the hub instance; its lease will run out");
        }
        drained
    }
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    /// The id of the last event the app processed: the server replays what came after.
    last_event_id: Option<String>,
}

api::route_errors! {
    UpgradeErrors: AppUser, [Query];
    400 => [invalid_last_event_id, not_a_websocket_upgrade];
    429 => [too_many_sockets];
    503 => [shutting_down, hub_full];
}

/// The WebSocket upgrade: the app's one socket for events and chat commands.
///
/// The token (`Authorization: Bearer` or `?token=`) is checked before the upgrade. Frames,
/// resume rules and close codes are specified in docs/PROTOCOL.md.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "websocket",
    operation_id = "websocket",
    params(
        ("token" = Option<String>, Query, description = "the access token, when the client cannot send \
            `Authorization`"),
        ("last_event_id" = Option<String>, Query, description = "the id of the last event processed \
            (`<ms>-<seq>`): the events after it are replayed first"),
    ),
    security(("bearer" = ["customer", "mitra"]), ("query_token" = ["customer", "mitra"])),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open (docs/PROTOCOL.md)"),
        UpgradeErrors,
    )
)]
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
    let Ok(Query(query)) = query else {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "the query string could not be read")
            .into_response();
    };
    let principal = match authenticate(inner, &parts, query.token.as_deref()).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let last_event_id = query.last_event_id.filter(|id| !id.is_empty());
    if last_event_id.as_deref().is_some_and(|id| StreamId::parse(id).is_none()) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
            "last_event_id must look like 1700000000000-0",
        )
        .into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "not_a_websocket_upgrade", rejection.body_text())
                .into_response();
        }
    };
    let Some(user_slot) = inner.user_slots.try_take(principal.id) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            "this account holds its maximum of sockets on this server; close one first",
        )
        .with("max_sockets_per_user", inner.settings.max_sockets_per_user)
        .into_response();
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
        .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(max_frame * 2 + SOCKET_BUFFER_BYTES)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let inner = hub.inner.clone();
            // With `hub=debug`, the socket's log lines carry who it is (never the token). Not at
            // info: an enabled span costs each idle socket ~400 bytes (measured: 8.6 → 9.0 KB).
            let span =
                tracing::debug_span!("socket", user_id = %principal.id, role = principal.role.as_str());
            async move {
                let tasks = inner.tasks.clone();
                tasks.spawn(
                    async move {
                        connection::run(socket, &inner, principal, last_event_id).await;
                        drop((permit, user_slot));
                    }
                    .instrument(span),
                );
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
