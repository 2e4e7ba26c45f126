//! REST edges of Bestie Hub.
//!
//! Two listeners on two ports: the public one for the apps (`/api/...`, and the hub's `/ws`
//! when that role runs) and the internal one for the control center and `/metrics`, which
//! can stay off the internet. Handlers are thin: extract, call one domain function, map
//! the result. Every response outside 2xx has the body of [`error::ApiError`]. The routers
//! are built from the handlers' OpenAPI annotations, and each listener serves its own
//! document ([`openapi`]).

pub mod bodies;
pub mod caller;
pub mod client_addr;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;
pub mod layers;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod schema;

use std::sync::Arc;

use axum::Router;
use domain::Store;
use domain::auth::AuthContext;
use domain::metrics::Metrics;
use utoipa_axum::routes;

use crate::openapi::Routes;

/// Largest request body accepted, in bytes. Every body we take is a small JSON object.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach: one `Arc` to the process's [`AppContext`], so the state a
/// request extracts (its handler and each extractor take a clone) costs one atomic
/// increment, whatever the context holds.
pub type AppState = Arc<AppContext>;

pub struct AppContext {
    pub store: Store,
    pub metrics: Metrics,
    pub auth: Arc<AuthContext>,
    /// What the flows need: the job queue, the payment provider, event settings.
    pub services: Arc<domain::services::Services>,
    /// The available-mitra count in memory (the availability poll's answer).
    pub availability: domain::presence::AvailabilityView,
    /// Each listener's OpenAPI document, set by [`finish`].
    pub documents: openapi::Documents,
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

/// The REST routes of the public listener (apps), documented.
pub fn public_routes(state: &AppState) -> Routes {
    use routes::{auth, availability, chat, devices, extensions, pairing, payments, presence};
    let sign_in = Routes::default()
        .routes(routes!(auth::request_otp))
        .routes(routes!(auth::verify_otp))
        .routes(routes!(auth::mitra_login))
        .routes(routes!(auth::app_refresh));
    Routes::default()
        .merge(rate_limit::sign_in_limit(sign_in, &state.auth.settings))
        .routes(routes!(auth::app_logout))
        .routes(routes!(devices::register, devices::unregister))
        .routes(routes!(presence::status, presence::set_status))
        .routes(routes!(availability::mitra_availability))
        .routes(routes!(payments::create))
        .routes(routes!(payments::get))
        .routes(routes!(payments::confirm))
        .routes(routes!(payments::cancel))
        .routes(routes!(payments::pricing))
        .routes(routes!(pairing::start_blast))
        .routes(routes!(pairing::start_returning))
        .routes(routes!(pairing::cancel))
        .routes(routes!(pairing::fallback_to_blast))
        .routes(routes!(pairing::accept))
        .routes(routes!(pairing::decline))
        .routes(routes!(pairing::status))
        .routes(routes!(pairing::open_offers))
        .routes(routes!(chat::list))
        .routes(routes!(chat::get))
        .routes(routes!(chat::messages, chat::send))
        .routes(routes!(chat::receipts))
        .routes(routes!(chat::active))
        .routes(routes!(chat::mitra_active))
        .routes(routes!(chat::customer_end))
        .routes(routes!(chat::mitra_end))
        .routes(routes!(chat::closing_message))
        .routes(routes!(chat::public_config))
        .routes(routes!(extensions::request_extension))
        .routes(routes!(extensions::pending))
        .routes(routes!(extensions::approve_extension))
        .routes(routes!(extensions::reject_extension))
}

/// The REST routes of the internal listener (control center), documented.
pub fn internal_routes(state: &AppState) -> Routes {
    use routes::{accounts, auth, config, customers, failures, operations, operators};
    let sign_in =
        Routes::default().routes(routes!(auth::operator_login)).routes(routes!(auth::operator_refresh));
    Routes::default()
        .merge(rate_limit::sign_in_limit(sign_in, &state.auth.settings))
        .routes(routes!(auth::operator_logout))
        .routes(routes!(accounts::create_mitra, operations::list_mitras))
        .routes(routes!(operations::reset_password))
        .routes(routes!(operations::live_sessions))
        .routes(routes!(operations::early_ends))
        .routes(routes!(operations::review_flags))
        .routes(routes!(operations::resolve_review_flag))
        .routes(routes!(operators::list_operators, operators::create_operator))
        .routes(routes!(operators::deactivate_operator))
        .routes(routes!(operators::reactivate_operator))
        .routes(routes!(operators::audit_log))
        .routes(routes!(operators::change_password))
        .routes(routes!(accounts::deactivate_mitra))
        .routes(routes!(accounts::reactivate_mitra))
        .routes(routes!(config::list))
        .routes(routes!(config::changes))
        .routes(routes!(config::update, config::patch))
        .routes(routes!(failures::list))
        .routes(routes!(failures::action))
        .routes(routes!(failures::mitra_activity))
        .routes(routes!(failures::mitra_activity_log))
        .routes(routes!(customers::list_customers))
        .routes(routes!(customers::get_customer))
        .routes(routes!(customers::block_customer))
        .routes(routes!(customers::unblock_customer))
        .routes(routes!(customers::list_payments))
        .routes(routes!(customers::export_payments))
        .routes(routes!(customers::overview))
}

/// Finishes a listener's router: health routes, `/metrics` on the internal listener, the
/// listener's OpenAPI document (of exactly the routes it serves), JSON errors for unknown
/// routes and methods, request ids, tracing and request metrics.
pub fn finish(listener: Listener, routes: Routes, state: AppState) -> Router {
    let mut routes = routes.merge(health::routes());
    routes = match listener {
        Listener::Public => routes.routes(routes!(openapi::public_document)),
        Listener::Internal => {
            routes.routes(routes!(health::metrics)).routes(routes!(openapi::internal_document))
        }
    };
    let (router, api) = routes.split_for_parts();
    state.documents.set(listener, openapi::Document::new(listener, api));
    let router = match listener {
        Listener::Public => router,
        Listener::Internal => router.merge(console::routes()),
    };
    let router = router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state.clone());
    layers::wrap(router, listener, state.metrics.clone())
}
