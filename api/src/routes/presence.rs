//! A mitra's own online switch.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::caller::Mitra;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The mitra's own switch.
    online: bool,
}

/// The answer of both routes.
const PRESENCE: &str = "`{status_online, connected, online}`: the switch, whether a socket of the mitra's \
    is open on a live hub, and both together (what makes them count as online)";

fn presence_body(presence: domain::presence::MitraPresence) -> Json<Value> {
    Json(json!({
        "status_online": presence.status_online,
        "connected": presence.connected,
        "online": presence.online,
    }))
}

crate::route_errors! { SetStatusErrors: Mitra, [Json, WriteBudget] }

/// Switches the mitra's own online switch.
///
/// The mitra counts as online only while this is on and a socket of theirs is connected.
#[utoipa::path(
    post,
    path = "/api/mitra/status",
    tag = "presence",
    operation_id = "set_mitra_status",
    request_body = StatusChange,
    security(("bearer" = ["mitra"])),
    responses((status = 200, description = PRESENCE, body = Object), SetStatusErrors)
)]
pub async fn set_status(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiJson(body): ApiJson<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    Ok(presence_body(domain::presence::set_mitra_status(&state.services, &mitra, body.online).await?))
}

crate::route_errors! { StatusErrors: Mitra, [] }

/// The mitra's switch and connection.
#[utoipa::path(
    get,
    path = "/api/mitra/status",
    tag = "presence",
    operation_id = "mitra_status",
    security(("bearer" = ["mitra"])),
    responses((status = 200, description = PRESENCE, body = Object), StatusErrors)
)]
pub async fn status(State(state): State<AppState>, Mitra(mitra): Mitra) -> Result<Json<Value>, ApiError> {
    Ok(presence_body(domain::presence::mitra_presence(&state.store, &mitra).await?))
}
