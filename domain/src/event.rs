//! Events: what reaches an app through its socket. Every event crossing processes is an
//! [`Event`]; producers (api, workers, other hubs) publish it for a user with
//! [`crate::events::publish`], and the hub holding that user's sockets delivers it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of event an app receives. The `data` of each is described in docs/PROTOCOL.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A mitra is asked to take a chat (general blast or returning chat).
    ChatRequest,
    /// Another mitra took the request this mitra was shown.
    ChatRequestTaken,
    /// The customer cancelled the request this mitra was shown.
    ChatRequestCancelled,
    /// The request this mitra was shown expired.
    ChatRequestExpired,
    /// The request this mitra was shown ended otherwise (e.g. every mitra declined).
    ChatRequestClosed,
    /// The customer's request was accepted: the chat session starts.
    Paired,
    /// The customer's request failed, with its cause tag.
    PairingFailed,
    /// The bestie of a returning chat declined (`RETURNING_CHAT_REJECTED` in the old apps).
    ReturningChatRejected,
    /// The bestie of a returning chat did not answer in time (`RETURNING_CHAT_TIMEOUT`).
    ReturningChatTimeout,
    ChatMessage,
    MessageDelivered,
    MessageRead,
    /// The other party is typing (never stored).
    Typing,
    SessionEndingWarning,
    SessionClosing,
    SessionResumed,
    SessionCompleted,
    /// The other side left its goodbye while the session was closing.
    ClosingMessage,
    ExtensionRequested,
    ExtensionResolved,
}

impl EventKind {
    pub const ALL: [EventKind; 20] = [
        Self::ClosingMessage,
        Self::ChatRequest,
        Self::ChatRequestTaken,
        Self::ChatRequestCancelled,
        Self::ChatRequestExpired,
        Self::ChatRequestClosed,
        Self::Paired,
        Self::PairingFailed,
        Self::ReturningChatRejected,
        Self::ReturningChatTimeout,
        Self::ChatMessage,
        Self::MessageDelivered,
        Self::MessageRead,
        Self::Typing,
        Self::SessionEndingWarning,
        Self::SessionClosing,
        Self::SessionResumed,
        Self::SessionCompleted,
        Self::ExtensionRequested,
        Self::ExtensionResolved,
    ];

    /// The wire name (`type` of the frame).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatRequest => "chat_request",
            Self::ChatRequestTaken => "chat_request_taken",
            Self::ChatRequestCancelled => "chat_request_cancelled",
            Self::ChatRequestExpired => "chat_request_expired",
            Self::ChatRequestClosed => "chat_request_closed",
            Self::Paired => "paired",
            Self::PairingFailed => "pairing_failed",
            Self::ReturningChatRejected => "returning_chat_rejected",
            Self::ReturningChatTimeout => "returning_chat_timeout",
            Self::ChatMessage => "chat_message",
            Self::MessageDelivered => "message_delivered",
            Self::MessageRead => "message_read",
            Self::Typing => "typing",
            Self::SessionEndingWarning => "session_ending_warning",
            Self::SessionClosing => "session_closing",
            Self::SessionResumed => "session_resumed",
            Self::SessionCompleted => "session_completed",
            Self::ClosingMessage => "closing_message",
            Self::ExtensionRequested => "extension_requested",
            Self::ExtensionResolved => "extension_resolved",
        }
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

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn kind_names_match_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).expect("serializes"), kind.as_str());
        }
    }
}
