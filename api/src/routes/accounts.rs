//! Mitra accounts, managed by the control center (internal listener).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::accounts::{self, NewMitra};
use domain::store::accounts::MitraRow;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMitra {
    email: String,
    password: String,
    display_name: String,
}

fn mitra_body(mitra: MitraRow) -> Json<Value> {
    Json(json!({
        "id": mitra.id,
        "email": mitra.email,
        "display_name": mitra.display_name,
        "active": mitra.active,
        "created_at": mitra.created_at,
    }))
}

/// # `POST /internal/mitras`
pub async fn create_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiJson(body): ApiJson<CreateMitra>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewMitra { email: &body.email, password: &body.password, display_name: &body.display_name };
    let mitra = accounts::create_mitra(&state.store, &operator, new).await?;
    Ok((StatusCode::CREATED, mitra_body(mitra)))
}

/// # `POST /internal/mitras/{id}/deactivate`
pub async fn deactivate_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(mitra_body(accounts::set_mitra_active(&state.store, &operator, id, false).await?))
}

/// # `POST /internal/mitras/{id}/reactivate`
pub async fn reactivate_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(mitra_body(accounts::set_mitra_active(&state.store, &operator, id, true).await?))
}
