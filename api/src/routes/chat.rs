//! Chat sessions for both apps: history, messages (the REST fallback of the hub's
//! `send_message`), receipts, and the customer's active-session card.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::chat::{self, Receipt};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{AppUser, Customer};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionsPage {
    /// A `started_at` of the previous page: the sessions that started before it.
    before: Option<chrono::DateTime<chrono::Utc>>,
    /// 1–200, default 20.
    limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesPage {
    /// The messages after this number (default: from the first).
    after_seq: Option<i64>,
    /// The page before this number (not with `after_seq`).
    before_seq: Option<i64>,
    /// 1–200, default 50.
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Chosen by the app (1–64 characters, a UUID is fine), unique per sender: a resend
    /// with the same id returns the stored message.
    client_msg_id: String,
    /// 1–4,000 characters, not only white space.
    body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    delivered_up_to_seq: Option<i64>,
    read_up_to_seq: Option<i64>,
}

/// A session as the caller sees it.
const SESSION: &str = "the session `{id, status, partner, started_at, ends_at, closing_started_at, \
    grace_ends_at, completed_at, last_seq, partner_delivered_seq, partner_read_seq, \
    closing_messages: {customer, mitra}}`";

/// An extension request.
const EXTENSION: &str = "the extension request `{id, session_id, payment_session_id, duration_minutes, \
    status, resolution_reason, requested_at, expires_at, resolved_at}`";

crate::route_errors! {
    ListErrors: AppUser, [Query];
    400 => [invalid_page];
}

/// The caller's sessions, newest first: `?before=<started_at>&limit=` pages back.
#[utoipa::path(
    get,
    path = "/api/shared/chat-sessions",
    tag = "chat",
    operation_id = "list_chat_sessions",
    params(SessionsPage),
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = "`{sessions: [session]}`", body = Object), ListErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiQuery(page): ApiQuery<SessionsPage>,
) -> Result<Json<Value>, ApiError> {
    let rows = chat::sessions(&state.store, &caller, page.before, page.limit).await?;
    let sessions: Vec<Value> = rows.iter().map(|row| chat::session_json(&caller, row)).collect();
    Ok(Json(json!({ "sessions": sessions })))
}

crate::route_errors! {
    GetErrors: AppUser, [Path];
    404 => [chat_session_not_found];
}

/// One of the caller's sessions.
#[utoipa::path(
    get,
    path = "/api/shared/chat-sessions/{id}",
    tag = "chat",
    operation_id = "get_chat_session",
    params(("id" = Uuid, Path, description = "the chat session")),
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = SESSION, body = Object), GetErrors)
)]
pub async fn get(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(chat::session_json(&caller, &chat::session(&state.store, &caller, id).await?)))
}

crate::route_errors! {
    MessagesErrors: AppUser, [Path, Query];
    400 => [invalid_page];
    404 => [chat_session_not_found];
}

/// A page of the session's messages in `seq` order.
///
/// `?after_seq=` pages forward (default: from the first), `?before_seq=` backward.
#[utoipa::path(
    get,
    path = "/api/shared/chat-sessions/{id}/messages",
    tag = "chat",
    operation_id = "list_messages",
    params(("id" = Uuid, Path, description = "the chat session"), MessagesPage),
    security(("bearer" = ["customer", "mitra"])),
    responses(
        (status = 200, description = "`{messages: [{id, session_id, seq, sender_role, client_msg_id, body, \
            created_at}]}`", body = Object),
        MessagesErrors,
    )
)]
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

crate::route_errors! {
    SendErrors: AppUser, [Path, Json, WriteBudget];
    400 => [invalid_message_body, invalid_client_msg_id];
    404 => [chat_session_not_found];
    409 => [chat_session_not_open, client_msg_id_reused];
}

/// Sends a message (the REST fallback of the hub's `send_message`).
#[utoipa::path(
    post,
    path = "/api/shared/chat-sessions/{id}/messages",
    tag = "chat",
    operation_id = "send_message",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = NewMessage,
    security(("bearer" = ["customer", "mitra"])),
    responses(
        (status = 201, description = "`{message, duplicate: false}`: stored now", body = Object),
        (status = 200, body = Object,
            description = "`{message, duplicate: true}`: a resend of a stored message"),
        SendErrors,
    )
)]
pub async fn send(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (message, stored_now) =
        chat::send(&state.services, &caller, None, id, &body.client_msg_id, &body.body).await?;
    let status = if stored_now { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "message": chat::message_json(&message), "duplicate": !stored_now }))))
}

crate::route_errors! {
    ReceiptsErrors: AppUser, [Path, Json, WriteBudget];
    404 => [chat_session_not_found];
}

/// The caller's devices received / read the other party's messages up to these numbers.
#[utoipa::path(
    post,
    path = "/api/shared/chat-sessions/{id}/receipts",
    tag = "chat",
    operation_id = "mark_receipts",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = Receipts,
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = SESSION, body = Object), ReceiptsErrors)
)]
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

crate::route_errors! { ActiveErrors: Customer, [] }

/// The customer's session that has not completed (the home screen's card), or `null`.
#[utoipa::path(
    get,
    path = "/api/client/chat-sessions/active",
    tag = "chat",
    operation_id = "active_chat_session",
    security(("bearer" = ["customer"])),
    responses((status = 200, description = "`{session}` or `{session: null}`", body = Object), ActiveErrors)
)]
pub async fn active(
    State(state): State<AppState>,
    Customer(customer): Customer,
) -> Result<Json<Value>, ApiError> {
    let row = chat::active_session(&state.store, &customer).await?;
    Ok(Json(json!({ "session": row.map(|row| chat::session_json(&customer, &row)) })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndEarly {
    /// 1–64 characters of `a-z`, `0-9` and `_`.
    reason_code: String,
    /// At most 1,000 characters.
    reason_text: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosingMessage {
    /// 1–1,000 characters, not only white space.
    message: String,
}

crate::route_errors! {
    EndErrors: Mitra, [Path, Json, WriteBudget];
    400 => [invalid_reason_code, invalid_reason_text];
    403 => [feature_disabled];
    404 => [chat_session_not_found];
    409 => [chat_session_not_open];
}

/// The mitra ends the session early: it starts closing, with the reason recorded.
///
/// Only when `early_end_mitra_enabled` (else 403 `feature_disabled`); over
/// `early_end_mitra_daily_cap` early ends today the mitra is flagged for review.
#[utoipa::path(
    post,
    path = "/api/mitra/chat-requests/sessions/{id}/end",
    tag = "chat",
    operation_id = "mitra_end_session",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = EndEarly,
    security(("bearer" = ["mitra"])),
    responses((status = 200, description = SESSION, body = Object), EndErrors)
)]
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

crate::route_errors! {
    CustomerEndErrors: Customer, [Path, Json, WriteBudget];
    400 => [invalid_reason_code, invalid_reason_text];
    403 => [feature_disabled];
    404 => [chat_session_not_found];
    409 => [chat_session_not_open];
}

/// The customer ends the session early (when `early_end_customer_enabled`).
#[utoipa::path(
    post,
    path = "/api/client/chat-sessions/{id}/end",
    tag = "chat",
    operation_id = "customer_end_session",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = EndEarly,
    security(("bearer" = ["customer"])),
    responses((status = 200, description = SESSION, body = Object), CustomerEndErrors)
)]
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

crate::route_errors! {
    ClosingMessageErrors: AppUser, [Path, Json, WriteBudget];
    400 => [invalid_closing_message];
    404 => [chat_session_not_found];
    409 => [chat_session_not_open, closing_message_already_left];
}

/// The caller's goodbye while the session is closing (once per side).
#[utoipa::path(
    post,
    path = "/api/shared/chat-sessions/{id}/closing-message",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = ClosingMessage,
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 200, description = SESSION, body = Object), ClosingMessageErrors)
)]
pub async fn closing_message(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ClosingMessage>,
) -> Result<Json<Value>, ApiError> {
    let row = domain::session::leave_closing_message(&state.services, &caller, id, &body.message).await?;
    Ok(Json(chat::session_json(&caller, &row)))
}

crate::route_errors! { PublicConfigErrors: Anyone, [Store] }

/// The configuration apps read: price tiers, the free trial, feature gates, timings.
#[utoipa::path(
    get,
    path = "/api/shared/config",
    tag = "config",
    responses(
        (status = 200, description = "the public configuration keys and their current values", body = Object),
        PublicConfigErrors,
    )
)]
pub async fn public_config(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Object(domain::app_config::public_values(&state.store).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAsk {
    /// A pending extension payment of this session; charged only on approval.
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

crate::route_errors! {
    RequestExtensionErrors: Customer, [Path, Json, WriteBudget];
    404 => [chat_session_not_found, payment_session_not_found];
    409 => [chat_session_not_extendable, extension_payment_not_usable, extension_pending];
}

/// Asks the mitra for more time; the session becomes `extending`.
///
/// The mitra's answer (or the window's default) arrives as `extension_resolved`. Charged
/// only on approval.
#[utoipa::path(
    post,
    path = "/api/client/chat-sessions/{id}/extension",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the chat session")),
    request_body = ExtensionAsk,
    security(("bearer" = ["customer"])),
    responses((status = 201, description = EXTENSION, body = Object), RequestExtensionErrors)
)]
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

crate::route_errors! {
    AnswerExtensionErrors: Mitra, [Path, WriteBudget];
    404 => [extension_not_found];
    409 => [extension_resolved];
    503 => [payment_provider_unavailable];
}

/// The mitra approves: the customer is charged now and the session runs longer.
#[utoipa::path(
    post,
    path = "/api/mitra/extension-requests/{id}/approve",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the extension request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, description = "the extension request (`approved`, or `rejected` when the charge was \
            declined) + `session_ends_at`, `session_status`", body = Object),
        AnswerExtensionErrors,
    )
)]
pub async fn approve_extension(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    answer_extension(&state, &mitra, id, true).await
}

/// The mitra rejects: nothing is charged.
///
/// An approval that was charged before it died is finished instead (the customer paid).
#[utoipa::path(
    post,
    path = "/api/mitra/extension-requests/{id}/reject",
    tag = "chat",
    params(("id" = Uuid, Path, description = "the extension request")),
    security(("bearer" = ["mitra"])),
    responses(
        (status = 200, description = "the extension request (`rejected`) + `session_ends_at`, \
            `session_status`", body = Object),
        AnswerExtensionErrors,
    )
)]
pub async fn reject_extension(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    answer_extension(&state, &mitra, id, false).await
}
