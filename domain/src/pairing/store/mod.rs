//! Pairing requests, the per-mitra activity log and the failure ledger.
//!
//! Every transition is one transaction that locks the request row first and the payment
//! row second (the same order everywhere, so two transitions never deadlock), and is guarded
//! by the request's status: of an accept, a decline-by-all, a cancel and a window end racing
//! on one request, exactly one commits its change and the others see it and refuse. A
//! payment's move to `failed_pairing` writes its ledger row in the same transaction.

use crate::ids::SessionId;
use crate::ids::{MitraId, PaymentId, RequestId};
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::Uuid;

mod answers;

pub use answers::{Accept, WindowEnd};

use crate::failures::FailureCause;
use crate::ids::CustomerId;
use crate::pairing::PairingError;
use crate::payment::store::{PAYMENT_COLUMNS, PaymentPurpose, PaymentRow, PaymentStatus};
use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// A general blast to every available mitra, or a returning chat ("Curhat lagi") with one.
    pub enum RequestType {
        General = "general",
        Returning = "returning",
    }
}

crate::text_enum::text_enum! {
    /// A mitra's answer to one offer (`chat_request_notifications.response`): `ignored` when
    /// the window closed unanswered, `missed` when another mitra took the request first.
    pub enum OfferResponse {
        Accepted = "accepted",
        Rejected = "rejected",
        Ignored = "ignored",
        Missed = "missed",
    }
}

crate::text_enum::text_enum! {
    /// Where a pairing request stands (`pairing_requests.status`).
    pub enum RequestState {
        /// Its window is open (or closed but not yet resolved by its timer).
        Pending = "pending",
        Accepted = "accepted",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

/// A pairing request as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestRow {
    pub id: RequestId,
    pub payment_session_id: PaymentId,
    pub customer_id: CustomerId,
    pub request_type: RequestType,
    pub targeted_mitra_id: Option<MitraId>,
    pub status: RequestState,
    pub failure_cause: Option<FailureCause>,
    pub accepted_mitra_id: Option<MitraId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const REQUEST_COLUMNS: &str = "id, payment_session_id, customer_id, request_type, targeted_mitra_id, status, \
     failure_cause, accepted_mitra_id, created_at, expires_at, resolved_at";

/// What a mitra is shown about a request.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Offer {
    pub request_id: RequestId,
    pub request_type: RequestType,
    pub customer_call_name: String,
    pub duration_minutes: i32,
    pub expires_at: DateTime<Utc>,
}

/// A new request: a general blast, or a returning chat for one mitra.
pub struct NewRequest {
    pub payment: PaymentId,
    pub customer: CustomerId,
    /// `None`: general blast. `Some`: returning chat to this mitra.
    pub targeted: Option<MitraId>,
    /// Whether the targeted mitra can take it now (checked before, from presence).
    pub targeted_available: bool,
    /// Reopen a payment whose returning chat failed (fallback to a general blast).
    pub fallback: bool,
    pub window_s: i64,
}

/// A chat session that was just started.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StartedSession {
    pub id: SessionId,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// An accept that won.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub request: RequestRow,
    pub session: StartedSession,
    pub duration_minutes: i32,
    pub mitra_display_name: String,
    pub customer_call_name: String,
    /// Mitras who had it open and are now `missed`.
    pub missed: Vec<MitraId>,
    /// The mitra's live sessions, this one included.
    pub mitra_live_sessions: i64,
}

/// A request that ended without a chat.
#[derive(Clone, Debug)]
pub struct Failed {
    pub request: RequestRow,
    pub cause: FailureCause,
    /// Mitras who had it open (no answer) when it ended.
    pub open: Vec<MitraId>,
}

/// What a decline did.
#[derive(Clone, Debug)]
pub struct Declined {
    pub request: RequestRow,
    /// Set when this decline failed the request (the target declined, or every mitra did).
    pub failed: Option<Failed>,
}

/// What a customer's cancel did.
#[derive(Clone, Debug)]
pub struct Cancelled {
    pub payment: PaymentRow,
    /// The search that was cancelled, with the mitras who had it open.
    pub request: Option<Failed>,
    /// What changed when no search was running: a confirmed payment failed, or a failed
    /// returning chat's fallback was declined (`None`: nothing, a repeated cancel).
    pub without_search: Option<WithoutSearch>,
}

/// A cancel's change to a payment with no search running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithoutSearch {
    /// confirmed → failed_pairing (`customer_cancelled`).
    PaymentFailed,
    /// The payment had failed already; the fallback a returning chat offered is closed.
    FallbackDeclined,
}

type Tx = Transaction<'static, Postgres>;

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// confirmed → failed_pairing with its ledger row; nothing when not confirmed.
async fn fail_payment(
    tx: &mut Tx,
    payment: PaymentId,
    request: Option<RequestId>,
    targeted: Option<MitraId>,
    cause: FailureCause,
) -> Result<bool, StoreError> {
    let failed = sqlx::query(
        "WITH failed AS (
             UPDATE payment_sessions SET status = 'failed_pairing', resolved_at = now()
             WHERE id = $1 AND status = 'confirmed'
             RETURNING id, customer_id, amount)
         INSERT INTO pairing_failures (payment_session_id, pairing_request_id, customer_id, targeted_mitra_id, cause_tag, amount)
         SELECT id, $2, customer_id, $3, $4, amount FROM failed",
    )
    .bind(payment)
    .bind(request)
    .bind(targeted)
    .bind(cause)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(failed == 1)
}

/// Whether the failed payment `$1` may still fall back to a general blast: its last failure
/// was a returning chat's, and no operator settled it (refund, credit) yet. The caller checks
/// the payment's status and expiry.
const FALLBACK_OPEN: &str = "(SELECT cause_tag FROM pairing_failures WHERE payment_session_id = $1
         ORDER BY created_at DESC LIMIT 1)
        IN ('targeted_mitra_offline', 'targeted_mitra_rejected', 'targeted_mitra_timeout')
    AND NOT EXISTS (SELECT 1 FROM pairing_failures WHERE payment_session_id = $1
                    AND operator_action IS NOT NULL)";

/// pending → failed/cancelled for `request`, its open rows → `open_response` (or left
/// empty), its payment → failed_pairing with the ledger row.
async fn fail_request(
    tx: &mut Tx,
    request: &RequestRow,
    status: RequestState,
    cause: FailureCause,
    open_response: Option<OfferResponse>,
) -> Result<Failed, StoreError> {
    let query = format!(
        "UPDATE pairing_requests SET status = $2, failure_cause = $3, resolved_at = now()
         WHERE id = $1 AND status = 'pending' RETURNING {REQUEST_COLUMNS}"
    );
    let updated: RequestRow = sqlx::query_as(AssertSqlSafe(query.as_str()))
        .bind(request.id)
        .bind(status)
        .bind(cause)
        .fetch_one(&mut **tx)
        .await?;
    let open: Vec<MitraId> = match open_response {
        Some(response) => {
            sqlx::query_scalar(
                "UPDATE chat_request_notifications SET response = $2
                 WHERE pairing_request_id = $1 AND response IS NULL RETURNING mitra_id",
            )
            .bind(request.id)
            .bind(response)
            .fetch_all(&mut **tx)
            .await?
        }
        None => {
            sqlx::query_scalar(
                "SELECT mitra_id FROM chat_request_notifications WHERE pairing_request_id = $1 AND response IS NULL",
            )
            .bind(request.id)
            .fetch_all(&mut **tx)
            .await?
        }
    };
    let targeted = request.targeted_mitra_id;
    fail_payment(tx, request.payment_session_id, Some(request.id), targeted, cause).await?;
    Ok(Failed { request: updated, cause, open })
}

impl Store {
    /// Opens a pairing request for a confirmed payment (or, with `fallback`, reopens a
    /// payment whose returning chat failed). Checks ownership, purpose, status, expiry
    /// (failing an expired payment on the spot), the target and that no search is under way.
    pub(crate) async fn start_pairing_request(&self, new: &NewRequest) -> Result<RequestRow, PairingError> {
        let mut tx = self.pg.begin().await?;
        let query = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payment_sessions WHERE id = $1 AND customer_id = $2 FOR NO KEY UPDATE"
        );
        let Some(payment): Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(new.payment)
            .bind(new.customer)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(PairingError::PaymentNotOwned);
        };
        if payment.purpose != PaymentPurpose::Chat {
            return Err(PairingError::NotForChat);
        }
        let past_expiry: bool = sqlx::query_scalar("SELECT $1::timestamptz <= now()")
            .bind(payment.expires_at)
            .fetch_one(&mut *tx)
            .await?;
        let searching: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pairing_requests WHERE payment_session_id = $1 AND status = 'pending')",
        )
        .bind(payment.id)
        .fetch_one(&mut *tx)
        .await?;
        if searching {
            return Err(PairingError::SearchInProgress);
        }
        if new.fallback {
            // Only after a returning chat failed, before expiry, and before an operator
            // settled the failure (refund, credit): then the same payment runs a blast.
            let query = format!("SELECT $2 = 'failed_pairing' AND NOT $3 AND {FALLBACK_OPEN}");
            let reopenable: bool = sqlx::query_scalar(AssertSqlSafe(query))
                .bind(payment.id)
                .bind(payment.status)
                .bind(past_expiry)
                .fetch_one(&mut *tx)
                .await?;
            if !reopenable {
                return Err(if payment.status == PaymentStatus::Consumed {
                    PairingError::AlreadyPaired(self.session_of_payment(payment.id).await?)
                } else {
                    PairingError::FallbackNotAvailable
                });
            }
            let reopened = sqlx::query(
                "UPDATE payment_sessions SET status = 'confirmed', resolved_at = NULL WHERE id = $1",
            )
            .bind(payment.id)
            .execute(&mut *tx)
            .await;
            match reopened {
                Ok(_) => {}
                // Another free trial of the customer's is in use now.
                Err(e) if is_unique_violation(&e) => return Err(PairingError::FallbackNotAvailable),
                Err(e) => return Err(e.into()),
            }
        } else {
            match payment.status {
                PaymentStatus::Confirmed => {}
                PaymentStatus::Consumed => {
                    return Err(PairingError::AlreadyPaired(self.session_of_payment(payment.id).await?));
                }
                other => return Err(PairingError::PaymentNotConfirmed(other)),
            }
            if past_expiry {
                fail_payment(
                    &mut tx,
                    payment.id,
                    None,
                    payment.targeted_mitra_id,
                    FailureCause::PaymentSessionExpired,
                )
                .await?;
                tx.commit().await?;
                return Err(PairingError::PaymentExpired);
            }
        }
        if let Some(mitra) = new.targeted {
            if payment.targeted_mitra_id != Some(mitra) {
                return Err(PairingError::TargetMismatch);
            }
            if !new.targeted_available {
                fail_payment(&mut tx, payment.id, None, Some(mitra), FailureCause::TargetedMitraOffline)
                    .await?;
                tx.commit().await?;
                return Err(PairingError::TargetedOffline);
            }
        }
        let query = format!(
            "INSERT INTO pairing_requests (payment_session_id, customer_id, request_type, targeted_mitra_id, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::double precision))
             RETURNING {REQUEST_COLUMNS}"
        );
        let request_type = if new.targeted.is_some() { RequestType::Returning } else { RequestType::General };
        let request: RequestRow = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(payment.id)
            .bind(new.customer)
            .bind(request_type)
            .bind(new.targeted)
            .bind(new.window_s as f64)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(request)
    }

    async fn session_of_payment(&self, payment: PaymentId) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM chat_sessions WHERE payment_session_id = $1")
            .bind(payment)
            .fetch_optional(&self.pg)
            .await?)
    }

    /// Records that `mitras` (with their active session counts) are shown the request,
    /// while it is still pending. Returns the mitras newly recorded.
    pub(crate) async fn record_offers(
        &self,
        request: RequestId,
        mitras: &[(MitraId, i64)],
    ) -> Result<Vec<MitraId>, StoreError> {
        let mut tx = self.pg.begin().await?;
        // FOR SHARE: a decline-by-all or window end waits for these rows, and sees them.
        let pending: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM pairing_requests WHERE id = $1 AND status = 'pending' FOR SHARE",
        )
        .bind(request)
        .fetch_optional(&mut *tx)
        .await?;
        if pending.is_none() {
            return Ok(Vec::new());
        }
        let (ids, counts): (Vec<Uuid>, Vec<i32>) =
            mitras.iter().map(|(id, n)| (id.0, i32::try_from(*n).unwrap_or(i32::MAX))).unzip();
        let inserted: Vec<MitraId> = sqlx::query_scalar(
            "INSERT INTO chat_request_notifications (pairing_request_id, mitra_id, active_session_count)
             SELECT $1, m.id, m.n
             FROM UNNEST($2::uuid[], $3::int[]) AS m(id, n)
             JOIN mitras ON mitras.id = m.id AND mitras.deactivated_at IS NULL
             ON CONFLICT (pairing_request_id, mitra_id) DO NOTHING
             RETURNING mitra_id",
        )
        .bind(request)
        .bind(&ids)
        .bind(&counts)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Marks that a push went out for these offers (their mitras had no live socket).
    pub(crate) async fn mark_offers_pushed(
        &self,
        request: RequestId,
        mitras: &[MitraId],
    ) -> Result<(), StoreError> {
        if mitras.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE chat_request_notifications SET pushed = true WHERE pairing_request_id = $1 AND mitra_id = ANY($2)",
        )
        .bind(request)
        .bind(mitras)
        .execute(&self.pg)
        .await?;
        Ok(())
    }

    /// Records a mitra who just became available as notified of every open general
    /// request they have not seen. Returns those requests.
    pub(crate) async fn offer_open_requests(
        &self,
        mitra: MitraId,
        active_sessions: i64,
    ) -> Result<Vec<RequestId>, StoreError> {
        let mut tx = self.pg.begin().await?;
        let inserted: Vec<RequestId> = sqlx::query_scalar(
            "WITH open AS (
                 SELECT id FROM pairing_requests
                 WHERE status = 'pending' AND request_type = 'general' AND expires_at > now()
                 FOR SHARE)
             INSERT INTO chat_request_notifications (pairing_request_id, mitra_id, active_session_count)
             SELECT open.id, $1, $2 FROM open
             WHERE EXISTS (SELECT 1 FROM mitras WHERE id = $1 AND deactivated_at IS NULL)
             ON CONFLICT (pairing_request_id, mitra_id) DO NOTHING
             RETURNING pairing_request_id",
        )
        .bind(mitra)
        .bind(i32::try_from(active_sessions).unwrap_or(i32::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// What mitras are shown of these requests.
    pub(crate) async fn offers(&self, requests: &[RequestId]) -> Result<Vec<Offer>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT r.id AS request_id, r.request_type, c.call_name AS customer_call_name,
                    p.duration_minutes, r.expires_at
             FROM pairing_requests r
             JOIN customers c ON c.id = r.customer_id
             JOIN payment_sessions p ON p.id = r.payment_session_id
             WHERE r.id = ANY($1)",
        )
        .bind(requests)
        .fetch_all(&self.pg)
        .await?)
    }

    /// The requests offered to `mitra` that are pending, unanswered by them and within
    /// their window, soonest to end first.
    pub(crate) async fn open_offers_of(&self, mitra: MitraId) -> Result<Vec<Offer>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT r.id AS request_id, r.request_type, c.call_name AS customer_call_name,
                    p.duration_minutes, r.expires_at
             FROM chat_request_notifications n
             JOIN pairing_requests r ON r.id = n.pairing_request_id
             JOIN customers c ON c.id = r.customer_id
             JOIN payment_sessions p ON p.id = r.payment_session_id
             WHERE n.mitra_id = $1 AND n.response IS NULL AND r.status = 'pending' AND r.expires_at > now()
             ORDER BY r.expires_at",
        )
        .bind(mitra)
        .fetch_all(&self.pg)
        .await?)
    }
}
