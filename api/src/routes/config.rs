//! The marketplace configuration, as operators see and change it (internal listener).

use axum::Json;
use axum::extract::State;
use domain::app_config::{ConfigChanges, ConfigKeys, KeyView};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::caller::{Admin, Operator};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewValue {
    /// Of the key's type (a number, a boolean, one of its values, the price tiers).
    value: Value,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Only this key's changes.
    #[param(schema_with = crate::schema::query_text)]
    key: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

crate::route_errors! { ListErrors: Operator, [] }

/// Every key: type and range, label, explanation, public or not, default, current value.
#[utoipa::path(
    get,
    path = "/internal/config",
    tag = "config",
    operation_id = "list_config",
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, body = ConfigKeys, description = "every key, in the order the settings page shows them"),
        ListErrors,
    )
)]
pub async fn list(State(state): State<AppState>, _operator: Operator) -> Result<Json<ConfigKeys>, ApiError> {
    Ok(Json(domain::app_config::list(&state.store).await?))
}

crate::route_errors! {
    UpdateErrors: Admin, [Path, Json];
    400 => [invalid_config_value];
    404 => [unknown_config_key];
}

/// Sets a key: validated against its type, audited, applies at once everywhere.
#[utoipa::path(
    put,
    path = "/internal/config/{key}",
    tag = "config",
    operation_id = "update_config",
    params(("key" = String, Path, description = "the configuration key")),
    request_body = NewValue,
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the key with its new value", body = KeyView), UpdateErrors)
)]
pub async fn update(
    State(state): State<AppState>,
    Admin(operator): Admin,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewValue>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(domain::app_config::update(&state.store, &operator, &key, &body.value).await?))
}

/// The same as `PUT`.
#[utoipa::path(
    patch,
    path = "/internal/config/{key}",
    tag = "config",
    operation_id = "patch_config",
    params(("key" = String, Path, description = "the configuration key")),
    request_body = NewValue,
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the key with its new value", body = KeyView), UpdateErrors)
)]
pub async fn patch(
    state: State<AppState>,
    operator: Admin,
    key: ApiPath<String>,
    body: ApiJson<NewValue>,
) -> Result<Json<KeyView>, ApiError> {
    update(state, operator, key, body).await
}

crate::route_errors! {
    ChangesErrors: Operator, [Query];
    400 => [invalid_page];
}

/// The audit trail of configuration changes, newest first.
#[utoipa::path(
    get,
    path = "/internal/config/changes",
    tag = "config",
    operation_id = "config_changes",
    params(ChangesQuery),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "the changes, newest first", body = ConfigChanges),
        ChangesErrors,
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Json<ConfigChanges>, ApiError> {
    Ok(Json(domain::app_config::changes(&state.store, query.key.as_deref(), query.limit).await?))
}
