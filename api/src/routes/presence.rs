//! A mitra's own online switch.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Mitra;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    online: bool,
}

fn presence_body(presence: domain::store::presence::MitraPresence) -> Json<Value> {
    Json(json!({
        "status_online": presence.status_online,
        "connected": presence.connected,
        "online": presence.online,
    }))
}

/// # `POST /api/mitra/status`
/// The mitra counts as online only while this is on and a socket of theirs is connected.
pub async fn set_status(
    State(state): State<AppState>,
    Mitra(mitra): Mitra,
    ApiJson(body): ApiJson<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    Ok(presence_body(domain::presence::set_mitra_status(&state.services, &mitra, body.online).await?))
}

/// # `GET /api/mitra/status`
pub async fn status(State(state): State<AppState>, Mitra(mitra): Mitra) -> Result<Json<Value>, ApiError> {
    Ok(presence_body(domain::presence::mitra_presence(&state.store, &mitra).await?))
}
