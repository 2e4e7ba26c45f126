//! The charges ledger.

use crate::ids::{ChargeId, PaymentId};
use sqlx::AssertSqlSafe;

use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// Where a charge stands: `pending` until the provider answers (a retry calls it again
    /// with the same key), then `succeeded` or `failed` for good.
    pub enum ChargeStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

/// A charge row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChargeRow {
    pub id: ChargeId,
    pub payment_session_id: PaymentId,
    pub amount: i64,
    pub status: ChargeStatus,
    pub provider_ref: Option<String>,
}

const CHARGE_COLUMNS: &str = "id, payment_session_id, amount, status, provider_ref";

/// Claims a charge: a `pending` row under its idempotency key, unless one is there already.
/// Binds: payment session, amount, provider, idempotency key.
pub(crate) const CLAIM_CHARGE: &str =
    "INSERT INTO charges (payment_session_id, amount, provider, status, idempotency_key)
     VALUES ($1, $2, $3, 'pending', $4)
     ON CONFLICT (idempotency_key) DO NOTHING";

impl Store {
    /// Claims the charge for `idempotency_key`, or returns the row already there.
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn claim_charge(
        &self,
        idempotency_key: &str,
        payment_session: PaymentId,
        amount: i64,
        provider: &str,
    ) -> Result<ChargeRow, StoreError> {
        sqlx::query(CLAIM_CHARGE)
            .bind(payment_session)
            .bind(amount)
            .bind(provider)
            .bind(idempotency_key)
            .execute(&self.pg)
            .await?;
        let query = format!("SELECT {CHARGE_COLUMNS} FROM charges WHERE idempotency_key = $1");
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(idempotency_key).fetch_one(&self.pg).await?)
    }

    /// Completes a pending charge; a completed one is left as it is. Returns the row.
    pub(crate) async fn complete_charge(
        &self,
        id: ChargeId,
        outcome: Result<&str, &str>,
    ) -> Result<ChargeRow, StoreError> {
        let (status, provider_ref, failure) = match outcome {
            Ok(reference) => ("succeeded", Some(reference), None),
            Err(reason) => ("failed", None, Some(reason)),
        };
        sqlx::query(
            "UPDATE charges SET status = $2, provider_ref = $3, failure_reason = $4, completed_at = now()
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(status)
        .bind(provider_ref)
        .bind(failure)
        .execute(&self.pg)
        .await?;
        let query = format!("SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(id).fetch_one(&self.pg).await?)
    }

    /// The charges of a payment session.
    /// Only the tests read it (feature `test-support`).
    #[cfg(feature = "test-support")]
    pub async fn charges_of(&self, payment_session: PaymentId) -> Result<Vec<ChargeRow>, StoreError> {
        let query =
            format!("SELECT {CHARGE_COLUMNS} FROM charges WHERE payment_session_id = $1 ORDER BY created_at");
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(payment_session).fetch_all(&self.pg).await?)
    }
}
