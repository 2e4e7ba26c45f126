//! Chat sessions for both apps: history, messages (the REST fallback of the hub's
//! `send_message`), receipts, and the customer's active-session card.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::chat::{self, Receipt};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{AppUser, Customer};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsPage {
    before: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesPage {
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    client_msg_id: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    delivered_up_to_seq: Option<i64>,
    read_up_to_seq: Option<i64>,
}

/// # `GET /api/shared/chat-sessions`
/// The caller's sessions, newest first: `?before=<started_at>&limit=` pages back.
pub async fn list(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiQuery(page): ApiQuery<SessionsPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = chat::sessions(&state.store, &caller, page.before, page.limit).await?;
    let sessions: Vec<Value> = rows.iter().map(|row| chat::session_json(&caller, row)).collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// # `GET /api/shared/chat-sessions/{id}`
pub async fn get(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(chat::session_json(&caller, &chat::session(&state.store, &caller, id).await?)))
}

/// # `GET /api/shared/chat-sessions/{id}/messages`
/// `?after_seq=` pages forward (default: from the first), `?before_seq=` backward.
pub async fn messages(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<MessagesPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = chat::history(&state.store, &caller, id, page.after_seq, page.before_seq, page.limit).await?;
    let messages: Vec<Value> = rows.iter().map(chat::message_json).collect();
    Ok(Json(json!({ "messages": messages })))
}

/// # `POST /api/shared/chat-sessions/{id}/messages`
/// `{client_msg_id, body}` → 201 stored now, 200 a resend of a stored one.
pub async fn send(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (message, stored_now) =
        chat::send(&state.services, &caller, id, &body.client_msg_id, &body.body).await?;
    let status = if stored_now { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "message": chat::message_json(&message), "duplicate": !stored_now }))))
}

/// # `POST /api/shared/chat-sessions/{id}/receipts`
/// `{delivered_up_to_seq?, read_up_to_seq?}`: the caller's devices received / read the
/// other party's messages up to these numbers.
pub async fn receipts(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Receipts>,
) -> Result<Json<Value>, ApiError> {
    let mut row = None;
    if let Some(seq) = body.delivered_up_to_seq {
        row = Some(chat::mark(&state.services, &caller, id, Receipt::Delivered, seq).await?);
    }
    if let Some(seq) = body.read_up_to_seq {
        row = Some(chat::mark(&state.services, &caller, id, Receipt::Read, seq).await?);
    }
    let row = match row {
        Some(row) => row,
        None => chat::session(&state.store, &caller, id).await?,
    };
    Ok(Json(chat::session_json(&caller, &row)))
}

/// # `GET /api/client/chat-sessions/active`
/// The customer's session that has not completed (the home screen's card), or `null`.
pub async fn active(
    State(state): State<AppState>,
    Customer(customer): Customer,
) -> Result<Json<Value>, ApiError> {
    let row = chat::active_session(&state.store, &customer).await?;
    Ok(Json(json!({ "session": row.map(|row| chat::session_json(&customer, &row)) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndEarly {
    reason_code: String,
    reason_text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosingMessage {
    message: String,
}

/// # `POST /api/mitra/chat-requests/sessions/{id}/end`
/// The mitra ends the session early (when `early_end_mitra_enabled`; else 403
/// `feature_disabled`): it starts closing, with the reason recorded.
pub async fn mitra_end(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EndEarly>,
) -> Result<Json<Value>, ApiError> {
    let row = domain::session::end_early(
        &state.services,
        &mitra,
        id,
        &body.reason_code,
        body.reason_text.as_deref(),
    )
    .await?;
    Ok(Json(chat::session_json(&mitra, &row)))
}

/// # `POST /api/client/chat-sessions/{id}/end`
/// The customer's early end (when `early_end_customer_enabled`).
pub async fn customer_end(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EndEarly>,
) -> Result<Json<Value>, ApiError> {
    let row = domain::session::end_early(
        &state.services,
        &customer,
        id,
        &body.reason_code,
        body.reason_text.as_deref(),
    )
    .await?;
    Ok(Json(chat::session_json(&customer, &row)))
}

/// # `POST /api/shared/chat-sessions/{id}/closing-message`
/// `{message}`: the caller's goodbye while the session is closing (once per side).
pub async fn closing_message(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ClosingMessage>,
) -> Result<Json<Value>, ApiError> {
    let row = domain::session::leave_closing_message(&state.services, &caller, id, &body.message).await?;
    Ok(Json(chat::session_json(&caller, &row)))
}

/// # `GET /api/shared/config`
/// The configuration apps read: price tiers, the free trial, feature gates, timings.
pub async fn public_config(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Object(domain::app_config::public_values(&state.store).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAsk {
    extension_payment_session_id: Uuid,
}

fn extension_json(extension: &domain::extension::ExtensionRow) -> Value {
    json!({
        "id": extension.id,
        "session_id": extension.chat_session_id,
        "payment_session_id": extension.payment_session_id,
        "duration_minutes": extension.duration_minutes,
        "status": extension.status,
        "resolution_reason": extension.resolution_reason,
        "requested_at": extension.requested_at,
        "expires_at": extension.expires_at,
        "resolved_at": extension.resolved_at,
    })
}

/// # `POST /api/client/chat-sessions/{id}/extension`
/// `{extension_payment_session_id}` (a pending extension payment of this session) → 201
/// the request; the mitra's answer (or the window's default) arrives as
/// `extension_resolved`. Charged only on approval.
pub async fn request_extension(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ExtensionAsk>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let extension =
        domain::extension::request(&state.services, &customer, id, body.extension_payment_session_id).await?;
    Ok((StatusCode::CREATED, Json(extension_json(&extension))))
}

async fn answer_extension(
    state: &AppState,
    mitra: &domain::auth::Principal,
    id: Uuid,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    let resolved = domain::extension::answer(&state.services, mitra, id, approve).await?;
    let mut body = extension_json(&resolved.extension);
    body["session_ends_at"] = json!(resolved.ends_at);
    body["session_status"] = json!(resolved.session_status);
    Ok(Json(body))
}

/// # `POST /api/mitra/extension-requests/{id}/approve`
pub async fn approve_extension(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    answer_extension(&state, &mitra, id, true).await
}

/// # `POST /api/mitra/extension-requests/{id}/reject`
pub async fn reject_extension(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    answer_extension(&state, &mitra, id, false).await
}
