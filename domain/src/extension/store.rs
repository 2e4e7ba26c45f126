//! Extension requests: the customer asks for more time (paid into its own payment session),
//! the mitra approves or rejects, or the window's timer decides.
//!
//! Every transition locks the extension row first and is guarded by its `pending` status, so
//! an approval racing the timer resolves once. A resolution then locks the payment row (so
//! the customer cannot cancel a payment being charged) and holds both through the provider's
//! charge; the session row it takes only when it writes the outcome, after the charge. The
//! session row is what every send and receipt of the chat locks, so holding it through a
//! provider call (up to `payments.timeout_ms`) would stall the chat, and with it the
//! process's whole send queue. Nothing else can change an `extending` session meanwhile: an
//! early end takes the extension row first too, and the timers only move `active` and
//! `closing` sessions.

use crate::ids::ExtensionId;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::Uuid;

use crate::chat::store::{ClosureKind, SessionStatus};
use crate::extension::ExtensionError;
use crate::ids::{CustomerId, MitraId, PaymentId, SessionId};
use crate::payment::store::{PaymentPurpose, PaymentStatus};
use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// Where an extension request stands: `pending` until the mitra answers, the window's
    /// default applies, or the session ends early (`cancelled`).
    pub enum ExtensionStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        AutoApproved = "auto_approved",
        AutoRejected = "auto_rejected",
        Cancelled = "cancelled",
    }
}

crate::text_enum::text_enum! {
    /// Why an extension request ended the way it did.
    pub enum ExtensionReason {
        /// The mitra rejected it.
        MitraRejected = "mitra_rejected",
        /// The window ended with the mitra present and the default set to reject.
        Timeout = "timeout",
        /// The mitra was offline, disconnected or not heard from since the request.
        MitraOffline = "mitra_offline",
        /// The extension payment was cancelled or expired before the charge.
        PaymentUnavailable = "payment_unavailable",
        /// The payment provider declined the charge.
        PaymentDeclined = "payment_declined",
        /// The session ended early while the request waited.
        SessionEndedEarly = "session_ended_early",
    }
}

/// An extension request as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ExtensionRow {
    pub id: ExtensionId,
    pub chat_session_id: SessionId,
    pub payment_session_id: PaymentId,
    pub duration_minutes: i32,
    pub status: ExtensionStatus,
    pub resolution_reason: Option<ExtensionReason>,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const EXTENSION_COLUMNS: &str = "id, chat_session_id, payment_session_id, duration_minutes, status, resolution_reason, requested_at, expires_at, resolved_at";

/// A pending extension, locked, with what its resolution needs.
pub struct PendingExtension {
    tx: Transaction<'static, Postgres>,
    pub extension: ExtensionRow,
    pub mitra_id: MitraId,
    pub customer_id: CustomerId,
    pub amount: i64,
    /// By the database's clock.
    pub window_left_ms: i64,
    /// The payment is still pending (not cancelled or expired meanwhile) and the customer not
    /// blocked: only then may it be charged.
    pub payment_usable: bool,
}

/// An extension's resolution and where the session went.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub extension: ExtensionRow,
    pub session_status: SessionStatus,
    pub ends_at: DateTime<Utc>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub mitra_id: MitraId,
    pub customer_id: CustomerId,
}

impl Store {
    /// Opens an extension request for the customer's session with a pending extension
    /// payment of it; the session becomes `extending` (a closing one reopens).
    pub(crate) async fn request_extension(
        &self,
        customer: CustomerId,
        session: SessionId,
        payment: PaymentId,
        window_s: i64,
    ) -> Result<(ExtensionRow, Uuid), ExtensionError> {
        let mut tx = self.pg.begin().await?;
        let found: Option<(SessionStatus, Uuid, Option<ClosureKind>, bool)> = sqlx::query_as(
            "SELECT s.status, s.mitra_id, x.kind, coalesce(s.grace_ends_at > now(), true) FROM chat_sessions s
             LEFT JOIN session_closures x ON x.chat_session_id = s.id
             WHERE s.id = $1 AND s.customer_id = $2 FOR UPDATE OF s",
        )
        .bind(session)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, mitra, closure, in_grace)) = found else {
            return Err(ExtensionError::SessionNotFound);
        };
        // Active, or closing because its time ran out (not after an early end), within its
        // grace window.
        let extendable = status == SessionStatus::Active
            || (status == SessionStatus::Closing && closure == Some(ClosureKind::TimeUp) && in_grace);
        if !extendable {
            let why = if status == SessionStatus::Extending {
                ExtensionError::AlreadyPending
            } else {
                ExtensionError::SessionNotExtendable(status)
            };
            return Err(why);
        }
        let paid: Option<(PaymentStatus, PaymentPurpose, Option<Uuid>, bool, i32)> = sqlx::query_as(
            "SELECT status, purpose, chat_session_id, expires_at <= now(), duration_minutes FROM payment_sessions
             WHERE id = $1 AND customer_id = $2 FOR NO KEY UPDATE",
        )
        .bind(payment)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((payment_status, purpose, for_session, expired, duration)) = paid else {
            return Err(ExtensionError::PaymentNotFound);
        };
        if purpose != PaymentPurpose::Extension || for_session != Some(session.0) {
            return Err(ExtensionError::PaymentNotUsable(None));
        }
        if payment_status != PaymentStatus::Pending || expired {
            let state = if payment_status == PaymentStatus::Pending {
                PaymentStatus::Expired
            } else {
                payment_status
            };
            return Err(ExtensionError::PaymentNotUsable(Some(state)));
        }
        let query = format!(
            "INSERT INTO extension_requests (chat_session_id, payment_session_id, duration_minutes, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4::double precision)) RETURNING {EXTENSION_COLUMNS}"
        );
        let inserted = sqlx::query_as(AssertSqlSafe(query))
            .bind(session)
            .bind(payment)
            .bind(duration)
            .bind(window_s as f64)
            .fetch_one(&mut *tx)
            .await;
        let extension: ExtensionRow = match inserted {
            Ok(row) => row,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ExtensionError::AlreadyPending);
            }
            Err(e) => return Err(e.into()),
        };
        sqlx::query(
            "UPDATE chat_sessions SET status = 'extending', closing_started_at = NULL, grace_ends_at = NULL WHERE id = $1",
        )
        .bind(session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((extension, mitra))
    }

    /// Locks a pending extension for a decision. `mitra`: only that mitra's (an explicit
    /// answer); `None`: the timer.
    pub(crate) async fn lock_extension(
        &self,
        id: ExtensionId,
        mitra: Option<MitraId>,
    ) -> Result<PendingExtension, ExtensionError> {
        let mut tx = self.pg.begin().await?;
        let query = format!("SELECT {EXTENSION_COLUMNS} FROM extension_requests WHERE id = $1 FOR UPDATE");
        let Some(extension): Option<ExtensionRow> =
            sqlx::query_as(AssertSqlSafe(query)).bind(id).fetch_optional(&mut *tx).await?
        else {
            return Err(ExtensionError::NotFound);
        };
        let (mitra_id, customer_id, amount, window_left_ms, payment_usable): (Uuid, Uuid, i64, i64, bool) =
            sqlx::query_as(
                "SELECT s.mitra_id, s.customer_id, p.amount,
                        greatest(0, ceil(extract(epoch FROM $2::timestamptz - now()) * 1000))::bigint,
                        p.status = 'pending'
                            AND NOT EXISTS (SELECT 1 FROM customers c
                                            WHERE c.id = s.customer_id AND c.deactivated_at IS NOT NULL)
                 FROM chat_sessions s JOIN payment_sessions p ON p.id = $3
                 WHERE s.id = $1 FOR NO KEY UPDATE OF p",
            )
            .bind(extension.chat_session_id)
            .bind(extension.expires_at)
            .bind(extension.payment_session_id)
            .fetch_one(&mut *tx)
            .await?;
        if mitra.is_some_and(|m| m.0 != mitra_id) {
            return Err(ExtensionError::NotFound);
        }
        if extension.status != ExtensionStatus::Pending {
            return Err(ExtensionError::Resolved(extension.status));
        }
        Ok(PendingExtension {
            tx,
            extension,
            mitra_id: MitraId(mitra_id),
            customer_id: CustomerId(customer_id),
            amount,
            window_left_ms,
            payment_usable,
        })
    }

    /// The status of the charge made under `key`, if any.
    pub(crate) async fn charge_status(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT status FROM charges WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Extensions still pending after their window (their timer was lost).
    pub(crate) async fn overdue_extensions(&self, grace_s: i64) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM extension_requests
             WHERE status = 'pending' AND expires_at <= now() - make_interval(secs => $1::double precision) LIMIT 1000",
        )
        .bind(grace_s as f64)
        .fetch_all(&self.pg)
        .await?)
    }
}

impl Store {
    /// The session's extension request that waits for the mitra, if any.
    pub(crate) async fn pending_extension(
        &self,
        session: SessionId,
    ) -> Result<Option<ExtensionRow>, StoreError> {
        let query = format!(
            "SELECT {EXTENSION_COLUMNS} FROM extension_requests WHERE chat_session_id = $1 AND status = 'pending'"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(session).fetch_optional(&self.pg).await?)
    }
}

impl PendingExtension {
    /// Approved (the charge already succeeded): the payment is consumed, the session runs
    /// again until `max(its end, now) + duration`.
    pub(crate) async fn approve(mut self, status: ExtensionStatus) -> Result<Resolved, StoreError> {
        let extension = self.resolve(status, None).await?;
        let consumed = sqlx::query(
            "UPDATE payment_sessions SET status = 'consumed', confirmed_at = now(), consumed_at = now(), resolved_at = now()
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(extension.payment_session_id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if consumed != 1 {
            return Err(StoreError::Encode("an extension's payment was not pending at its approval".into()));
        }
        // The session runs again: the goodbyes of the closing it left are void.
        sqlx::query("DELETE FROM session_closures WHERE chat_session_id = $1")
            .bind(extension.chat_session_id)
            .execute(&mut *self.tx)
            .await?;
        let (ends_at, session_status): (DateTime<Utc>, SessionStatus) = sqlx::query_as(
            "UPDATE chat_sessions SET status = 'active', closing_started_at = NULL, grace_ends_at = NULL,
                    ends_at = greatest(ends_at, now()) + make_interval(mins => $2)
             WHERE id = $1 RETURNING ends_at, status",
        )
        .bind(extension.chat_session_id)
        .bind(extension.duration_minutes)
        .fetch_one(&mut *self.tx)
        .await?;
        self.commit(extension, session_status, ends_at, None).await
    }

    /// Rejected (or the charge was declined): nothing is charged and the payment is
    /// abandoned; the session goes back to `active`, or to `closing` when its time is up.
    pub(crate) async fn reject(
        mut self,
        status: ExtensionStatus,
        reason: ExtensionReason,
        grace_minutes: i64,
    ) -> Result<Resolved, StoreError> {
        let extension = self.resolve(status, Some(reason)).await?;
        sqlx::query("UPDATE payment_sessions SET status = 'abandoned', resolved_at = now() WHERE id = $1 AND status = 'pending'")
            .bind(extension.payment_session_id)
            .execute(&mut *self.tx)
            .await?;
        let (ends_at, session_status, grace_ends_at): (DateTime<Utc>, SessionStatus, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "WITH first AS (SELECT closing_started_at FROM session_closures WHERE chat_session_id = $1)
             UPDATE chat_sessions SET
                 status = CASE WHEN ends_at <= now() THEN 'closing' ELSE 'active' END,
                 -- Back to the closing it left, with its original grace: asking again
                 -- cannot stretch the goodbye window.
                 closing_started_at = CASE WHEN ends_at <= now()
                     THEN coalesce((SELECT closing_started_at FROM first), now()) END,
                 grace_ends_at = CASE WHEN ends_at <= now()
                     THEN coalesce((SELECT closing_started_at FROM first), now()) + make_interval(mins => $2::int) END
             WHERE id = $1 RETURNING ends_at, status, grace_ends_at",
            )
            .bind(extension.chat_session_id)
            .bind(i32::try_from(grace_minutes).unwrap_or(5))
            .fetch_one(&mut *self.tx)
            .await?;
        if session_status == SessionStatus::Closing {
            sqlx::query(
                "INSERT INTO session_closures (chat_session_id, kind, initiated_by) VALUES ($1, 'time_up', 'system')
                 ON CONFLICT (chat_session_id) DO NOTHING",
            )
            .bind(extension.chat_session_id)
            .execute(&mut *self.tx)
            .await?;
        }
        self.commit(extension, session_status, ends_at, grace_ends_at).await
    }

    async fn commit(
        self,
        extension: ExtensionRow,
        session_status: SessionStatus,
        ends_at: DateTime<Utc>,
        grace_ends_at: Option<DateTime<Utc>>,
    ) -> Result<Resolved, StoreError> {
        self.tx.commit().await?;
        Ok(Resolved {
            extension,
            session_status,
            ends_at,
            grace_ends_at,
            mitra_id: self.mitra_id,
            customer_id: self.customer_id,
        })
    }

    /// Leaves everything as it was (the charge is being retried, the window is open).
    pub(crate) async fn release(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }

    async fn resolve(
        &mut self,
        status: ExtensionStatus,
        reason: Option<ExtensionReason>,
    ) -> Result<ExtensionRow, StoreError> {
        let query = format!(
            "UPDATE extension_requests SET status = $2, resolution_reason = $3, resolved_at = now()
             WHERE id = $1 AND status = 'pending' RETURNING {EXTENSION_COLUMNS}"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query))
            .bind(self.extension.id)
            .bind(status)
            .bind(reason)
            .fetch_one(&mut *self.tx)
            .await?)
    }
}
