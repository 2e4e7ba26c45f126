//! What a pairing step refuses, with the stable code and status of each refusal. The store's
//! pairing transitions answer these directly, in the words of whoever asked (a search's
//! payment that is not the caller's is `payment_not_owned`, a mitra's unknown request
//! `chat_request_not_found`).

use serde_json::json;
use uuid::Uuid;

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("no such payment session")]
    PaymentNotFound,
    #[error("this is not a payment session of yours")]
    PaymentNotOwned,
    #[error("no such chat request")]
    RequestNotFound,
    #[error("this payment session is for an extension, not a new chat")]
    NotForChat,
    #[error("the payment session is {0}, not confirmed")]
    PaymentNotConfirmed(PaymentStatus),
    #[error("the payment session has expired")]
    PaymentExpired,
    #[error("a search for this payment is already under way")]
    SearchInProgress,
    #[error("this payment already started a chat")]
    AlreadyPaired(Option<Uuid>),
    #[error("the payment was made for another bestie")]
    TargetMismatch,
    #[error("your bestie is not online right now")]
    TargetedOffline,
    #[error("this payment cannot fall back to a general search")]
    FallbackNotAvailable,
    #[error("another bestie already took this request")]
    Taken,
    #[error("the customer cancelled this request")]
    RequestCancelled,
    #[error("this request has expired")]
    RequestExpired,
    #[error("this request is closed")]
    RequestClosed,
    #[error("you already answered this request ({0})")]
    AlreadyResponded(OfferResponse),
    #[error("you already have the most sessions allowed at once")]
    AtCapacity,
    #[error("this customer was blocked by the control center")]
    CustomerBlocked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for PairingError {
    fn code(&self) -> &'static str {
        match self {
            Self::PaymentNotFound => "payment_session_not_found",
            Self::PaymentNotOwned => "payment_not_owned",
            Self::RequestNotFound => "chat_request_not_found",
            Self::NotForChat => "payment_not_for_chat",
            Self::PaymentNotConfirmed(_) => "payment_not_confirmed",
            Self::PaymentExpired => "payment_session_expired",
            Self::SearchInProgress => "search_in_progress",
            Self::AlreadyPaired(_) => "already_paired",
            Self::TargetMismatch => "targeted_mitra_mismatch",
            Self::TargetedOffline => "targeted_mitra_offline",
            Self::FallbackNotAvailable => "fallback_not_available",
            Self::Taken => "chat_request_taken",
            Self::RequestCancelled => "chat_request_cancelled",
            Self::RequestExpired => "chat_request_expired",
            Self::RequestClosed => "chat_request_closed",
            Self::AlreadyResponded(_) => "already_responded",
            Self::AtCapacity => "mitra_at_capacity",
            Self::CustomerBlocked => "customer_blocked",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::PaymentNotFound | Self::RequestNotFound => ErrorKind::NotFound,
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Conflict,
        }
    }

    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Self::PaymentNotConfirmed(status) => vec![("status", json!(status))],
            Self::AlreadyPaired(Some(session)) => vec![("chat_session_id", json!(session))],
            Self::AlreadyResponded(response) => vec![("response", json!(response))],
            Self::TargetedOffline => vec![("reason", json!(FailureCause::TargetedMitraOffline))],
            _ => Vec::new(),
        }
    }

    fn top_level(&self) -> &'static [&'static str] {
        match self {
            // Seed 001 §1.6: `409 { reason: 'targeted_mitra_offline' }`.
            Self::TargetedOffline => &["reason"],
            _ => &[],
        }
    }
}

impl PairingError {
    /// A request that is no longer open, as a mitra answering it is told.
    pub(crate) fn closed(status: RequestState, cause: Option<FailureCause>) -> Self {
        match (status, cause) {
            (RequestState::Accepted, _) => Self::Taken,
            (RequestState::Cancelled, _) => Self::RequestCancelled,
            (_, Some(cause)) if cause.is_timeout() => Self::RequestExpired,
            _ => Self::RequestClosed,
        }
    }
}
