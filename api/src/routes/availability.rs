//! The customer app's availability poll (every 5 s per customer on the home screen).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Customer;
use crate::error::ApiError;

/// # `GET /api/client/mitra-availability`
/// `{available, count}`: mitras online and below the cap. Answered from the process's
/// in-memory view of Redis (kept fresh by Redis pub/sub; Redis itself when the view is
/// stale): no Postgres query on this path.
pub async fn mitra_availability(
    State(state): State<AppState>,
    _customer: Customer,
) -> Result<Json<Value>, ApiError> {
    let count = domain::presence::available_mitras(&state.store, &state.availability).await?;
    let answer = if count > 0 { "available" } else { "none" };
    state.metrics.availability_polls.with_label_values(&[answer]).inc();
    Ok(Json(json!({ "available": count > 0, "count": count })))
}
