//! The payments ledger's query.

use super::{LineRow, PaymentFilter};
use crate::calendar::Instants;
use crate::store::{Store, StoreError};

const LINE_WHERE: &str = "($1::text IS NULL OR p.status = $1) AND ($2::uuid IS NULL OR p.customer_id = $2)
     AND ($3::timestamptz IS NULL OR p.created_at >= $3) AND ($4::timestamptz IS NULL OR p.created_at < $4)";

impl Store {
    pub(super) async fn payment_lines(
        &self,
        filter: &PaymentFilter,
        period: Instants,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<LineRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT p.id, p.customer_id, c.call_name, p.purpose,
                    COALESCE(p.chat_session_id, s.id) AS chat_session_id, p.tier_id, p.duration_minutes,
                    p.amount, p.is_free_trial, p.status, p.created_at, p.confirmed_at, p.resolved_at,
                    ch.id AS charge_id, ch.status AS charge_status, ch.provider AS charge_provider,
                    ch.provider_ref AS charge_provider_ref, ch.amount AS charge_amount,
                    ch.failure_reason AS charge_failure_reason, ch.created_at AS charge_created_at,
                    (SELECT count(*) FROM charges f WHERE f.payment_session_id = p.id AND f.status = 'failed'
                       AND f.id IS DISTINCT FROM ch.id) AS failed_charges
             FROM payment_sessions p
             JOIN customers c ON c.id = p.customer_id
             LEFT JOIN chat_sessions s ON s.payment_session_id = p.id
             LEFT JOIN LATERAL (
                 SELECT * FROM charges x WHERE x.payment_session_id = p.id
                 ORDER BY x.status = 'succeeded' DESC, x.created_at DESC LIMIT 1) ch ON true
             WHERE {LINE_WHERE}
             ORDER BY p.created_at DESC, p.id DESC LIMIT $5 OFFSET $6"
        )))
        .bind(filter.status)
        .bind(filter.customer)
        .bind(period.from)
        .bind(period.to)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pg)
        .await?)
    }

    /// How many payments match.
    pub(super) async fn payment_count(
        &self,
        filter: &PaymentFilter,
        period: Instants,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM payment_sessions p WHERE {LINE_WHERE}"
        )))
        .bind(filter.status)
        .bind(filter.customer)
        .bind(period.from)
        .bind(period.to)
        .fetch_one(&self.pg)
        .await?)
    }
}
