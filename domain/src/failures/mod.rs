//! The failed-pairings ledger, for operators: every payment that did not lead to a chat,
//! filtered by cause and date, and settled once (refunded, credited or no action).

mod activity_log;
pub mod store;

pub use activity_log::{OfferFilter, OfferLog, OfferView, offer_log};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::{CustomerRef, MitraRef};
use crate::auth::Principal;
use crate::calendar::{Instants, Period};
use crate::error::{DomainError, ErrorKind};
use crate::failures::store::ActivityRow;
use crate::failures::store::FailureFilter;
pub use crate::failures::store::FailureRow;
pub use crate::failures::store::OperatorAction;
use crate::ids::{FailureId, MitraId};
use crate::pairing::store::RequestType;
use crate::payment::store::PaymentStatus;
use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// Why a paid search ended without a chat: a failed request's `failure_cause`, its ledger
    /// row's `cause_tag`, the `cause_tag` apps receive and the `outcome` label of
    /// `bestie_pairing_outcomes_total`. The migration's CHECK constraints list the same names.
    pub enum FailureCause {
        /// A general search's window ended with no accept.
        NoMitraAvailable = "no_mitra_available",
        /// Every mitra offered a general search declined it.
        AllMitrasRejected = "all_mitras_rejected",
        /// The bestie of a returning chat was offline or full when it was asked for.
        TargetedMitraOffline = "targeted_mitra_offline",
        TargetedMitraRejected = "targeted_mitra_rejected",
        TargetedMitraTimeout = "targeted_mitra_timeout",
        PaymentSessionExpired = "payment_session_expired",
        CustomerCancelled = "customer_cancelled",
    }
}

impl FailureCause {
    /// The search ran out of time (what a mitra who had it open is told: `chat_request_expired`).
    pub fn is_timeout(self) -> bool {
        matches!(self, Self::NoMitraAvailable | Self::TargetedMitraTimeout | Self::PaymentSessionExpired)
    }

    /// The causes a search of `request_type` can end with.
    pub fn of_request_type(request_type: RequestType) -> impl Iterator<Item = Self> {
        let returning = request_type == RequestType::Returning;
        Self::ALL.iter().copied().filter(move |cause| match cause {
            Self::NoMitraAvailable | Self::AllMitrasRejected => !returning,
            Self::TargetedMitraOffline | Self::TargetedMitraRejected | Self::TargetedMitraTimeout => {
                returning
            }
            Self::PaymentSessionExpired | Self::CustomerCancelled => true,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FailureError {
    #[error("unknown cause tag {0}")]
    UnknownCauseTag(String),
    #[error("limit must be 1 to 200 and offset at least 0")]
    InvalidPage,
    #[error(
        "sort must be one of notified, accepted, rejected, ignored, missed, acceptance_rate, avg_response_seconds, display_name; order asc or desc"
    )]
    InvalidSort,
    #[error("action must be refunded, credited or no_action")]
    InvalidAction,
    #[error("response must be accepted, rejected, ignored or missed")]
    InvalidResponse,
    #[error("no such failed pairing")]
    NotFound,
    #[error("this failed pairing was already actioned ({0})")]
    AlreadyActioned(OperatorAction),
    #[error(
        "the customer was served with this payment after all (a fallback chat): nothing to refund or credit"
    )]
    PaymentServed,
    #[error("another failure of this payment was already refunded or credited")]
    PaymentSettled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for FailureError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownCauseTag(_) => "unknown_cause_tag",
            Self::InvalidPage => "invalid_page",
            Self::InvalidSort => "invalid_sort",
            Self::InvalidAction => "invalid_action",
            Self::InvalidResponse => "invalid_response",
            Self::NotFound => "failed_pairing_not_found",
            Self::AlreadyActioned(_) => "already_actioned",
            Self::PaymentServed => "payment_served",
            Self::PaymentSettled => "payment_already_settled",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownCauseTag(_)
            | Self::InvalidPage
            | Self::InvalidAction
            | Self::InvalidSort
            | Self::InvalidResponse => ErrorKind::Invalid,
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyActioned(_) | Self::PaymentServed | Self::PaymentSettled => ErrorKind::Conflict,
            Self::Store(e) => e.kind(),
        }
    }

    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Self::AlreadyActioned(action) => vec![("operator_action", json!(action))],
            _ => Vec::new(),
        }
    }
}

/// A page of the ledger and the total count matching the filters.
pub async fn list(
    store: &Store,
    causes: &[FailureCause],
    period: Period,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<FailurePage, FailureError> {
    let (limit, offset) = crate::page::checked(limit, offset).ok_or(FailureError::InvalidPage)?;
    let Instants { from: date_from, to: date_to } = store.instants(period).await?;
    let filter = FailureFilter { causes, date_from, date_to, limit, offset };
    let (rows, total) = store.failures(&filter).await?;
    Ok(FailurePage { rows: rows.iter().map(FailureView::from).collect(), total })
}

/// Records an operator's action on one row, once.
pub async fn action(
    store: &Store,
    operator: &Principal,
    id: FailureId,
    action: OperatorAction,
) -> Result<FailureView, FailureError> {
    Ok(FailureView::from(&store.action_failure(id, operator.operator_id(), action).await?))
}

/// A ledger row as the control center shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FailureView {
    pub id: Uuid,
    pub payment_session_id: Uuid,
    pub pairing_request_id: Option<Uuid>,
    pub customer: CustomerRef,
    /// The bestie a returning chat asked for; none for a general search.
    pub targeted_mitra: Option<MitraRef>,
    pub cause_tag: FailureCause,
    /// What the customer paid, in rupiah.
    #[schema(minimum = 0)]
    pub amount: i64,
    pub payment_status: PaymentStatus,
    /// The payment was consumed by a later chat (a fallback): nothing is owed.
    pub served_after_all: bool,
    pub operator_action: Option<OperatorAction>,
    /// The operator who recorded the action.
    pub actioned_by: Option<Uuid>,
    pub actioned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&FailureRow> for FailureView {
    fn from(row: &FailureRow) -> Self {
        Self {
            id: row.id.0,
            payment_session_id: row.payment_session_id.0,
            pairing_request_id: row.pairing_request_id.map(Uuid::from),
            customer: CustomerRef { id: row.customer_id.0, call_name: row.customer_call_name.clone() },
            targeted_mitra: row
                .targeted_mitra_id
                .zip(row.targeted_mitra_display_name.clone())
                .map(|(id, display_name)| MitraRef { id: id.0, display_name }),
            cause_tag: row.cause_tag,
            amount: row.amount,
            payment_status: row.payment_status,
            served_after_all: row.payment_status == PaymentStatus::Consumed,
            operator_action: row.operator_action,
            actioned_by: row.actioned_by.map(Uuid::from),
            actioned_at: row.actioned_at,
            created_at: row.created_at,
        }
    }
}

/// A page of the ledger.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FailurePage {
    pub rows: Vec<FailureView>,
    /// Rows matching the filters, on every page.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// One mitra's line of the activity report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActivityView {
    pub mitra: MitraRef,
    #[schema(minimum = 0)]
    pub notified: i64,
    #[schema(minimum = 0)]
    pub accepted: i64,
    #[schema(minimum = 0)]
    pub rejected: i64,
    #[schema(minimum = 0)]
    pub ignored: i64,
    #[schema(minimum = 0)]
    pub missed: i64,
    /// Accepted / notified, from 0 to 1; 0 when nothing was offered.
    #[schema(minimum = 0, maximum = 1)]
    pub acceptance_rate: f64,
    /// Mean seconds from offer to an explicit answer; none without one.
    #[schema(minimum = 0)]
    pub avg_response_seconds: Option<f64>,
}

impl From<&ActivityRow> for ActivityView {
    fn from(row: &ActivityRow) -> Self {
        Self {
            mitra: MitraRef { id: row.mitra_id.0, display_name: row.display_name.clone() },
            notified: row.notified,
            accepted: row.accepted,
            rejected: row.rejected,
            ignored: row.ignored,
            missed: row.missed,
            acceptance_rate: row.acceptance_rate,
            avg_response_seconds: row.avg_response_seconds,
        }
    }
}

/// The activity report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ActivityReport {
    pub rows: Vec<ActivityView>,
}

crate::text_enum::text_enum! {
    /// The columns the activity report sorts by: a column of [`ActivityView`] or the name.
    pub enum ActivitySort {
        Notified = "notified",
        Accepted = "accepted",
        Rejected = "rejected",
        Ignored = "ignored",
        Missed = "missed",
        AcceptanceRate = "acceptance_rate",
        AvgResponseSeconds = "avg_response_seconds",
        DisplayName = "display_name",
    }
}

crate::text_enum::text_enum! {
    /// Which way a report is sorted.
    pub enum SortOrder {
        Desc = "desc",
        Asc = "asc",
    }
}

/// The mitra request-activity report (seed 002): per mitra over `[from, to)` (default: the
/// last 7 days, sorted by `notified`, descending), computed in SQL over the activity log.
pub async fn mitra_activity(
    store: &Store,
    period: Period,
    mitra: Option<MitraId>,
    sort: Option<ActivitySort>,
    order: Option<SortOrder>,
) -> Result<ActivityReport, FailureError> {
    let (from, to) = last_week_unless(store.instants(period).await?);
    let sort = sort.unwrap_or(ActivitySort::Notified);
    let order = order.unwrap_or(SortOrder::Desc);
    let rows = store.mitra_activity(from, to, mitra, sort, order).await?;
    Ok(ActivityReport { rows: rows.iter().map(ActivityView::from).collect() })
}

/// A report's period: `to` defaults to now, `from` to 7 days before `to`.
fn last_week_unless(given: Instants) -> (DateTime<Utc>, DateTime<Utc>) {
    let to = given.to.unwrap_or_else(Utc::now);
    (given.from.unwrap_or(to - chrono::Duration::days(7)), to)
}
