//! A mitra's own online switch.

use axum::Json;
use axum::extract::State;
use domain::presence::MitraPresence;
use serde::{Deserialize, Serialize};
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

/// A mitra's own switch and connection.
#[derive(Serialize, ToSchema)]
pub struct Presence {
    /// The mitra's own switch.
    status_online: bool,
    /// A socket of the mitra's is open on a live hub.
    connected: bool,
    /// Both: what makes the mitra count as online.
    online: bool,
}

fn presence_body(presence: domain::presence::MitraPresence) -> Json<Presence> {
    let MitraPresence { status_online, connected, online, .. } = presence;
    Json(Presence { status_online, connected, online })
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
    responses((status = 200, description = PRESENCE, body = Presence), SetStatusErrors)
)]
pub async fn set_status(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiJson(body): ApiJson<StatusChange>,
) -> Result<Json<Presence>, ApiError> {
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
    responses((status = 200, description = PRESENCE, body = Presence), StatusErrors)
)]
pub async fn status(State(state): State<AppState>, Mitra(mitra): Mitra) -> Result<Json<Presence>, ApiError> {
    Ok(presence_body(domain::presence::mitra_presence(&state.store, &mitra).await?))
}
