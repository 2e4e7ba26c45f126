//! Chat: messages between a customer and their mitra, stored in order before they are
//! acknowledged, delivered over the hub (a push when the recipient has no live socket),
//! with delivered/read receipts, typing indicators and history for both sides.

pub mod store;

use crate::ids::UserId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::broker::store::SocketRef;
use crate::chat::store::Sent;
pub use crate::chat::store::SessionStatus;
pub use crate::chat::store::{MessageRow, Receipt, SessionRow};
use crate::error::{DomainError, ErrorKind};
use crate::event::{ChatMessageData, Event, ReceiptData, TypingData};
use crate::ids::SessionId;
use crate::push::PushMessage;
use crate::services::{Notice, Services};
use crate::store::{Store, StoreError};

/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 4_000;
/// Longest client-generated message id, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
/// How long a typing indicator shows without a new one (the app hides it after this).
pub const TYPING_SHOWS_MS: u64 = 5_000;
/// Most messages one history page returns.
pub const MAX_PAGE: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("message body must be 1 to {MAX_BODY_CHARS} characters and not only white space")]
    InvalidBody,
    #[error("client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_CHARS} characters")]
    InvalidClientMsgId,
    #[error("this client_msg_id was used for a message of another session")]
    ClientMsgIdReused,
    #[error("no such chat session of yours")]
    SessionNotFound,
    #[error("the session is {0}; messages can be sent only while it is active")]
    SessionNotOpen(SessionStatus),
    #[error("limit must be 1 to {MAX_PAGE}")]
    InvalidPage,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ChatError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidBody => "invalid_message_body",
            Self::InvalidClientMsgId => "invalid_client_msg_id",
            Self::ClientMsgIdReused => "client_msg_id_reused",
            Self::SessionNotFound => "chat_session_not_found",
            Self::SessionNotOpen(_) => "chat_session_not_open",
            Self::InvalidPage => "invalid_page",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidBody | Self::InvalidClientMsgId | Self::InvalidPage => ErrorKind::Invalid,
            Self::ClientMsgIdReused | Self::SessionNotOpen(_) => ErrorKind::Conflict,
            Self::SessionNotFound => ErrorKind::NotFound,
            Self::Store(e) => e.kind(),
        }
    }

    fn details(&self) -> Vec<(&'static str, Value)> {
        match self {
            Self::SessionNotOpen(status) => vec![("status", json!(status))],
            _ => Vec::new(),
        }
    }
}

/// A message as both apps see it: REST answers, `message_ack` and the `chat_message` event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub session_id: Uuid,
    /// 1, 2, 3… in the order the session's messages were stored, without gaps.
    #[schema(minimum = 1)]
    pub seq: i64,
    pub sender_role: Role,
    /// Chosen by the sender's app, unique per sender.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: String,
    #[schema(min_length = 1, max_length = 4000)]
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<MessageRow> for MessageView {
    /// Takes the row's strings: a message's view on the socket path costs no copy of its body.
    fn from(message: MessageRow) -> Self {
        Self {
            id: message.id.0,
            session_id: message.chat_session_id.0,
            seq: message.seq,
            sender_role: message.sender_role,
            client_msg_id: message.client_msg_id,
            body: message.body,
            created_at: message.created_at,
        }
    }
}

impl From<&MessageRow> for MessageView {
    fn from(message: &MessageRow) -> Self {
        Self::from(message.clone())
    }
}

/// Stores a message and sends it to both parties' sockets (the recipient gets a push when
/// none of theirs is open), except to the socket it came in on (`origin`: its answer
/// carries the message). A resend with the same `client_msg_id` returns the stored
/// message and pushes nothing again. Returns the message and whether this call stored it.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn send(
    services: &Services,
    sender: &Principal,
    origin: Option<&SocketRef>,
    session: SessionId,
    client_msg_id: &str,
    body: &str,
) -> Result<(MessageRow, bool), ChatError> {
    let started = std::time::Instant::now();
    let chars = body.chars().count();
    // NUL cannot be stored in Postgres text.
    if chars == 0 || chars > MAX_BODY_CHARS || body.trim().is_empty() || body.contains('\0') {
        return Err(ChatError::InvalidBody);
    }
    let id_chars = client_msg_id.chars().count();
    if id_chars == 0 || id_chars > MAX_CLIENT_MSG_ID_CHARS || client_msg_id.chars().any(char::is_control) {
        return Err(ChatError::InvalidClientMsgId);
    }
    let sent = services.store.send_message(sender, session, client_msg_id, body).await?;
    if sent.stored_now {
        services.metrics.chat_messages.with_label_values(&[sender.role.as_str()]).inc();
    }
    // A resend delivers again (without a push): the first attempt may have died between
    // storing and delivering. Apps drop a message whose id they have.
    deliver(services, sender, origin, &sent).await;
    services.metrics.chat_send_duration_seconds.observe(started.elapsed().as_secs_f64());
    Ok((sent.message, sent.stored_now))
}

async fn deliver(services: &Services, sender: &Principal, origin: Option<&SocketRef>, sent: &Sent) {
    let push_allowed = sent.stored_now;
    let session = &sent.session;
    let (recipient_role, recipient, sender_name) = match sender.role {
        Role::Customer => (Role::Mitra, session.mitra_id.into(), session.customer_call_name.as_str()),
        _ => (Role::Customer, session.customer_id.into(), session.mitra_display_name.as_str()),
    };
    let event = Event::ChatMessage(ChatMessageData { message: MessageView::from(&sent.message) });
    let preview: String = sent.message.body.chars().take(100).collect();
    let push = PushMessage {
        title: sender_name.to_owned(),
        body: "Pesan baru".to_owned(),
        preview: Some(preview),
        data: [
            ("type".to_owned(), "chat_message".to_owned()),
            ("chat_session_id".to_owned(), session.id.to_string()),
        ]
        .into(),
        // Unread messages of one session replace each other on the device.
        collapse_key: Some(format!("chat:{}", session.id)),
    };
    services
        .notify_from(
            origin,
            vec![
                Notice {
                    role: recipient_role,
                    user: UserId(recipient),
                    event: event.clone(),
                    push: push_allowed.then_some(push),
                },
                // The sender's other devices.
                Notice { role: sender.role, user: sender.id, event, push: None },
            ],
        )
        .await;
}

/// Moves the caller's delivered or read watermark to `up_to_seq` and tells the other party.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn mark(
    services: &Services,
    caller: &Principal,
    session: SessionId,
    receipt: Receipt,
    up_to_seq: i64,
) -> Result<SessionRow, ChatError> {
    let (row, moved) = services
        .store
        .mark_receipt(caller, session, receipt, up_to_seq)
        .await?
        .ok_or(ChatError::SessionNotFound)?;
    if moved {
        let (role, other) = other_party(caller, &row);
        let watermark = |up_to_seq| ReceiptData { session_id: row.id, up_to_seq, by: caller.role };
        let event = match (receipt, caller.role) {
            (Receipt::Delivered, Role::Customer) => {
                Event::MessageDelivered(watermark(row.customer_delivered_seq))
            }
            (Receipt::Delivered, _) => Event::MessageDelivered(watermark(row.mitra_delivered_seq)),
            (Receipt::Read, Role::Customer) => Event::MessageRead(watermark(row.customer_read_seq)),
            (Receipt::Read, _) => Event::MessageRead(watermark(row.mitra_read_seq)),
        };
        services.notify(vec![Notice { role, user: UserId(other), event, push: None }]).await;
    }
    Ok(row)
}

/// Tells the other party the caller is typing: ephemeral, never stored, shown for
/// [`TYPING_SHOWS_MS`]. The hub throttles how often one socket may send it.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn typing(store: &Store, caller: &Principal, session: SessionId) -> Result<(), ChatError> {
    let row = store.chat_session_for(caller, session).await?.ok_or(ChatError::SessionNotFound)?;
    if !row.status.is_open() {
        return Err(ChatError::SessionNotOpen(row.status));
    }
    let (_, other) = other_party(caller, &row);
    let event =
        Event::Typing(TypingData { session_id: row.id, by: caller.role, expires_in_ms: TYPING_SHOWS_MS });
    crate::broker::publish_ephemeral(store, UserId(other), &event).await?;
    Ok(())
}

fn other_party(caller: &Principal, row: &SessionRow) -> (Role, Uuid) {
    match caller.role {
        Role::Customer => (Role::Mitra, row.mitra_id.0),
        _ => (Role::Customer, row.customer_id.0),
    }
}

/// A page of history. `after_seq` pages forward, `before_seq` alone backward; both: the
/// first messages between them (filling a gap); neither: from the start.
pub async fn history(
    store: &Store,
    caller: &Principal,
    session: SessionId,
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    limit: Option<i64>,
) -> Result<Vec<MessageRow>, ChatError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ChatError::InvalidPage);
    }
    store.messages(caller, session, after_seq, before_seq, limit).await?.ok_or(ChatError::SessionNotFound)
}

/// A chat session as one of its parties sees it: the partner by the one name they may see.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub status: SessionStatus,
    pub partner: Partner,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub closing_started_at: Option<DateTime<Utc>>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The `seq` of the session's last message (0 before the first).
    #[schema(minimum = 0)]
    pub last_seq: i64,
    /// How far the partner has received the caller's messages.
    #[schema(minimum = 0)]
    pub partner_delivered_seq: i64,
    /// How far the partner has read the caller's messages.
    #[schema(minimum = 0)]
    pub partner_read_seq: i64,
    pub closing_messages: ClosingMessages,
}

/// The other party of a session: a customer sees the mitra's id and display name, a mitra
/// only the customer's call name.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Partner {
    Mitra { id: Uuid, display_name: String },
    Customer { call_name: String },
}

/// The goodbye each side left while the session was closing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClosingMessages {
    pub customer: Option<String>,
    pub mitra: Option<String>,
}

impl SessionView {
    pub fn new(caller: &Principal, row: &SessionRow) -> Self {
        let partner = match caller.role {
            Role::Customer => {
                Partner::Mitra { id: row.mitra_id.0, display_name: row.mitra_display_name.clone() }
            }
            _ => Partner::Customer { call_name: row.customer_call_name.clone() },
        };
        let (delivered, read) = match caller.role {
            // What the other side has received and read of the caller's messages.
            Role::Customer => (row.mitra_delivered_seq, row.mitra_read_seq),
            _ => (row.customer_delivered_seq, row.customer_read_seq),
        };
        Self {
            id: row.id.0,
            status: row.status,
            partner,
            started_at: row.started_at,
            ends_at: row.ends_at,
            closing_started_at: row.closing_started_at,
            grace_ends_at: row.grace_ends_at,
            completed_at: row.completed_at,
            last_seq: row.last_seq,
            partner_delivered_seq: delivered,
            partner_read_seq: read,
            closing_messages: ClosingMessages {
                customer: row.customer_closing_message.clone(),
                mitra: row.mitra_closing_message.clone(),
            },
        }
    }
}

/// One session of the caller's.
pub async fn session(store: &Store, caller: &Principal, id: SessionId) -> Result<SessionRow, ChatError> {
    store.chat_session_for(caller, id).await?.ok_or(ChatError::SessionNotFound)
}

/// The caller's sessions, newest first.
pub async fn sessions(
    store: &Store,
    caller: &Principal,
    before: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
) -> Result<Vec<SessionRow>, ChatError> {
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ChatError::InvalidPage);
    }
    Ok(store.chat_sessions_of(caller, before, limit).await?)
}

/// The mitra's sessions not yet completed (their chats list), newest first.
pub async fn live_sessions_of_mitra(store: &Store, mitra: &Principal) -> Result<Vec<SessionRow>, ChatError> {
    Ok(store.live_sessions_of_mitra(mitra.mitra_id()).await?)
}

/// The customer's live session (the home screen's card), if any.
pub async fn active_session(store: &Store, customer: &Principal) -> Result<Option<SessionRow>, ChatError> {
    Ok(store.live_session_of_customer(customer.customer_id()).await?)
}
