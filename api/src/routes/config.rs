//! The marketplace configuration, as operators see and change it (internal listener).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::caller::Operator;
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

/// What an update answers with.
const KEY: &str = "the key `{key, type, min?, max?, values?, label, explanation, public, default, value, \
    updated_at, updated_by}`";

crate::route_errors! { ListErrors: Operator, [] }

/// Every key: type and range, label, explanation, public or not, default, current value.
#[utoipa::path(
    get,
    path = "/internal/config",
    tag = "config",
    operation_id = "list_config",
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, body = Object,
            description = "`{keys: [key]}` in the order the settings page shows them"),
        ListErrors,
    )
)]
pub async fn list(State(state): State<AppState>, _operator: Operator) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "keys": domain::app_config::list(&state.store).await? })))
}

crate::route_errors! {
    UpdateErrors: Operator, [Path, Json];
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
    security(("bearer" = ["cc"])),
    responses((status = 200, description = KEY, body = Object), UpdateErrors)
)]
pub async fn update(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewValue>,
) -> Result<Json<Value>, ApiError> {
    let view = domain::app_config::update(&state.store, &operator, &key, &body.value).await?;
    Ok(Json(json!(view)))
}

/// The same as `PUT`.
#[utoipa::path(
    patch,
    path = "/internal/config/{key}",
    tag = "config",
    operation_id = "patch_config",
    params(("key" = String, Path, description = "the configuration key")),
    request_body = NewValue,
    security(("bearer" = ["cc"])),
    responses((status = 200, description = KEY, body = Object), UpdateErrors)
)]
pub async fn patch(
    state: State<AppState>,
    operator: Operator,
    key: ApiPath<String>,
    body: ApiJson<NewValue>,
) -> Result<Json<Value>, ApiError> {
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
        (status = 200, description = "`{changes: [{key, old_value, new_value, changed_by: {id, email}, \
            changed_at}]}`", body = Object),
        ChangesErrors,
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = domain::app_config::changes(&state.store, query.key.as_deref(), query.limit).await?;
    let changes: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({
                "key": c.key, "old_value": c.old_value, "new_value": c.new_value,
                "changed_by": {"id": c.changed_by, "email": c.changed_by_email}, "changed_at": c.changed_at,
            })
        })
        .collect();
    Ok(Json(json!({ "changes": changes })))
}
