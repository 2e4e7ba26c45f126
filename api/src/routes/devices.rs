//! Push device registration.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::AppUser;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    fcm_token: String,
    platform: String,
}

/// # `PUT /api/shared/devices`
pub async fn register(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiJson(body): ApiJson<DeviceRegistration>,
) -> Result<Json<Value>, ApiError> {
    domain::devices::register(&state.store, &caller, &body.fcm_token, &body.platform).await?;
    Ok(Json(json!({"fcm_token": body.fcm_token.trim(), "platform": body.platform})))
}
