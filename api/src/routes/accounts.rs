//! Mitra accounts, managed by the control center (internal listener).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::accounts::MitraRow;
use domain::accounts::{self, NewAccountFields};
use serde::Deserialize;
use utoipa::ToSchema;

use domain::ids::MitraId;

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMitra {
    #[schema(schema_with = crate::schema::email)]
    email: String,
    /// 8–256 characters.
    #[schema(schema_with = crate::schema::password)]
    password: String,
    /// 1–100 characters.
    #[schema(schema_with = crate::schema::display_name)]
    display_name: String,
}

/// What every route here answers with.
const MITRA: &str = "the mitra";

crate::route_errors! {
    CreateMitraErrors: Operator, [Json];
    400 => [invalid_email, invalid_password, invalid_display_name];
    409 => [email_taken];
}

/// Creates a mitra account (audited).
#[utoipa::path(
    post,
    path = "/internal/mitras",
    tag = "mitras",
    request_body = CreateMitra,
    security(("bearer" = ["cc"])),
    responses((status = 201, description = MITRA, body = MitraRow), CreateMitraErrors)
)]
pub async fn create_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiJson(body): ApiJson<CreateMitra>,
) -> Result<(StatusCode, Json<MitraRow>), ApiError> {
    let new =
        NewAccountFields { email: &body.email, password: &body.password, display_name: &body.display_name };
    let mitra = accounts::create_mitra(&state.store, &operator, new).await?;
    Ok((StatusCode::CREATED, Json(mitra)))
}

crate::route_errors! {
    SetActiveErrors: Operator, [Path];
    404 => [mitra_not_found];
}

/// Deactivates a mitra: sign-in refused, tokens revoked, live sockets closed with 4003.
#[utoipa::path(
    post,
    path = "/internal/mitras/{id}/deactivate",
    tag = "mitras",
    params(("id" = Uuid, Path, description = "the mitra")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = MITRA, body = MitraRow), SetActiveErrors)
)]
pub async fn deactivate_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<MitraId>,
) -> Result<Json<MitraRow>, ApiError> {
    set_active(&state, &operator, id, false).await
}

async fn set_active(
    state: &AppState,
    operator: &domain::auth::Principal,
    id: MitraId,
    active: bool,
) -> Result<Json<MitraRow>, ApiError> {
    Ok(Json(accounts::set_mitra_active(&state.store, &state.auth.settings, operator, id, active).await?))
}

/// Reactivates a mitra.
#[utoipa::path(
    post,
    path = "/internal/mitras/{id}/reactivate",
    tag = "mitras",
    params(("id" = Uuid, Path, description = "the mitra")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = MITRA, body = MitraRow), SetActiveErrors)
)]
pub async fn reactivate_mitra(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<MitraId>,
) -> Result<Json<MitraRow>, ApiError> {
    set_active(&state, &operator, id, true).await
}
