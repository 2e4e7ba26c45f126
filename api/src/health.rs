//! `/healthz` (the process answers), `/readyz` (Redis and Postgres answer) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::Routes;

/// `/healthz` and `/readyz`, served on both listeners.
pub fn routes() -> Routes {
    Routes::default().routes(routes!(healthz)).routes(routes!(readyz))
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, body = Alive, description = "the process answers", example = json!({"status": "ok"})),
    )
)]
async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// `/healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Alive {
    #[schema(pattern = "^ok$", example = "ok")]
    status: &'static str,
}

/// `/readyz`'s answer when both stores answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(pattern = "^ready$", example = "ready")]
    status: &'static str,
    checks: domain::sampler::Readiness,
}

crate::route_errors! {
    ReadyErrors: Anyone, [];
    503 => [not_ready];
}

/// Both stores answer.
///
/// 200 when Postgres and Redis answer; 503 `not_ready` with a per-store `checks` map
/// (`ok`, `down` or `timeout` each) otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Ready, description = "both stores answer",
            example = json!({"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}})),
        ReadyErrors,
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let checks = domain::sampler::readiness(&state.store, &state.metrics).await;
    if checks.ready() {
        Json(Ready { status: "ready", checks }).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "a dependency is not reachable")
            .with("retryable", true)
            .with("checks", json!(checks))
            .into_response()
    }
}

/// Prometheus metrics of this process (internal listener).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, body = String, content_type = "text/plain",
            description = "the Prometheus text format"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
