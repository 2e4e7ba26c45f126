//! The marketplace configuration, as operators see and change it (internal listener).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewValue {
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    key: Option<String>,
    limit: Option<i64>,
}

/// # `GET /internal/config`
/// Every key: type and range, label, explanation, public or not, default, current value.
pub async fn list(State(state): State<AppState>, _operator: Operator) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "keys": domain::app_config::list(&state.store).await? })))
}

/// # `PUT /internal/config/{key}` (also `PATCH`)
/// `{value}`, validated against the key's type; audited; applies at once everywhere.
pub async fn update(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<NewValue>,
) -> Result<Json<Value>, ApiError> {
    let view = domain::app_config::update(&state.store, &operator, &key, &body.value).await?;
    Ok(Json(json!(view)))
}

/// # `GET /internal/config/changes?key=&limit=`
/// The audit trail of configuration changes, newest first.
pub async fn changes(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_page",
            "limit must be 1 to 500",
        ));
    }
    let rows = state.store.config_changes(query.key.as_deref(), limit).await.map_err(ApiError::from)?;
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
