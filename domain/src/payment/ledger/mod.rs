//! Payments as operators reconcile them: every payment session with the charge that settled
//! it (the successful one, else the latest attempt), filtered by state, customer and date,
//! a page at a time or all of it as CSV.

mod store;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::accounts::CustomerRef;
use crate::calendar::{Instants, Period};
use crate::charges::store::ChargeStatus;
use crate::error::{DomainError, ErrorKind};
use crate::ids::{ChargeId, CustomerId, PaymentId, SessionId};
use crate::payment::store::{PaymentPurpose, PaymentStatus};
use crate::store::{Store, StoreError};

/// Most rows one CSV export holds; a larger period is exported in parts.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("limit must be 1 to 200 and offset at least 0")]
    InvalidPage,
    #[error("more than {MAX_EXPORT_ROWS} payments match: export a shorter period")]
    ExportTooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for LedgerError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidPage => "invalid_page",
            Self::ExportTooLarge => "export_too_large",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidPage | Self::ExportTooLarge => ErrorKind::Invalid,
            Self::Store(e) => e.kind(),
        }
    }
}

/// The ledger's filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    pub customer: Option<CustomerId>,
    /// Over `created_at`.
    pub period: Period,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct LineRow {
    id: PaymentId,
    customer_id: CustomerId,
    call_name: String,
    purpose: PaymentPurpose,
    chat_session_id: Option<SessionId>,
    tier_id: Option<String>,
    duration_minutes: i32,
    amount: i64,
    is_free_trial: bool,
    status: PaymentStatus,
    created_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    charge_id: Option<ChargeId>,
    charge_status: Option<ChargeStatus>,
    charge_provider: Option<String>,
    charge_provider_ref: Option<String>,
    charge_amount: Option<i64>,
    charge_failure_reason: Option<String>,
    charge_created_at: Option<DateTime<Utc>>,
    failed_charges: i64,
}

/// The charge that settled a payment, or its latest attempt.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChargeLine {
    pub id: ChargeId,
    pub status: ChargeStatus,
    /// `mock` or the provider adapter's name.
    pub provider: String,
    /// The provider's reference, to match its statement.
    pub provider_ref: Option<String>,
    /// In rupiah.
    #[schema(minimum = 0)]
    pub amount: i64,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One payment session of the ledger.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PaymentLine {
    pub id: PaymentId,
    pub customer: CustomerRef,
    pub purpose: PaymentPurpose,
    /// The chat it paid for: the session it started, or the one an extension extended.
    pub chat_session_id: Option<SessionId>,
    pub tier_id: Option<String>,
    #[schema(minimum = 1)]
    pub duration_minutes: i32,
    /// In rupiah.
    #[schema(minimum = 0)]
    pub amount: i64,
    pub is_free_trial: bool,
    pub status: PaymentStatus,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// None when nothing was charged (a free trial, or not confirmed).
    pub charge: Option<ChargeLine>,
    /// Declined attempts before (or instead of) the charge shown.
    #[schema(minimum = 0)]
    pub failed_charges: i64,
}

impl From<LineRow> for PaymentLine {
    fn from(row: LineRow) -> Self {
        let charge = match (row.charge_id, row.charge_status, row.charge_provider, row.charge_created_at) {
            (Some(id), Some(status), Some(provider), Some(created_at)) => Some(ChargeLine {
                id,
                status,
                provider,
                provider_ref: row.charge_provider_ref,
                amount: row.charge_amount.unwrap_or_default(),
                failure_reason: row.charge_failure_reason,
                created_at,
            }),
            _ => None,
        };
        Self {
            id: row.id,
            customer: CustomerRef { id: row.customer_id.0, call_name: row.call_name },
            purpose: row.purpose,
            chat_session_id: row.chat_session_id,
            tier_id: row.tier_id,
            duration_minutes: row.duration_minutes,
            amount: row.amount,
            is_free_trial: row.is_free_trial,
            status: row.status,
            created_at: row.created_at,
            confirmed_at: row.confirmed_at,
            resolved_at: row.resolved_at,
            charge,
            failed_charges: row.failed_charges,
        }
    }
}

/// A page of the ledger, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    pub rows: Vec<PaymentLine>,
    /// Payments matching the filters, on every page.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// A page of payments, newest first.
pub async fn list_payments(store: &Store, filter: PaymentFilter) -> Result<PaymentPage, LedgerError> {
    let (limit, offset) =
        crate::page::checked(filter.limit, filter.offset).ok_or(LedgerError::InvalidPage)?;
    let period = store.instants(filter.period).await?;
    let rows = store.payment_lines(&filter, period, limit, offset).await?;
    let total = store.payment_count(&filter, period).await?;
    Ok(PaymentPage { rows: rows.into_iter().map(PaymentLine::from).collect(), total })
}

/// A customer's latest `count` payments, newest first (no total: a customer's page shows
/// only these).
pub async fn latest_payments_of(
    store: &Store,
    customer: CustomerId,
    count: i64,
) -> Result<Vec<PaymentLine>, StoreError> {
    let filter = PaymentFilter { customer: Some(customer), ..PaymentFilter::default() };
    let rows = store.payment_lines(&filter, Instants::default(), count, 0).await?;
    Ok(rows.into_iter().map(PaymentLine::from).collect())
}

/// The CSV header of [`export_payments`].
pub const CSV_HEADER: [&str; 18] = [
    "payment_id",
    "created_at",
    "customer_id",
    "customer_call_name",
    "purpose",
    "chat_session_id",
    "tier_id",
    "duration_minutes",
    "amount",
    "is_free_trial",
    "status",
    "confirmed_at",
    "resolved_at",
    "charge_id",
    "charge_status",
    "provider",
    "provider_ref",
    "charged_amount",
];

/// Every payment matching the filters (not paged), oldest first, as CSV (RFC 4180, UTF-8,
/// times in RFC 3339 UTC). Text a customer typed (the call name) never starts a cell with
/// `=`, `+`, `-` or `@`: a spreadsheet would run it as a formula, so it gets a leading `'`.
pub async fn export_payments(store: &Store, filter: PaymentFilter) -> Result<Vec<u8>, LedgerError> {
    let period = store.instants(filter.period).await?;
    if store.payment_count(&filter, period).await? > MAX_EXPORT_ROWS {
        return Err(LedgerError::ExportTooLarge);
    }
    let rows = store.payment_lines(&filter, period, MAX_EXPORT_ROWS, 0).await?;
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256 * rows.len() + 256));
    out.write_record(CSV_HEADER).map_err(csv_error)?;
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let optional_time = |at: Option<DateTime<Utc>>| at.map(time).unwrap_or_default();
    for line in rows.into_iter().rev().map(PaymentLine::from) {
        let charge = line.charge.as_ref();
        out.write_record([
            line.id.to_string(),
            time(line.created_at),
            line.customer.id.to_string(),
            inert(&line.customer.call_name),
            line.purpose.as_str().to_owned(),
            line.chat_session_id.map(|id| id.to_string()).unwrap_or_default(),
            line.tier_id.as_deref().map(inert).unwrap_or_default(),
            line.duration_minutes.to_string(),
            line.amount.to_string(),
            line.is_free_trial.to_string(),
            line.status.as_str().to_owned(),
            optional_time(line.confirmed_at),
            optional_time(line.resolved_at),
            charge.map(|c| c.id.to_string()).unwrap_or_default(),
            charge.map(|c| c.status.as_str().to_owned()).unwrap_or_default(),
            charge.map(|c| inert(&c.provider)).unwrap_or_default(),
            charge.and_then(|c| c.provider_ref.as_deref()).map(inert).unwrap_or_default(),
            charge.map(|c| c.amount.to_string()).unwrap_or_default(),
        ])
        .map_err(csv_error)?;
    }
    out.into_inner().map_err(|e| csv_error(e.into_error().into()))
}

fn csv_error(error: csv::Error) -> LedgerError {
    LedgerError::Store(StoreError::Encode(format!("csv: {error}")))
}

/// Text that a spreadsheet shows as text, never evaluates.
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn customer_text_cannot_become_a_formula() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("+62"), "'+62");
        assert_eq!(inert("@rani"), "'@rani");
        assert_eq!(inert("Rani"), "Rani");
    }
}
