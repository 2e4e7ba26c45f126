//! The customer app's availability poll (every 5 s per customer on the home screen).

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::caller::Customer;
use crate::error::ApiError;

crate::route_errors! { AvailabilityErrors: Customer, [] }

/// How many mitras are online and below the cap (poll every 5 s on the home screen).
///
/// Answered from the process's in-memory view of Redis (kept fresh by Redis pub/sub;
/// Redis itself when the view is stale): no Postgres query on this path.
#[utoipa::path(
    get,
    path = "/api/client/mitra-availability",
    tag = "availability",
    security(("bearer" = ["customer"])),
    responses(
        (status = 200, body = Availability, description = "how many mitras could take a chat now",
            example = json!({"available": true, "count": 3})),
        AvailabilityErrors,
    )
)]
pub async fn mitra_availability(
    State(state): State<AppState>,
    _customer: Customer,
) -> Result<Json<Availability>, ApiError> {
    let count = domain::presence::available_mitras(&state.store, &state.availability).await?;
    state.metrics.availability_poll_answered(count > 0);
    Ok(Json(Availability { available: count > 0, count }))
}

/// The poll's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Availability {
    /// At least one mitra could take a chat now.
    available: bool,
    /// How many: online, connected and below their cap of sessions.
    count: u64,
}
