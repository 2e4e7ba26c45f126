//! `/healthz` (the process answers), `/readyz` (Redis and Postgres answer) and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// How long readiness waits for each store before calling it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// # `GET /healthz`
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// # `GET /readyz`
/// 200 when both stores answer; 503 `not_ready` with a per-store `checks` map otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.check_postgres()),
        tokio::time::timeout(CHECK_TIMEOUT, state.store.check_redis()),
    );
    let verdict = |result: Result<Result<(), _>, _>| match result {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "down",
        Err(_) => "timeout",
    };
    let checks = json!({ "postgres": verdict(postgres), "redis": verdict(redis) });
    if checks.as_object().is_some_and(|c| c.values().all(|v| v == "ok")) {
        Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "a dependency is not reachable")
            .with("retryable", true)
            .with("checks", checks)
            .into_response()
    }
}

/// # `GET /metrics` (internal listener)
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
