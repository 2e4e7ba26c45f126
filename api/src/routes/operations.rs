//! What operators watch and manage day to day (internal listener): mitra accounts, live
//! sessions, the early-end log and the mitras flagged for review.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use domain::calendar::{Period, TimeBound};

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MitraPage {
    /// Matches the display name or email (literally).
    #[param(schema_with = crate::schema::query_text)]
    q: Option<String>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// 8–256 characters.
    #[schema(schema_with = crate::schema::password)]
    password: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogPage {
    #[param(schema_with = crate::schema::date_or_time)]
    date_from: Option<TimeBound>,
    /// Exclusive.
    #[param(schema_with = crate::schema::date_or_time)]
    date_to: Option<TimeBound>,
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

crate::route_errors! {
    ListMitrasErrors: Operator, [Query];
    400 => [invalid_page];
}

/// The mitras, newest first; `q` matches the display name or email.
#[utoipa::path(
    get,
    path = "/internal/mitras",
    tag = "mitras",
    params(MitraPage),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, body = domain::accounts::MitraPage, description = "a page of the mitras, newest first"),
        ListMitrasErrors,
    )
)]
pub async fn list_mitras(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<MitraPage>,
) -> Result<Json<domain::accounts::MitraPage>, ApiError> {
    let (q, limit, offset) = (page.q.as_deref(), page.limit, page.offset);
    Ok(Json(domain::accounts::list_mitras(&state.store, &state.auth.settings, q, limit, offset).await?))
}

crate::route_errors! {
    ResetPasswordErrors: Operator, [Path, Json];
    400 => [invalid_password];
    404 => [mitra_not_found];
}

/// Sets a mitra's password: their refresh tokens are revoked; they sign in with the new one.
#[utoipa::path(
    post,
    path = "/internal/mitras/{id}/reset-password",
    tag = "mitras",
    params(("id" = Uuid, Path, description = "the mitra")),
    request_body = NewPassword,
    security(("bearer" = ["cc"])),
    responses((status = 204, description = "the password is set"), ResetPasswordErrors)
)]
pub async fn reset_password(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<axum::http::StatusCode, ApiError> {
    domain::accounts::reset_mitra_password(
        &state.store,
        &state.auth.settings,
        &operator,
        domain::ids::MitraId(id),
        &body.password,
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

crate::route_errors! { LiveSessionsErrors: Operator, [] }

/// Every session not completed, with its state and the seconds left.
///
/// The seconds left run to its end, or to the end of its goodbye window when closing.
#[utoipa::path(
    get,
    path = "/internal/sessions/live",
    tag = "operations",
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "every session not completed, oldest first", body = domain::session::LiveSessions),
        LiveSessionsErrors,
    )
)]
pub async fn live_sessions(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<domain::session::LiveSessions>, ApiError> {
    Ok(Json(domain::session::live(&state.store).await?))
}

crate::route_errors! {
    LogErrors: Operator, [Query];
    400 => [invalid_page];
}

/// The force-close log: who ended which session early, when, and why.
#[utoipa::path(
    get,
    path = "/internal/early-ends",
    tag = "operations",
    params(LogPage),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "the early ends, newest first", body = domain::session::EarlyEnds),
        LogErrors,
    )
)]
pub async fn early_ends(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<domain::session::EarlyEnds>, ApiError> {
    let period = Period { from: page.date_from, to: page.date_to };
    Ok(Json(domain::session::early_ends(&state.store, period, page.limit).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlagPage {
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Resolved flags too (default: the open ones only).
    include_resolved: Option<bool>,
}

/// Mitras flagged for review (over the daily early-end cap), newest first; the open flags
/// unless `include_resolved`.
#[utoipa::path(
    get,
    path = "/internal/review-flags",
    tag = "operations",
    params(FlagPage),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, description = "the flags, newest first", body = domain::session::ReviewFlags),
        LogErrors,
    )
)]
pub async fn review_flags(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<FlagPage>,
) -> Result<Json<domain::session::ReviewFlags>, ApiError> {
    let include_resolved = page.include_resolved.unwrap_or(false);
    Ok(Json(domain::session::review_flags(&state.store, page.limit, include_resolved).await?))
}

crate::route_errors! {
    ResolveErrors: Operator, [Path];
    404 => [review_flag_not_found];
    409 => [review_flag_already_resolved];
}

/// Resolves a review flag: the operator looked at the mitra's early ends. Once; audited.
#[utoipa::path(
    post,
    path = "/internal/review-flags/{id}/resolve",
    tag = "operations",
    params(("id" = Uuid, Path, description = "the flag")),
    security(("bearer" = ["cc"])),
    responses((status = 200, description = "the flag, resolved", body = domain::session::ReviewFlagView), ResolveErrors)
)]
pub async fn resolve_review_flag(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<domain::ids::ReviewFlagId>,
) -> Result<Json<domain::session::ReviewFlagView>, ApiError> {
    Ok(Json(domain::session::resolve_review_flag(&state.store, &operator, id).await?))
}
