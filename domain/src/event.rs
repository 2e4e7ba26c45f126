//! Events: what reaches an app through its socket. Every event crossing processes is an
//! [`Event`]; producers (api, workers, other hubs) publish it for a user with
//! [`crate::events::publish`], and the hub holding that user's sockets delivers it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

crate::text_enum::text_enum! {
    /// The kinds of event an app receives (the frame's `type`). The `data` of each is
    /// described in docs/PROTOCOL.md §5, which lists exactly these (a tidy test checks).
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

/// One event for one user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub data: Value,
}

impl Event {
    pub fn new(kind: EventKind, data: Value) -> Self {
        Self { kind, data }
    }
}
