//! Events: what reaches an app through its socket. Every event crossing processes is an
//! [`Event`], one variant per kind with its data typed; producers (api, workers, other hubs)
//! publish it for a user with [`crate::broker::publish`], and the hub holding that user's
//! sockets delivers it. The wire form is `{"type": <kind>, "data": <data>}`; docs/PROTOCOL.md
//! §5 describes each (a tidy test checks it lists exactly the kinds below).

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::auth::Role;
use crate::chat::MessageView;
use crate::chat::store::ClosureKind;
use crate::extension::{ExtensionReason, ExtensionStatus};
use crate::failures::FailureCause;
use crate::ids::{ExtensionId, MitraId, PaymentId, RequestId, SessionId};
use crate::pairing::{OfferView, RequestType};
use crate::store::StoreError;

crate::text_enum::text_enum! {
    /// The kinds of event an app receives (the frame's `type`): [`Event`]'s variants, by name.
    pub enum EventKind {
        /// A mitra is asked to take a chat (general blast or returning chat).
        ChatRequest = "chat_request",
        /// Another mitra took the request this mitra was shown.
        ChatRequestTaken = "chat_request_taken",
        /// The customer cancelled the request this mitra was shown.
        ChatRequestCancelled = "chat_request_cancelled",
        /// The request this mitra was shown expired.
        ChatRequestExpired = "chat_request_expired",
        /// The request this mitra was shown ended otherwise (e.g. every mitra declined).
        ChatRequestClosed = "chat_request_closed",
        /// The customer's request was accepted: the chat session starts.
        Paired = "paired",
        /// The customer's request failed, with its cause tag.
        PairingFailed = "pairing_failed",
        /// The bestie of a returning chat declined (`RETURNING_CHAT_REJECTED` in the old apps).
        ReturningChatRejected = "returning_chat_rejected",
        /// The bestie of a returning chat did not answer in time (`RETURNING_CHAT_TIMEOUT`).
        ReturningChatTimeout = "returning_chat_timeout",
        ChatMessage = "chat_message",
        MessageDelivered = "message_delivered",
        MessageRead = "message_read",
        /// The other party is typing (never stored).
        Typing = "typing",
        SessionEndingWarning = "session_ending_warning",
        SessionClosing = "session_closing",
        SessionResumed = "session_resumed",
        SessionCompleted = "session_completed",
        /// The other side left its goodbye while the session was closing.
        ClosingMessage = "closing_message",
        ExtensionRequested = "extension_requested",
        ExtensionResolved = "extension_resolved",
    }
}

/// Declares [`Event`] with a variant per [`EventKind`] of the same name, its `kind()`, and
/// its wire form, so a variant cannot be sent under another kind's name.
macro_rules! events {
    ($( $(#[$meta:meta])* $variant:ident($data:ty), )+) => {
        /// One event for one user.
        #[derive(Clone, Debug)]
        pub enum Event {
            $( $(#[$meta])* $variant($data), )+
        }

        impl Event {
            pub fn kind(&self) -> EventKind {
                match self {
                    $( Self::$variant(_) => EventKind::$variant, )+
                }
            }
        }

        impl Serialize for Event {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut frame = serializer.serialize_struct("Event", 2)?;
                frame.serialize_field("type", &self.kind())?;
                match self {
                    $( Self::$variant(data) => frame.serialize_field("data", data)?, )+
                }
                frame.end()
            }
        }
    };
}

events! {
    /// To each mitra offered a request.
    ChatRequest(OfferView),
    ChatRequestTaken(RequestRef),
    ChatRequestCancelled(RequestRef),
    ChatRequestExpired(RequestRef),
    ChatRequestClosed(RequestRef),
    /// To the customer and the mitra of the session that started.
    Paired(PairedData),
    /// To the customer whose search failed.
    PairingFailed(PairingFailedData),
    ReturningChatRejected(PairingFailedData),
    ReturningChatTimeout(PairingFailedData),
    /// To the other party of the sender.
    ChatMessage(ChatMessageData),
    MessageDelivered(ReceiptData),
    MessageRead(ReceiptData),
    Typing(TypingData),
    /// To both parties.
    SessionEndingWarning(EndingWarningData),
    SessionClosing(ClosingData),
    SessionResumed(ResumedData),
    SessionCompleted(CompletedData),
    /// To the other party of the one leaving it.
    ClosingMessage(ClosingMessageData),
    /// To both parties.
    ExtensionRequested(ExtensionRequestedData),
    ExtensionResolved(ExtensionResolvedData),
}

/// An event as published: its kind (for the hub's metric labels, without parsing) and its
/// wire JSON.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub kind: EventKind,
    pub json: String,
}

impl Event {
    pub fn encode(&self) -> Result<Encoded, StoreError> {
        let json = serde_json::to_string(self).map_err(|e| StoreError::Encode(e.to_string()))?;
        Ok(Encoded { kind: self.kind(), json })
    }
}

/// The request a mitra was shown, which ended for them.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRef {
    pub request_id: RequestId,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairedData {
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub payment_session_id: PaymentId,
    pub chat_session: PairedSession,
    /// To the customer only: the mitra's display name (never more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitra: Option<PairedMitra>,
    /// To the mitra only: the customer's call name (never more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<PairedCustomer>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairedSession {
    pub id: SessionId,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub duration_minutes: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairedMitra {
    pub id: Option<MitraId>,
    pub display_name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairedCustomer {
    pub call_name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PairingFailedData {
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub payment_session_id: PaymentId,
    pub cause_tag: FailureCause,
    /// After a returning chat fails, the same payment may run a general blast.
    pub fallback_offered: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatMessageData {
    pub message: MessageView,
}

/// A delivery or read watermark of the other party.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptData {
    pub session_id: SessionId,
    pub up_to_seq: i64,
    pub by: Role,
}

#[derive(Clone, Debug, Serialize)]
pub struct TypingData {
    pub session_id: SessionId,
    pub by: Role,
    pub expires_in_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EndingWarningData {
    pub session_id: SessionId,
    pub ends_at: DateTime<Utc>,
    pub seconds_left: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClosingData {
    pub session_id: SessionId,
    pub reason: ClosureKind,
    /// Who ended it early; `null` when its time ran out.
    pub by: Option<Role>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// Only a session whose time ran out may still be extended by the customer.
    pub can_extend: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResumedData {
    pub session_id: SessionId,
    pub ends_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompletedData {
    pub session_id: SessionId,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClosingMessageData {
    pub session_id: SessionId,
    pub by: Role,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExtensionRequestedData {
    pub extension_id: ExtensionId,
    pub session_id: SessionId,
    pub duration_minutes: i32,
    pub expires_at: DateTime<Utc>,
    pub countdown_s: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExtensionResolvedData {
    pub extension_id: ExtensionId,
    pub session_id: SessionId,
    pub outcome: ExtensionStatus,
    pub reason: Option<ExtensionReason>,
    pub ends_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_is_written_as_its_kind_and_its_data() {
        let session = SessionId(uuid::Uuid::new_v4());
        let event = Event::Typing(TypingData { session_id: session, by: Role::Mitra, expires_in_ms: 5_000 });
        let encoded = event.encode().expect("encodes");
        assert_eq!(encoded.kind, EventKind::Typing);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&encoded.json).expect("json"),
            json!({"type": "typing", "data": {"session_id": session, "by": "mitra", "expires_in_ms": 5000}})
        );
    }
}
