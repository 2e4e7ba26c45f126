//! Push device registration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::caller::AppUser;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// The FCM registration token (1–4,096 visible ASCII characters).
    #[schema(schema_with = crate::schema::fcm_token)]
    fcm_token: String,
    #[schema(value_type = domain::devices::Platform)]
    platform: String,
}

crate::route_errors! {
    RegisterErrors: AppUser, [Json, WriteBudget];
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
    responses((status = 200, description = "the device as registered", body = RegisteredDevice), RegisterErrors)
)]
pub async fn register(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiJson(body): ApiJson<DeviceRegistration>,
) -> Result<Json<RegisteredDevice>, ApiError> {
    domain::devices::register(&state.store, &caller, &body.fcm_token, &body.platform).await?;
    Ok(Json(RegisteredDevice { fcm_token: body.fcm_token.trim().to_owned(), platform: body.platform }))
}

/// A registered push token: white space around it dropped.
#[derive(Serialize, ToSchema)]
pub struct RegisteredDevice {
    #[schema(schema_with = crate::schema::fcm_token)]
    fcm_token: String,
    #[schema(value_type = domain::devices::Platform)]
    platform: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceToken {
    /// The FCM registration token to forget.
    #[schema(schema_with = crate::schema::fcm_token)]
    fcm_token: String,
}

crate::route_errors! {
    UnregisterErrors: AppUser, [Json, WriteBudget];
    400 => [invalid_fcm_token];
}

/// Unregisters one of the caller's push tokens (the app turned notifications off). A token
/// of another account, or one not registered, changes nothing; the answer is the same.
/// Logging out unregisters the tokens of that sign-in without this call.
#[utoipa::path(
    delete,
    path = "/api/shared/devices",
    tag = "devices",
    operation_id = "unregister_device",
    request_body = DeviceToken,
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 204, description = "the token is no longer registered to the caller"), UnregisterErrors)
)]
pub async fn unregister(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiJson(body): ApiJson<DeviceToken>,
) -> Result<StatusCode, ApiError> {
    domain::devices::unregister(&state.store, &caller, &body.fcm_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
