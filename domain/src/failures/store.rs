//! The failure ledger as operators work it: filtered pages and settling a row.

use crate::ids::{CustomerId, PaymentId, RequestId};
use crate::ids::{FailureId, OperatorId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::failures::{FailureCause, FailureError};
use crate::ids::MitraId;
use crate::payment::store::PaymentStatus;
use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// What an operator recorded on a ledger row, once.
    pub enum OperatorAction {
        /// The customer got their money back.
        Refunded = "refunded",
        /// The customer got a credit for a later chat.
        Credited = "credited",
        /// Nothing is owed (e.g. the customer was served after all).
        NoAction = "no_action",
    }
}

/// A ledger row with what an operator needs to decide on it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FailureRow {
    pub id: FailureId,
    pub payment_session_id: PaymentId,
    pub pairing_request_id: Option<RequestId>,
    pub customer_id: CustomerId,
    pub customer_call_name: String,
    pub targeted_mitra_id: Option<MitraId>,
    pub targeted_mitra_display_name: Option<String>,
    pub cause_tag: FailureCause,
    pub amount: i64,
    /// The payment's state now: `consumed` means the customer was served after all (a
    /// fallback blast), so nothing is owed.
    pub payment_status: PaymentStatus,
    pub operator_action: Option<OperatorAction>,
    pub actioned_by: Option<OperatorId>,
    pub actioned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const FAILURE_SELECT: &str = "SELECT f.id, f.payment_session_id, f.pairing_request_id, f.customer_id,
        c.call_name AS customer_call_name, f.targeted_mitra_id, m.display_name AS targeted_mitra_display_name,
        f.cause_tag, f.amount, p.status AS payment_status, f.operator_action, f.actioned_by, f.actioned_at,
        f.created_at
     FROM pairing_failures f
     JOIN customers c ON c.id = f.customer_id
     JOIN payment_sessions p ON p.id = f.payment_session_id
     LEFT JOIN mitras m ON m.id = f.targeted_mitra_id";

/// Filters of the ledger page.
pub struct FailureFilter<'a> {
    pub causes: &'a [FailureCause],
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    /// A page of the ledger, newest first, with the total matching the filters.
    pub(crate) async fn failures(
        &self,
        filter: &FailureFilter<'_>,
    ) -> Result<(Vec<FailureRow>, i64), StoreError> {
        let condition = "($1::text[] = '{}' OR f.cause_tag = ANY($1))
             AND ($2::timestamptz IS NULL OR f.created_at >= $2)
             AND ($3::timestamptz IS NULL OR f.created_at < $3)";
        let query =
            format!("{FAILURE_SELECT} WHERE {condition} ORDER BY f.created_at DESC, f.id LIMIT $4 OFFSET $5");
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(query))
            .bind(filter.causes)
            .bind(filter.date_from)
            .bind(filter.date_to)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pg)
            .await?;
        let count = format!("SELECT count(*) FROM pairing_failures f WHERE {condition}");
        let total = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .bind(filter.causes)
            .bind(filter.date_from)
            .bind(filter.date_to)
            .fetch_one(&self.pg)
            .await?;
        Ok((rows, total))
    }

    /// Records an operator's action on a row, once. A refund or credit is refused when the
    /// payment was served after all, or another row of it was settled: one payment is
    /// settled once, however many failures it had.
    pub(crate) async fn action_failure(
        &self,
        id: FailureId,
        operator: OperatorId,
        action: OperatorAction,
    ) -> Result<FailureRow, FailureError> {
        let mut tx = self.pg.begin().await?;
        // The payment row is locked so two rows of one payment are settled one at a time.
        let found: Option<(Uuid, Option<OperatorAction>, PaymentStatus)> = sqlx::query_as(
            "SELECT f.payment_session_id, f.operator_action, p.status FROM pairing_failures f
             JOIN payment_sessions p ON p.id = f.payment_session_id
             WHERE f.id = $1 FOR UPDATE OF f, p",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((payment, done, payment_status)) = found else {
            return Err(FailureError::NotFound);
        };
        if let Some(done) = done {
            return Err(FailureError::AlreadyActioned(done));
        }
        if action != OperatorAction::NoAction {
            if payment_status == PaymentStatus::Consumed {
                return Err(FailureError::PaymentServed);
            }
            let settled: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pairing_failures WHERE payment_session_id = $1
                                AND operator_action IN ('refunded', 'credited'))",
            )
            .bind(payment)
            .fetch_one(&mut *tx)
            .await?;
            if settled {
                return Err(FailureError::PaymentSettled);
            }
        }
        sqlx::query(
            "UPDATE pairing_failures SET operator_action = $2, actioned_by = $3, actioned_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(action)
        .bind(operator)
        .execute(&mut *tx)
        .await?;
        let recorded = serde_json::json!({"operator_action": action});
        crate::accounts::store::audit(
            &mut tx,
            operator,
            crate::accounts::store::AuditAction::FailedPairingAction,
            &id.to_string(),
            None,
            Some(&recorded),
        )
        .await?;
        tx.commit().await?;
        let query = format!("{FAILURE_SELECT} WHERE f.id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(query)).bind(id).fetch_one(&self.pg).await?)
    }
}

/// One mitra's answers to the requests offered in a period (the request-activity log).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActivityRow {
    pub mitra_id: MitraId,
    pub display_name: String,
    pub notified: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub ignored: i64,
    pub missed: i64,
    /// Accepted / notified, 0 when nothing was offered.
    pub acceptance_rate: f64,
    /// Mean seconds from offer to an explicit answer (accept or reject); none without one.
    pub avg_response_seconds: Option<f64>,
}

impl Store {
    /// Per mitra over `[from, to)`, sorted by `sort` (a column of [`ActivityRow`]) then by
    /// mitra.
    pub(crate) async fn mitra_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mitra: Option<MitraId>,
        sort: super::ActivitySort,
        order: super::SortOrder,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let (sort, order) = (
            sort.as_str(),
            match order {
                super::SortOrder::Desc => "DESC NULLS LAST",
                super::SortOrder::Asc => "ASC NULLS LAST",
            },
        );
        let query = format!(
            "SELECT * FROM (
                 SELECT m.id AS mitra_id, m.display_name,
                        count(*) AS notified,
                        count(*) FILTER (WHERE n.response = 'accepted') AS accepted,
                        count(*) FILTER (WHERE n.response = 'rejected') AS rejected,
                        count(*) FILTER (WHERE n.response = 'ignored') AS ignored,
                        count(*) FILTER (WHERE n.response = 'missed') AS missed,
                        (count(*) FILTER (WHERE n.response = 'accepted'))::float8 / count(*) AS acceptance_rate,
                        avg(extract(epoch FROM n.responded_at - n.notified_at))::float8 AS avg_response_seconds
                 FROM chat_request_notifications n JOIN mitras m ON m.id = n.mitra_id
                 WHERE n.notified_at >= $1 AND n.notified_at < $2 AND ($3::uuid IS NULL OR n.mitra_id = $3)
                 GROUP BY m.id, m.display_name) activity
             ORDER BY {sort} {order}, mitra_id"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(query))
            .bind(from)
            .bind(to)
            .bind(mitra)
            .fetch_all(&self.pg)
            .await?)
    }
}
