//! Reads and writes of payment sessions.

use crate::ids::PaymentId;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::Uuid;

use crate::ids::{CustomerId, MitraId, SessionId};
use crate::payment::PaymentError;
use crate::store::{Store, StoreError};

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
    /// expiry timer).
    ///
    /// The due rows are locked first (`FOR UPDATE SKIP LOCKED`: a row a confirm, a search or
    /// a consume holds right now is left for the next run), then moved by statements that
    /// take a fresh snapshot, so they see every charge claimed and every search started
    /// before the lock. A sweep racing a confirm or a search therefore never expires a
    /// payment that is being charged or searched for. The ledger row is written in the same
    /// statement as the move.
    pub(crate) async fn expire_payment_sessions(
        &self,
        only: Option<PaymentId>,
    ) -> Result<SweepCounts, StoreError> {
        let mut tx = self.pg.begin().await?;
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM payment_sessions
             WHERE status IN ('pending', 'confirmed') AND expires_at <= now() AND ($1::uuid IS NULL OR id = $1)
             ORDER BY expires_at LIMIT 10000
             FOR UPDATE SKIP LOCKED",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(SweepCounts::default());
        }
        let expired = sqlx::query(
            "UPDATE payment_sessions p SET status = 'expired', resolved_at = now()
             WHERE p.id = ANY($1) AND p.status = 'pending'
               -- A confirm that claimed its charge finishes the payment; it never expires.
               AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.payment_session_id = p.id AND c.status <> 'failed')
               -- Nor does a pending extension's payment: the extension decides its fate.
               AND NOT EXISTS (SELECT 1 FROM extension_requests e
                               WHERE e.payment_session_id = p.id AND e.status = 'pending')",
        )
        .bind(&due)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let failed = sqlx::query(
            "WITH failed AS (
                 UPDATE payment_sessions p SET status = 'failed_pairing', resolved_at = now()
                 WHERE p.id = ANY($1) AND p.status = 'confirmed'
                   AND NOT EXISTS (SELECT 1 FROM pairing_requests r
                                   WHERE r.payment_session_id = p.id AND r.status = 'pending')
                   AND NOT EXISTS (SELECT 1 FROM extension_requests e
                                   WHERE e.payment_session_id = p.id AND e.status = 'pending')
                 RETURNING p.id, p.customer_id, p.targeted_mitra_id, p.amount)
             INSERT INTO pairing_failures (payment_session_id, customer_id, targeted_mitra_id, cause_tag, amount)
             SELECT id, customer_id, targeted_mitra_id, 'payment_session_expired', amount FROM failed",
        )
        .bind(&due)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(SweepCounts { expired, failed })
    }
}

crate::text_enum::text_enum! {
    /// Where a payment session stands: `pending` → `confirmed` → `consumed` (a chat or an
    /// extension started) | `failed_pairing` (see the failure ledger); `pending` →
    /// `abandoned` | `expired`. Also the `status` label of `bestie_payment_transitions_total`.
    pub enum PaymentStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Consumed = "consumed",
        FailedPairing = "failed_pairing",
        Abandoned = "abandoned",
        Expired = "expired",
    }
}

crate::text_enum::text_enum! {
    /// What a payment session pays for: a new chat, or more time in a running one.
    pub enum PaymentPurpose {
        Chat = "chat",
        Extension = "extension",
    }
}

/// A payment session as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: PaymentId,
    pub customer_id: CustomerId,
    pub purpose: PaymentPurpose,
    pub chat_session_id: Option<SessionId>,
    pub tier_id: Option<String>,
    pub duration_minutes: i32,
    pub amount: i64,
    pub is_free_trial: bool,
    pub targeted_mitra_id: Option<MitraId>,
    pub status: PaymentStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub(crate) const PAYMENT_COLUMNS: &str = "id, customer_id, purpose, chat_session_id, tier_id, duration_minutes, \
     amount, is_free_trial, targeted_mitra_id, status, created_at, expires_at, confirmed_at, consumed_at, resolved_at";

/// A new payment session, priced and checked by the rules.
pub struct NewPayment<'a> {
    pub customer_id: CustomerId,
    pub purpose: PaymentPurpose,
    pub chat_session_id: Option<SessionId>,
    pub tier_id: Option<&'a str>,
    pub duration_minutes: i32,
    pub amount: i64,
    pub is_free_trial: bool,
    pub targeted_mitra_id: Option<MitraId>,
    pub timeout_minutes: i64,
}

/// A payment session locked for a transition (`FOR NO KEY UPDATE`: a charge row may still
/// reference it while the lock is held). Dropping it without a transition rolls back.
pub struct PaymentLock {
    tx: Transaction<'static, Postgres>,
    pub row: PaymentRow,
    /// Whether its expiry has passed, by the database clock.
    pub past_expiry: bool,
    /// A pending extension request uses it (it is charged or released by that request).
    pub extension_pending: bool,
    /// The idempotency key of its charge claimed or made (a confirm got that far): such a
    /// payment is never expired or abandoned, only confirmed.
    pub claimed_charge: Option<String>,
    /// Charges the provider declined so far (the next attempt gets a new key).
    pub declined_charges: i64,
}

impl PaymentLock {
    /// pending → confirmed; `FreeTrialUsed` when the customer's one trial is in use already
    /// (a unique index).
    pub(crate) async fn confirm(mut self) -> Result<PaymentRow, PaymentError> {
        let query = format!(
            "UPDATE payment_sessions SET status = 'confirmed', confirmed_at = now()
             WHERE id = $1 AND status = 'pending' RETURNING {PAYMENT_COLUMNS}"
        );
        match sqlx::query_as(AssertSqlSafe(query.as_str())).bind(self.row.id).fetch_one(&mut *self.tx).await {
            Ok(row) => {
                self.tx.commit().await?;
                Ok(row)
            }
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("payment_sessions_one_free_trial_idx") =>
            {
                Err(PaymentError::FreeTrialUsed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// pending → `to` (abandoned or expired).
    pub(crate) async fn close_pending(mut self, to: PaymentStatus) -> Result<PaymentRow, StoreError> {
        let query = format!(
            "UPDATE payment_sessions SET status = $2, resolved_at = now()
             WHERE id = $1 AND status = 'pending' RETURNING {PAYMENT_COLUMNS}"
        );
        let row = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(self.row.id)
            .bind(to)
            .fetch_one(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(row)
    }

    /// Claims the confirm's charge (a `pending` ledger row under `idempotency_key`) and
    /// releases the lock: from here the payment cannot expire, and the provider is called
    /// without holding a database connection.
    pub(crate) async fn claim_charge(
        mut self,
        idempotency_key: &str,
        provider: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(crate::charges::store::CLAIM_CHARGE)
            .bind(self.row.id)
            .bind(self.row.amount)
            .bind(provider)
            .bind(idempotency_key)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }

    /// Leaves the row as it was.
    pub(crate) async fn release(self) -> Result<PaymentRow, StoreError> {
        self.tx.rollback().await?;
        Ok(self.row)
    }
}

impl Store {
    /// Whether the customer may still have the free trial: no payment ever confirmed,
    /// except trials whose pairing failed (given back).
    pub(crate) async fn free_trial_eligible(&self, customer: CustomerId) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM payment_sessions WHERE customer_id = $1
                 AND (status IN ('confirmed', 'consumed') OR (status = 'failed_pairing' AND NOT is_free_trial)))",
        )
        .bind(customer)
        .fetch_one(&self.pg)
        .await?)
    }

    /// Whether the customer and the mitra ever had a session, and the mitra is active.
    pub(crate) async fn returning_pair_known(
        &self,
        customer: CustomerId,
        mitra: MitraId,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chat_sessions s JOIN mitras m ON m.id = s.mitra_id
                 WHERE s.customer_id = $1 AND s.mitra_id = $2 AND m.deactivated_at IS NULL)",
        )
        .bind(customer)
        .bind(mitra)
        .fetch_one(&self.pg)
        .await?)
    }

    /// The status of the customer's chat session, if it is theirs.
    pub(crate) async fn customer_session_status(
        &self,
        customer: CustomerId,
        session: SessionId,
    ) -> Result<Option<crate::chat::store::SessionStatus>, StoreError> {
        Ok(sqlx::query_scalar("SELECT status FROM chat_sessions WHERE id = $1 AND customer_id = $2")
            .bind(session)
            .bind(customer)
            .fetch_optional(&self.pg)
            .await?)
    }

    pub(crate) async fn insert_payment(&self, new: &NewPayment<'_>) -> Result<PaymentRow, StoreError> {
        let query = format!(
            "INSERT INTO payment_sessions (customer_id, purpose, chat_session_id, tier_id, duration_minutes,
                 amount, is_free_trial, targeted_mitra_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(mins => $9::int))
             RETURNING {PAYMENT_COLUMNS}"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(new.customer_id)
            .bind(new.purpose)
            .bind(new.chat_session_id)
            .bind(new.tier_id)
            .bind(new.duration_minutes)
            .bind(new.amount)
            .bind(new.is_free_trial)
            .bind(new.targeted_mitra_id)
            .bind(i32::try_from(new.timeout_minutes).unwrap_or(i32::MAX))
            .fetch_one(&self.pg)
            .await?)
    }

    /// The customer's payment session. A chat payment's `chat_session_id` is the session it
    /// paid for once consumed (the link is stored on the chat session, so read from there).
    pub(crate) async fn payment(
        &self,
        customer: CustomerId,
        id: PaymentId,
    ) -> Result<Option<PaymentRow>, StoreError> {
        let columns = PAYMENT_COLUMNS.replacen(
            "chat_session_id",
            "COALESCE(chat_session_id, (SELECT s.id FROM chat_sessions s WHERE s.payment_session_id = p.id)) \
             AS chat_session_id",
            1,
        );
        let query = format!("SELECT {columns} FROM payment_sessions p WHERE id = $1 AND customer_id = $2");
        Ok(sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(id)
            .bind(customer)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Locks the customer's payment session for a transition.
    pub(crate) async fn lock_payment(
        &self,
        customer: CustomerId,
        id: PaymentId,
    ) -> Result<Option<PaymentLock>, StoreError> {
        let mut tx = self.pg.begin().await?;
        let query = format!(
            "SELECT {PAYMENT_COLUMNS}, expires_at <= now() AS past_expiry,
                    (SELECT c.idempotency_key FROM charges c WHERE c.payment_session_id = p.id AND c.status <> 'failed'
                     LIMIT 1) AS claimed_charge,
                    (SELECT count(*) FROM charges c WHERE c.payment_session_id = p.id AND c.status = 'failed')
                        AS declined_charges,
                    EXISTS (SELECT 1 FROM extension_requests e WHERE e.payment_session_id = p.id
                            AND e.status = 'pending') AS extension_pending
             FROM payment_sessions p WHERE id = $1 AND customer_id = $2 FOR NO KEY UPDATE OF p"
        );
        let row: Option<PaymentRowWithExpiry> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(id)
            .bind(customer)
            .fetch_optional(&mut *tx)
            .await?;
        Ok(row.map(|r| PaymentLock {
            tx,
            row: r.row,
            past_expiry: r.past_expiry,
            extension_pending: r.extension_pending,
            claimed_charge: r.claimed_charge,
            declined_charges: r.declined_charges,
        }))
    }

    /// Payments still pending whose confirm charge was claimed at least `older_than_s` ago
    /// and never completed, oldest first: `(customer, payment)`.
    pub(crate) async fn stale_confirm_charges(
        &self,
        older_than_s: u64,
        limit: i64,
    ) -> Result<Vec<(CustomerId, PaymentId)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.customer_id, p.id FROM charges c JOIN payment_sessions p ON p.id = c.payment_session_id
             WHERE c.status = 'pending' AND c.idempotency_key LIKE 'confirm:%' AND p.status = 'pending'
               AND c.created_at <= now() - make_interval(secs => $1::double precision)
             ORDER BY c.created_at LIMIT $2",
        )
        .bind(older_than_s as f64)
        .bind(limit)
        .fetch_all(&self.pg)
        .await?)
    }

    /// pending → confirmed after its charge succeeded; a payment already past pending is
    /// returned as it is (a concurrent confirm got there first).
    pub(crate) async fn confirm_charged_payment(
        &self,
        customer: CustomerId,
        id: PaymentId,
    ) -> Result<PaymentRow, StoreError> {
        let query = format!(
            "UPDATE payment_sessions SET status = 'confirmed', confirmed_at = now()
             WHERE id = $1 AND customer_id = $2 AND status = 'pending' RETURNING {PAYMENT_COLUMNS}"
        );
        let confirmed: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(id)
            .bind(customer)
            .fetch_optional(&self.pg)
            .await?;
        match confirmed {
            Some(row) => Ok(row),
            None => self.payment(customer, id).await?.ok_or(StoreError::Encode("payment vanished".into())),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRowWithExpiry {
    #[sqlx(flatten)]
    row: PaymentRow,
    past_expiry: bool,
    extension_pending: bool,
    claimed_charge: Option<String>,
    declined_charges: i64,
}
