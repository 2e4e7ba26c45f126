//! Push device registration.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::caller::AppUser;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// The FCM registration token (1–4,096 characters, no white space).
    fcm_token: String,
    /// `android`, `ios` or `web`.
    platform: String,
}

crate::route_errors! {
    RegisterErrors: AppUser, [Json];
    400 => [invalid_fcm_token, invalid_platform];
}

/// Registers the caller's push token; a token registered by another account moves to the caller.
#[utoipa::path(
    put,
    path = "/api/shared/devices",
    tag = "devices",
    operation_id = "register_device",
    request_body = DeviceRegistration,
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = "`{fcm_token, platform}`", body = Object), RegisterErrors)
)]
pub async fn register(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiJson(body): ApiJson<DeviceRegistration>,
) -> Result<Json<Value>, ApiError> {
    domain::devices::register(&state.store, &caller, &body.fcm_token, &body.platform).await?;
    Ok(Json(json!({"fcm_token": body.fcm_token.trim(), "platform": body.platform})))
}
