//! What apps see of pairing: a customer's chat requests, a mitra's offers and the request
//! status a mitra's app reads when it resumes, each with its OpenAPI schema.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::*;

/// A chat request (a search) as its customer sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChatRequestView {
    pub id: Uuid,
    pub payment_session_id: Uuid,
    pub request_type: RequestType,
    pub targeted_mitra_id: Option<Uuid>,
    pub status: RequestState,
    /// Why it failed (`failed` and `cancelled` only).
    pub failure_cause: Option<FailureCause>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&RequestRow> for ChatRequestView {
    fn from(request: &RequestRow) -> Self {
        Self {
            id: request.id.0,
            payment_session_id: request.payment_session_id.0,
            request_type: request.request_type,
            targeted_mitra_id: request.targeted_mitra_id.map(Uuid::from),
            status: request.status,
            failure_cause: request.failure_cause,
            created_at: request.created_at,
            expires_at: request.expires_at,
            resolved_at: request.resolved_at,
        }
    }
}

/// The only thing a mitra sees of a customer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerName {
    pub call_name: String,
}

/// A request offered to a mitra: the `chat_request` event's data, and each row of
/// `GET /api/mitra/chat-requests/open`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OfferView {
    pub request_id: Uuid,
    pub request_type: RequestType,
    pub customer: CustomerName,
    #[schema(minimum = 1, maximum = 240)]
    pub duration_minutes: i32,
    pub expires_at: DateTime<Utc>,
    /// Seconds left to answer when this was sent.
    #[schema(minimum = 0)]
    pub countdown_s: i64,
}

impl From<&Offer> for OfferView {
    fn from(offer: &Offer) -> Self {
        Self {
            request_id: offer.request_id.0,
            request_type: offer.request_type,
            customer: CustomerName { call_name: offer.customer_call_name.clone() },
            duration_minutes: offer.duration_minutes,
            expires_at: offer.expires_at,
            countdown_s: (offer.expires_at - Utc::now()).num_seconds().max(0),
        }
    }
}

/// A won accept: the session that started.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AcceptedView {
    pub request_id: Uuid,
    pub request_type: RequestType,
    pub chat_session: StartedView,
    pub customer: CustomerName,
}

/// The start of a chat session.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StartedView {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[schema(minimum = 1, maximum = 240)]
    pub duration_minutes: i32,
}

impl From<&Accepted> for AcceptedView {
    fn from(accepted: &Accepted) -> Self {
        Self {
            request_id: accepted.request.id.0,
            request_type: accepted.request.request_type,
            chat_session: StartedView {
                id: accepted.session.id.0,
                started_at: accepted.session.started_at,
                ends_at: accepted.session.ends_at,
                duration_minutes: accepted.duration_minutes,
            },
            customer: CustomerName { call_name: accepted.customer_call_name.clone() },
        }
    }
}

crate::text_enum::text_enum! {
    /// Where a request stands as the mitra it was offered to sees it.
    pub enum OfferStatus {
        /// Its window is open.
        Pending = "pending",
        /// Accepted by this mitra.
        Accepted = "accepted",
        /// Accepted by another mitra.
        Taken = "taken",
        /// The customer cancelled the search.
        Cancelled = "cancelled",
        /// The window closed unanswered.
        Expired = "expired",
        /// Failed otherwise (e.g. every mitra declined).
        Closed = "closed",
    }
}

/// What a mitra's app sees of a request it resumed to or opened from a push.
#[derive(Clone, Debug)]
pub struct RequestStatus {
    pub request: RequestRow,
    pub status: OfferStatus,
    /// This mitra's own answer, if any.
    pub response: Option<OfferResponse>,
}

/// The body of `GET /api/mitra/chat-requests/{id}/status`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RequestStatusView {
    pub request_id: Uuid,
    pub request_type: RequestType,
    pub status: OfferStatus,
    /// This mitra's own answer, `null` while unanswered.
    pub your_response: Option<OfferResponse>,
    pub expires_at: DateTime<Utc>,
}

impl From<&RequestStatus> for RequestStatusView {
    fn from(status: &RequestStatus) -> Self {
        Self {
            request_id: status.request.id.0,
            request_type: status.request.request_type,
            status: status.status,
            your_response: status.response,
            expires_at: status.request.expires_at,
        }
    }
}
