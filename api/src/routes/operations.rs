//! What operators watch and manage day to day (internal listener): mitra accounts, live
//! sessions, the early-end log and the mitras flagged for review.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

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
    /// RFC 3339.
    date_from: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339.
    date_to: Option<chrono::DateTime<chrono::Utc>>,
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
        (status = 200, body = Object,
            description = "`{rows: [{id, email, display_name, active, created_at, sign_in_locked_for_s}], total}`; \
                `sign_in_locked_for_s` > 0 while too many sign-in attempts lock the account"),
        ListMitrasErrors,
    )
)]
pub async fn list_mitras(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<MitraPage>,
) -> Result<Json<Value>, ApiError> {
    let (q, limit, offset) = (page.q.as_deref(), page.limit, page.offset);
    let (rows, total) =
        domain::accounts::list_mitras(&state.store, &state.auth.settings, q, limit, offset).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let m = &row.mitra;
            json!({
                "id": m.id,
                "email": m.email,
                "display_name": m.display_name,
                "active": m.active,
                "created_at": m.created_at,
                "sign_in_locked_for_s": row.sign_in_locked_for_s,
            })
        })
        .collect();
    Ok(Json(json!({ "rows": rows, "total": total })))
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
        (status = 200, description = "`{rows: [{id, status, customer: {id, call_name}, mitra: {id, \
            display_name}, started_at, ends_at, grace_ends_at, seconds_left, messages}]}`", body = Object),
        LiveSessionsErrors,
    )
)]
pub async fn live_sessions(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<Value>, ApiError> {
    let now = chrono::Utc::now();
    let rows = domain::session::live(&state.store).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|s| {
            let until = if s.status == domain::chat::SessionStatus::Closing {
                s.grace_ends_at.unwrap_or(s.ends_at)
            } else {
                s.ends_at
            };
            json!({
                "id": s.id, "status": s.status,
                "customer": {"id": s.customer_id, "call_name": s.customer_call_name},
                "mitra": {"id": s.mitra_id, "display_name": s.mitra_display_name},
                "started_at": s.started_at, "ends_at": s.ends_at, "grace_ends_at": s.grace_ends_at,
                "seconds_left": (until - now).num_seconds().max(0), "messages": s.last_seq,
            })
        })
        .collect();
    Ok(Json(json!({ "rows": rows })))
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
        (status = 200, description = "`{rows: [{session_id, initiated_by, reason_code, reason, ended_at, \
            mitra, customer}]}`, newest first", body = Object),
        LogErrors,
    )
)]
pub async fn early_ends(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = domain::session::early_ends(&state.store, page.date_from, page.date_to, page.limit).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "session_id": e.chat_session_id, "initiated_by": e.initiated_by,
                "reason_code": e.reason_code, "reason": e.reason, "ended_at": e.ended_at,
                "mitra": {"id": e.mitra_id, "display_name": e.mitra_display_name},
                "customer": {"call_name": e.customer_call_name},
            })
        })
        .collect();
    Ok(Json(json!({ "rows": rows })))
}

/// Mitras flagged for review (over the daily early-end cap), newest first.
#[utoipa::path(
    get,
    path = "/internal/review-flags",
    tag = "operations",
    params(LogPage),
    security(("bearer" = ["cc"])),
    responses(
        (status = 200, body = Object,
            description = "`{rows: [{id, mitra, reason, day, count, created_at}]}`"),
        LogErrors,
    )
)]
pub async fn review_flags(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = domain::session::review_flags(&state.store, page.limit).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "mitra": {"id": f.mitra_id, "display_name": f.mitra_display_name},
                "reason": f.reason, "day": f.day, "count": f.count, "created_at": f.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "rows": rows })))
}
