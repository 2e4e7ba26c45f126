//! REST edges of Bestie Hub.
//!
//! Two listeners on two ports: the public one for the apps (`/api/...`, and the hub's `/ws`
//! when that role runs) and the internal one for the control center and `/metrics`, which
//! can stay off the internet. Handlers are thin: extract, call one domain function, map
//! the result. Every response outside 2xx has the body of [`error::ApiError`].

pub mod error;
pub mod extract;
pub mod health;
pub mod layers;

use axum::Router;
use axum::routing::get;
use domain::metrics::Metrics;
use domain::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
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
pub fn public_routes() -> Router<AppState> {
    Router::new()
}

/// The REST routes of the internal listener (control center).
pub fn internal_routes() -> Router<AppState> {
    Router::new()
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
        .with_state(state.clone());
    layers::wrap(router, listener, state.metrics)
}
