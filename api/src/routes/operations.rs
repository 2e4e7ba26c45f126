//! What operators watch and manage day to day (internal listener): mitra accounts, live
//! sessions, the early-end log and the mitras flagged for review.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Operator;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitraPage {
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPage {
    date_from: Option<chrono::DateTime<chrono::Utc>>,
    date_to: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

fn limit_of(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_page", "limit must be 1 to 500"))
    }
}

/// # `GET /internal/mitras?q=&limit=&offset=`
/// `{rows, total}`, newest first; `q` matches the display name or email.
pub async fn list_mitras(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<MitraPage>,
) -> Result<Json<Value>, ApiError> {
    let (rows, total) =
        domain::accounts::list_mitras(&state.store, page.q.as_deref(), page.limit, page.offset).await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|m| json!({"id": m.id, "email": m.email, "display_name": m.display_name, "active": m.active, "created_at": m.created_at}))
        .collect();
    Ok(Json(json!({ "rows": rows, "total": total })))
}

/// # `POST /internal/mitras/{id}/reset-password`
/// `{password}`: the mitra's refresh tokens are revoked; they sign in with the new one.
pub async fn reset_password(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<axum::http::StatusCode, ApiError> {
    domain::accounts::reset_mitra_password(&state.store, &operator, id, &body.password).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// # `GET /internal/sessions/live`
/// Every session not completed, with its state and the seconds left (to its end, or to the
/// end of its goodbye window when closing).
pub async fn live_sessions(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<Value>, ApiError> {
    let now = chrono::Utc::now();
    let rows = state.store.live_sessions().await.map_err(ApiError::from)?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|s| {
            let until = if s.status == "closing" { s.grace_ends_at.unwrap_or(s.ends_at) } else { s.ends_at };
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

/// # `GET /internal/early-ends?date_from=&date_to=&limit=`
/// The force-close log: who ended which session early, when, and why.
pub async fn early_ends(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .store
        .early_ends(page.date_from, page.date_to, limit_of(page.limit)?)
        .await
        .map_err(ApiError::from)?;
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

/// # `GET /internal/review-flags?limit=`
/// Mitras flagged for review (over the daily early-end cap), newest first.
pub async fn review_flags(
    State(state): State<AppState>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<LogPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.review_flags(limit_of(page.limit)?).await.map_err(ApiError::from)?;
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
