//! Chat sessions for both apps: history, messages (the REST fallback of the hub's
//! `send_message`), receipts, and the customer's active-session card.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::chat::{self, MessageView, Receipt, SessionView};
use serde::{Deserialize, Serialize};
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
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesPage {
    /// The messages after this number (default: from the first).
    #[param(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    after_seq: Option<i64>,
    /// The page before this number; with `after_seq`, the first messages between the two.
    #[param(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    before_seq: Option<i64>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Chosen by the app (1–64 characters, a UUID is fine), unique per sender: a resend
    /// with the same id returns the stored message.
    #[schema(schema_with = crate::schema::client_msg_id)]
    client_msg_id: String,
    /// 1–4,000 characters, not only white space.
    #[schema(schema_with = crate::schema::message_body)]
    body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    /// Watermarks only move forward: a number below the current one changes nothing. (The
    /// bounds are those of an integer every JSON parser keeps exact, ±(2^53 − 1).)
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    delivered_up_to_seq: Option<i64>,
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    read_up_to_seq: Option<i64>,
}

/// `{sessions: [session]}`, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionView>,
}

/// `{messages: [message]}` in `seq` order.
#[derive(Serialize, ToSchema)]
pub struct MessageList {
    messages: Vec<MessageView>,
}

/// A sent message, and whether it was a resend of one stored before.
#[derive(Serialize, ToSchema)]
pub struct SentMessage {
    message: MessageView,
    duplicate: bool,
}

/// The customer's session that has not completed, or `null`.
#[derive(Serialize, ToSchema)]
pub struct ActiveSession {
    session: Option<SessionView>,
}

/// The mitra's sessions that have not completed, newest first.
#[derive(Serialize, ToSchema)]
pub struct LiveSessions {
    sessions: Vec<SessionView>,
}

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
    responses((status = 200, description = "the caller's sessions", body = SessionList), ListErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiQuery(page): ApiQuery<SessionsPage>,
) -> Result<Json<SessionList>, ApiError> {
    let rows = chat::sessions(&state.store, &caller, page.before, page.limit).await?;
    let sessions = rows.iter().map(|row| SessionView::new(&caller, row)).collect();
    Ok(Json(SessionList { sessions }))
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
    responses((status = 200, description = "the session", body = SessionView), GetErrors)
)]
pub async fn get(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::new(
        &caller,
        &chat::session(&state.store, &caller, domain::ids::SessionId(id)).await?,
    )))
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
        (status = 200, description = "a page of messages", body = MessageList),
        MessagesErrors,
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<MessagesPage>,
) -> Result<Json<MessageList>, ApiError> {
    let rows = chat::history(
        &state.store,
        &caller,
        domain::ids::SessionId(id),
        page.after_seq,
        page.before_seq,
        page.limit,
    )
    .await?;
    Ok(Json(MessageList { messages: rows.into_iter().map(MessageView::from).collect() }))
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
        (status = 201, description = "stored now (`duplicate: false`)", body = SentMessage),
        (status = 200, body = SentMessage, description = "a resend of a stored message (`duplicate: true`)"),
        SendErrors,
    )
)]
pub async fn send(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<SentMessage>), ApiError> {
    let (message, stored_now) = chat::send(
        &state.services,
        &caller,
        None,
        domain::ids::SessionId(id),
        &body.client_msg_id,
        &body.body,
    )
    .await?;
    let status = if stored_now { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SentMessage { message: MessageView::from(message), duplicate: !stored_now })))
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
    responses((status = 200, description = "the session", body = SessionView), ReceiptsErrors)
)]
pub async fn receipts(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Receipts>,
) -> Result<Json<SessionView>, ApiError> {
    let mut row = None;
    if let Some(seq) = body.delivered_up_to_seq {
        row = Some(
            chat::mark(&state.services, &caller, domain::ids::SessionId(id), Receipt::Delivered, seq).await?,
        );
    }
    if let Some(seq) = body.read_up_to_seq {
        row =
            Some(chat::mark(&state.services, &caller, domain::ids::SessionId(id), Receipt::Read, seq).await?);
    }
    let row = match row {
        Some(row) => row,
        None => chat::session(&state.store, &caller, domain::ids::SessionId(id)).await?,
    };
    Ok(Json(SessionView::new(&caller, &row)))
}

crate::route_errors! { ActiveErrors: Customer, [] }

/// The customer's session that has not completed (the home screen's card), or `null`.
///
/// A customer may have more than one (a returning chat started while the last one is still
/// closing): the newest by `started_at`.
#[utoipa::path(
    get,
    path = "/api/client/chat-sessions/active",
    tag = "chat",
    operation_id = "active_chat_session",
    security(("bearer" = ["customer"])),
    responses((status = 200, description = "`{session}` or `{session: null}`", body = ActiveSession), ActiveErrors)
)]
pub async fn active(
    State(state): State<AppState>,
    Customer(customer): Customer,
) -> Result<Json<ActiveSession>, ApiError> {
    let row = chat::active_session(&state.store, &customer).await?;
    Ok(Json(ActiveSession { session: row.map(|row| SessionView::new(&customer, &row)) }))
}

crate::route_errors! { MitraActiveErrors: Mitra, [] }

/// The mitra's sessions that have not completed (their chats list), newest first.
#[utoipa::path(
    get,
    path = "/api/mitra/chat-sessions/active",
    tag = "chat",
    operation_id = "mitra_active_chat_sessions",
    security(("bearer" = ["mitra"])),
    responses((status = 200, description = "`{sessions}`", body = LiveSessions), MitraActiveErrors)
)]
pub async fn mitra_active(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
) -> Result<Json<LiveSessions>, ApiError> {
    let rows = chat::live_sessions_of_mitra(&state.store, &mitra).await?;
    Ok(Json(LiveSessions { sessions: rows.iter().map(|row| SessionView::new(&mitra, row)).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndEarly {
    /// 1–64 characters of `a-z`, `0-9` and `_`.
    #[schema(pattern = "^[a-z0-9_]{1,64}$", min_length = 1, max_length = 64)]
    reason_code: String,
    /// At most 1,000 characters.
    #[schema(schema_with = crate::schema::reason_text)]
    reason_text: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosingMessage {
    /// 1–1,000 characters, not only white space.
    #[schema(schema_with = crate::schema::closing_message)]
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
    responses((status = 200, description = "the session, `closing`", body = SessionView), EndErrors)
)]
pub async fn mitra_end(
    State(state): State<AppState>,
    crate::caller::Mitra(mitra): crate::caller::Mitra,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EndEarly>,
) -> Result<Json<SessionView>, ApiError> {
    let row = domain::session::end_early(
        &state.services,
        &mitra,
        domain::ids::SessionId(id),
        &body.reason_code,
        body.reason_text.as_deref(),
    )
    .await?;
    Ok(Json(SessionView::new(&mitra, &row)))
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
    responses((status = 200, description = "the session, `closing`", body = SessionView), CustomerEndErrors)
)]
pub async fn customer_end(
    State(state): State<AppState>,
    Customer(customer): Customer,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EndEarly>,
) -> Result<Json<SessionView>, ApiError> {
    let row = domain::session::end_early(
        &state.services,
        &customer,
        domain::ids::SessionId(id),
        &body.reason_code,
        body.reason_text.as_deref(),
    )
    .await?;
    Ok(Json(SessionView::new(&customer, &row)))
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
    responses((status = 200, description = "the session", body = SessionView), ClosingMessageErrors)
)]
pub async fn closing_message(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ClosingMessage>,
) -> Result<Json<SessionView>, ApiError> {
    let row = domain::session::leave_closing_message(
        &state.services,
        &caller,
        domain::ids::SessionId(id),
        &body.message,
    )
    .await?;
    Ok(Json(SessionView::new(&caller, &row)))
}

crate::route_errors! { PublicConfigErrors: Anyone, [Store] }

/// The configuration apps read: price tiers, the free trial, feature gates, timings.
#[utoipa::path(
    get,
    path = "/api/shared/config",
    tag = "config",
    responses(
        (status = 200, description = "the public configuration keys and their current values",
            body = domain::app_config::PublicConfig),
        PublicConfigErrors,
    )
)]
pub async fn public_config(
    State(state): State<AppState>,
) -> Result<Json<domain::app_config::PublicConfig>, ApiError> {
    Ok(Json(domain::app_config::public_values(&state.store).await?))
}
