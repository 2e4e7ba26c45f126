//! Reads and writes of payment sessions.

use uuid::Uuid;

use super::{Store, StoreError};

/// What closing expired payment sessions changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    /// Pending payments past their expiry, now `expired`.
    pub expired: u64,
    /// Confirmed payments past their expiry with no search or extension in flight, now
    /// `failed_pairing` with a `payment_session_expired` entry in the failure ledger.
    pub failed: u64,
}

impl Store {
    /// Closes every payment session whose expiry has passed (`only` = one session: its own
    /// expiry timer). Each row moves in a statement guarded by its current status, so a
    /// sweep racing a confirm or a consume leaves exactly one of them in effect; the ledger
    /// row is written in the same statement.
    pub async fn expire_payment_sessions(&self, only: Option<Uuid>) -> Result<SweepCounts, StoreError> {
        let expired = sqlx::query(
            "UPDATE payment_sessions SET status = 'expired', resolved_at = now()
             WHERE status = 'pending' AND expires_at <= now() AND ($1::uuid IS NULL OR id = $1)",
        )
        .bind(only)
        .execute(&self.pg)
        .await?
        .rows_affected();
        let failed = sqlx::query(
            "WITH failed AS (
                 UPDATE payment_sessions p SET status = 'failed_pairing', resolved_at = now()
                 WHERE p.status = 'confirmed' AND p.expires_at <= now() AND ($1::uuid IS NULL OR p.id = $1)
                   AND NOT EXISTS (SELECT 1 FROM pairing_requests r
                                   WHERE r.payment_session_id = p.id AND r.status = 'pending')
                   AND NOT EXISTS (SELECT 1 FROM extension_requests e
                                   WHERE e.payment_session_id = p.id AND e.status = 'pending')
                 RETURNING p.id, p.customer_id, p.targeted_mitra_id, p.amount)
             INSERT INTO pairing_failures (payment_session_id, customer_id, targeted_mitra_id, cause_tag, amount)
             SELECT id, customer_id, targeted_mitra_id, 'payment_session_expired', amount FROM failed",
        )
        .bind(only)
        .execute(&self.pg)
        .await?
        .rows_affected();
        Ok(SweepCounts { expired, failed })
    }
}
