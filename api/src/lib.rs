//! REST edges of Bestie Hub.
//!
//! Two listeners on two ports: the public one for the apps (`/api/...`, and the hub's `/ws`
//! when that role runs) and the internal one for the control center and `/metrics`, which
//! can stay off the internet. Handlers are thin: extract, call one domain function, map
//! the result. Every response outside 2xx has the body of [`error::ApiError`].

pub mod caller;
pub mod client_addr;
pub mod error;
pub mod extract;
pub mod health;
pub mod layers;
pub mod rate_limit;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use domain::auth::AuthContext;
use domain::metrics::Metrics;
use domain::store::Store;

/// Largest request body accepted, in bytes. Every body we take is a small JSON object.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub auth: Arc<AuthContext>,
    /// What the flows need: the job queue, the payment provider, event settings.
    pub services: domain::services::Services,
    /// The available-mitra count in memory (the availability poll's answer).
    pub availability: domain::presence::AvailabilityView,
}

/// Which listener a router serves; a label on metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Public,
    Internal,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
        }
    }
}

/// The REST routes of the public listener (apps).
pub fn public_routes(state: &AppState) -> Router<AppState> {
    use routes::{auth, availability, chat, devices, pairing, payments, presence};
    let sign_in = Router::new()
        .route("/api/auth/customer/otp", post(auth::request_otp))
        .route("/api/auth/customer/verify", post(auth::verify_otp))
        .route("/api/auth/mitra/login", post(auth::mitra_login))
        .route("/api/auth/refresh", post(auth::app_refresh));
    Router::new()
        .merge(rate_limit::sign_in_limit(sign_in, &state.auth.settings))
        .route("/api/auth/logout", post(auth::app_logout))
        .route("/api/shared/devices", put(devices::register))
        .route("/api/mitra/status", get(presence::status).post(presence::set_status))
        .route("/api/client/mitra-availability", get(availability::mitra_availability))
        .route("/api/client/payment-sessions", post(payments::create))
        .route("/api/client/payment-sessions/{id}", get(payments::get))
        .route("/api/client/payment-sessions/{id}/confirm", post(payments::confirm))
        .route("/api/client/payment-sessions/{id}/cancel", post(payments::cancel))
        .route("/api/client/chat-requests", post(pairing::start_blast))
        .route("/api/client/chat-requests/returning", post(pairing::start_returning))
        .route("/api/client/chat-requests/cancel", post(pairing::cancel))
        .route(
            "/api/client/chat-requests/{payment_session_id}/fallback-to-blast",
            post(pairing::fallback_to_blast),
        )
        .route("/api/mitra/chat-requests/{id}/accept", post(pairing::accept))
        .route("/api/mitra/chat-requests/{id}/decline", post(pairing::decline))
        .route("/api/mitra/chat-requests/{id}/status", get(pairing::status))
        .route("/api/shared/chat-sessions", get(chat::list))
        .route("/api/shared/chat-sessions/{id}", get(chat::get))
        .route("/api/shared/chat-sessions/{id}/messages", get(chat::messages).post(chat::send))
        .route("/api/shared/chat-sessions/{id}/receipts", post(chat::receipts))
        .route("/api/client/chat-sessions/active", get(chat::active))
        .route("/api/client/chat-sessions/{id}/end", post(chat::customer_end))
        .route("/api/mitra/chat-requests/sessions/{id}/end", post(chat::mitra_end))
        .route("/api/shared/chat-sessions/{id}/closing-message", post(chat::closing_message))
        .route("/api/shared/config", get(chat::public_config))
        .route("/api/client/chat-sessions/{id}/extension", post(chat::request_extension))
        .route("/api/mitra/extension-requests/{id}/approve", post(chat::approve_extension))
        .route("/api/mitra/extension-requests/{id}/reject", post(chat::reject_extension))
}

/// The REST routes of the internal listener (control center).
pub fn internal_routes(state: &AppState) -> Router<AppState> {
    use routes::{accounts, auth, config, failures, operations};
    let sign_in = Router::new()
        .route("/internal/auth/login", post(auth::operator_login))
        .route("/internal/auth/refresh", post(auth::operator_refresh));
    Router::new()
        .merge(rate_limit::sign_in_limit(sign_in, &state.auth.settings))
        .route("/internal/auth/logout", post(auth::operator_logout))
        .route("/internal/mitras", post(accounts::create_mitra).get(operations::list_mitras))
        .route("/internal/mitras/{id}/reset-password", post(operations::reset_password))
        .route("/internal/sessions/live", get(operations::live_sessions))
        .route("/internal/early-ends", get(operations::early_ends))
        .route("/internal/review-flags", get(operations::review_flags))
        .route("/internal/mitras/{id}/deactivate", post(accounts::deactivate_mitra))
        .route("/internal/mitras/{id}/reactivate", post(accounts::reactivate_mitra))
        .route("/internal/config", get(config::list))
        .route("/internal/config/changes", get(config::changes))
        .route("/internal/config/{key}", put(config::update).patch(config::update))
        .route("/internal/failed-pairings", get(failures::list))
        .route("/internal/failed-pairings/{id}/action", post(failures::action))
        .route("/internal/mitra-activity", get(failures::mitra_activity))
}

/// Finishes a listener's router: health routes, `/metrics` on the internal listener, JSON
/// errors for unknown routes and methods, request ids, tracing and request metrics.
pub fn finish(listener: Listener, routes: Router<AppState>, state: AppState) -> Router {
    let mut router = routes.merge(health::routes());
    if listener == Listener::Internal {
        router = router.route("/metrics", get(health::metrics));
    }
    let router = router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    layers::wrap(router, listener, state.metrics)
}
