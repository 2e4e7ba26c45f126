//! The mitra request-activity log, row by row: every offer a mitra was sent, what they
//! answered and how fast, beside the per-mitra report ([`super::mitra_activity`]).

mod store;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::MitraRef;
use crate::calendar::{Instants, Period};
use crate::failures::FailureError;
use crate::ids::{MitraId, RequestId};
use crate::pairing::store::{OfferResponse, RequestState, RequestType};
use crate::store::Store;

/// One offer as stored, with the mitra's name.
#[derive(Clone, Debug, sqlx::FromRow)]
struct OfferRow {
    id: i64,
    pairing_request_id: RequestId,
    request_type: RequestType,
    request_status: RequestState,
    mitra_id: MitraId,
    display_name: String,
    notified_at: DateTime<Utc>,
    response: Option<OfferResponse>,
    responded_at: Option<DateTime<Utc>>,
    active_session_count: i32,
    pushed: bool,
}

/// One offer of the log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OfferView {
    #[schema(minimum = 1)]
    pub id: i64,
    pub pairing_request_id: Uuid,
    pub request_type: RequestType,
    /// Where the request stands now: an offer with no `response` is still open only while
    /// this is `pending` (a request the customer cancelled leaves its offers unanswered).
    pub request_status: RequestState,
    pub mitra: MitraRef,
    pub notified_at: DateTime<Utc>,
    /// None while the request is open, and for a request the customer cancelled.
    pub response: Option<OfferResponse>,
    /// When the mitra accepted or rejected; none when they did not act.
    pub responded_at: Option<DateTime<Utc>>,
    /// Seconds from the offer to the mitra's answer.
    #[schema(minimum = 0)]
    pub response_seconds: Option<f64>,
    /// The mitra's active sessions when the offer went out.
    #[schema(minimum = 0)]
    pub active_session_count: i32,
    /// A push went out because the mitra had no live socket.
    pub pushed: bool,
}

impl From<OfferRow> for OfferView {
    fn from(row: OfferRow) -> Self {
        let response_seconds =
            row.responded_at.map(|at| (at - row.notified_at).num_milliseconds() as f64 / 1_000.0);
        Self {
            id: row.id,
            pairing_request_id: row.pairing_request_id.into(),
            request_type: row.request_type,
            request_status: row.request_status,
            mitra: MitraRef { id: row.mitra_id.0, display_name: row.display_name },
            notified_at: row.notified_at,
            response: row.response,
            responded_at: row.responded_at,
            response_seconds,
            active_session_count: row.active_session_count,
            pushed: row.pushed,
        }
    }
}

/// A page of the log, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OfferLog {
    pub rows: Vec<OfferView>,
    /// Offers matching the filters, on every page.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// The log's filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfferFilter {
    pub period: Period,
    pub mitra: Option<MitraId>,
    pub response: Option<OfferResponse>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A page of offers over `[from, to)` (default the last 7 days), newest first.
pub async fn offer_log(store: &Store, filter: OfferFilter) -> Result<OfferLog, FailureError> {
    let (limit, offset) =
        crate::page::checked(filter.limit, filter.offset).ok_or(FailureError::InvalidPage)?;
    let (from, to) = super::last_week_unless(store.instants(filter.period).await?);
    let (rows, total) = store
        .offer_log(Instants { from: Some(from), to: Some(to) }, filter.mitra, filter.response, limit, offset)
        .await?;
    Ok(OfferLog { rows: rows.into_iter().map(OfferView::from).collect(), total })
}
