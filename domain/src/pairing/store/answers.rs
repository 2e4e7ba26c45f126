//! Answers to a request: a mitra's accept or decline, the window's end, a customer's
//! cancel, and what a mitra or customer reads of a request afterwards. Each is one
//! transaction that locks the request row first and the payment row second (see the parent
//! module).

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::*;

/// A request a mitra may answer, as its lock found it.
enum Answerable {
    /// Pending and not answered by this mitra yet; whether its window has ended.
    Open { row: RequestRow, window_over: bool },
    /// This mitra accepted it already (a repeat of a won accept).
    AcceptedByCaller,
}

/// What an accept did.
#[derive(Clone, Debug)]
pub enum Accept {
    /// It won: the session started now.
    Won(Box<Accepted>),
    /// The mitra had accepted it already; [`Store::accepted_by`] reads that session.
    AlreadyYours,
}

impl Store {
    /// Locks the request for an answer by `mitra`: it must exist, have been offered to the
    /// mitra, still be pending and not yet answered by them. Returns the request and
    /// whether its window has ended (by the database's clock).
    async fn lock_for_answer(
        tx: &mut Tx,
        request: RequestId,
        mitra: MitraId,
    ) -> Result<Answerable, PairingError> {
        let query = format!(
            "SELECT {REQUEST_COLUMNS}, expires_at <= now() AS window_over,
                    offered.response, offered.id IS NOT NULL AS offered
             FROM pairing_requests
             LEFT JOIN (SELECT pairing_request_id AS id, response FROM chat_request_notifications
                        WHERE pairing_request_id = $1 AND mitra_id = $2) AS offered USING (id)
             WHERE id = $1 FOR UPDATE OF pairing_requests"
        );
        let locked: Option<LockedForMitra> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(request)
            .bind(mitra)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(locked) = locked.filter(|locked| locked.offered) else {
            return Err(PairingError::RequestNotFound);
        };
        if locked.row.status != RequestState::Pending {
            if locked.row.accepted_mitra_id == Some(mitra) {
                return Ok(Answerable::AcceptedByCaller);
            }
            return Err(PairingError::closed(locked.row.status, locked.row.failure_cause));
        }
        if let Some(response) = locked.response {
            return Err(PairingError::AlreadyResponded(response));
        }
        Ok(Answerable::Open { row: locked.row, window_over: locked.window_over })
    }

    /// The mitra accepts: the first accept wins. Starts the chat session, consumes the
    /// payment, marks the others `missed`, all in one transaction (four round trips: the
    /// request lock, the mitra lock, one statement for every change, the commit).
    pub(crate) async fn accept_request(
        &self,
        request: RequestId,
        mitra: MitraId,
        cap: i64,
    ) -> Result<Accept, PairingError> {
        let mut tx = self.pg.begin().await?;
        let (row, window_over) = match Self::lock_for_answer(&mut tx, request, mitra).await? {
            Answerable::Open { row, window_over } => (row, window_over),
            Answerable::AcceptedByCaller => return Ok(Accept::AlreadyYours),
        };
        if window_over {
            return Err(PairingError::RequestExpired);
        }
        // One mitra's accepts run one at a time, so the cap holds under concurrent accepts.
        let Some((display_name, live, with_customer)): Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT display_name,
                    (SELECT count(*) FROM chat_sessions WHERE mitra_id = $1 AND status <> 'completed'),
                    (SELECT count(*) FROM chat_sessions
                     WHERE mitra_id = $1 AND customer_id = $2 AND status <> 'completed')
             FROM mitras WHERE id = $1 AND deactivated_at IS NULL FOR NO KEY UPDATE",
        )
        .bind(mitra)
        .bind(row.customer_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(PairingError::RequestNotFound);
        };
        // A blocked customer gets no chat: the block and this accept take the customer's row
        // in turn, so a chat exists only when the accept came first.
        let blocked: bool =
            sqlx::query_scalar("SELECT deactivated_at IS NOT NULL FROM customers WHERE id = $1 FOR SHARE")
                .bind(row.customer_id)
                .fetch_one(&mut *tx)
                .await?;
        if blocked {
            return Err(PairingError::CustomerBlocked);
        }
        // A returning chat with a customer the mitra is still talking to may pass the cap
        // (the same exception the returning chat's start makes).
        let returning_same_customer = row.request_type == RequestType::Returning && with_customer > 0;
        if live >= cap && !returning_same_customer {
            return Err(PairingError::AtCapacity);
        }
        let query = format!(
            "WITH accepted AS (
                 UPDATE pairing_requests SET status = 'accepted', accepted_mitra_id = $2, resolved_at = now()
                 WHERE id = $1 AND status = 'pending' RETURNING {REQUEST_COLUMNS}),
             mine AS (
                 UPDATE chat_request_notifications SET response = 'accepted', responded_at = now()
                 WHERE pairing_request_id = $1 AND mitra_id = $2 RETURNING mitra_id),
             missed AS (
                 UPDATE chat_request_notifications SET response = 'missed'
                 WHERE pairing_request_id = $1 AND mitra_id <> $2 AND response IS NULL RETURNING mitra_id),
             consumed AS (
                 UPDATE payment_sessions SET status = 'consumed', consumed_at = now(), resolved_at = now()
                 WHERE id = $3 AND status = 'confirmed' RETURNING duration_minutes),
             session AS (
                 INSERT INTO chat_sessions (customer_id, mitra_id, payment_session_id, pairing_request_id, ends_at)
                 SELECT $4, $2, $3, $1, now() + make_interval(mins => duration_minutes) FROM consumed
                 RETURNING id, started_at, ends_at)
             SELECT accepted.*, session.id AS session_id, session.started_at, session.ends_at,
                    consumed.duration_minutes,
                    (SELECT call_name FROM customers WHERE id = $4) AS customer_call_name,
                    (SELECT coalesce(array_agg(mitra_id), '{{}}') FROM missed) AS missed,
                    (SELECT count(*) FROM mine) AS mine
             FROM accepted, consumed, session"
        );
        let done: AcceptedRow = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(request)
            .bind(mitra)
            .bind(row.payment_session_id)
            .bind(row.customer_id)
            .fetch_one(&mut *tx)
            .await?;
        if done.mine != 1 {
            return Err(StoreError::Encode("the accepting mitra's offer row vanished".into()).into());
        }
        tx.commit().await?;
        Ok(Accept::Won(Box::new(Accepted {
            request: done.row,
            session: StartedSession {
                id: SessionId(done.session_id),
                started_at: done.started_at,
                ends_at: done.ends_at,
            },
            duration_minutes: done.duration_minutes,
            mitra_display_name: display_name,
            customer_call_name: done.customer_call_name,
            missed: done.missed,
            mitra_live_sessions: live + 1,
        })))
    }

    /// The accept `mitra` already won on `request` (a repeated accept), as it was.
    pub(crate) async fn accepted_by(
        &self,
        request: RequestId,
        mitra: MitraId,
    ) -> Result<Option<Accepted>, StoreError> {
        let query = format!(
            "SELECT {REQUEST_COLUMNS} FROM pairing_requests WHERE id = $1 AND accepted_mitra_id = $2"
        );
        let Some(row): Option<RequestRow> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(request)
            .bind(mitra)
            .fetch_optional(&self.pg)
            .await?
        else {
            return Ok(None);
        };
        let (id, started_at, ends_at, duration_minutes, mitra_display_name, customer_call_name, live): (
            Uuid,
            DateTime<Utc>,
            DateTime<Utc>,
            i32,
            String,
            String,
            i64,
        ) = sqlx::query_as(
            "SELECT s.id, s.started_at, s.ends_at, p.duration_minutes, m.display_name, c.call_name,
                    (SELECT count(*) FROM chat_sessions l WHERE l.mitra_id = s.mitra_id AND l.status <> 'completed')
             FROM chat_sessions s
             JOIN payment_sessions p ON p.id = s.payment_session_id
             JOIN mitras m ON m.id = s.mitra_id
             JOIN customers c ON c.id = s.customer_id
             WHERE s.pairing_request_id = $1",
        )
        .bind(request)
        .fetch_one(&self.pg)
        .await?;
        Ok(Some(Accepted {
            request: row,
            session: StartedSession { id: SessionId(id), started_at, ends_at },
            duration_minutes,
            mitra_display_name,
            customer_call_name,
            missed: Vec::new(),
            mitra_live_sessions: live,
        }))
    }

    /// The mitra declines. A returning chat then fails (`targeted_mitra_rejected`); a
    /// general one fails (`all_mitras_rejected`) when every mitra offered it has declined.
    pub(crate) async fn decline_request(
        &self,
        request: RequestId,
        mitra: MitraId,
    ) -> Result<Declined, PairingError> {
        let mut tx = self.pg.begin().await?;
        let row = match Self::lock_for_answer(&mut tx, request, mitra).await? {
            Answerable::Open { row, .. } => row,
            Answerable::AcceptedByCaller => return Err(PairingError::Taken),
        };
        sqlx::query(
            "UPDATE chat_request_notifications SET response = 'rejected', responded_at = now()
             WHERE pairing_request_id = $1 AND mitra_id = $2",
        )
        .bind(request)
        .bind(mitra)
        .execute(&mut *tx)
        .await?;
        let everyone_declined: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM chat_request_notifications
                                WHERE pairing_request_id = $1 AND response IS DISTINCT FROM 'rejected')",
        )
        .bind(request)
        .fetch_one(&mut *tx)
        .await?;
        let failed = if row.request_type == RequestType::Returning {
            Some(
                fail_request(&mut tx, &row, RequestState::Failed, FailureCause::TargetedMitraRejected, None)
                    .await?,
            )
        } else if everyone_declined {
            Some(
                fail_request(&mut tx, &row, RequestState::Failed, FailureCause::AllMitrasRejected, None)
                    .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok(Declined { request: failed.as_ref().map_or(row, |f| f.request.clone()), failed })
    }

    /// The request's window ended: if it is still pending, it fails (`no_mitra_available`
    /// for a blast, `targeted_mitra_timeout` for a returning chat) and unanswered offers
    /// become `ignored`. By the database's clock: a window that has not ended there yet
    /// answers how long is left.
    pub(crate) async fn close_request_window(&self, request: RequestId) -> Result<WindowEnd, StoreError> {
        let mut tx = self.pg.begin().await?;
        let query = format!(
            "SELECT {REQUEST_COLUMNS},
                    greatest(0, ceil(extract(epoch FROM expires_at - now()) * 1000))::bigint AS left_ms
             FROM pairing_requests WHERE id = $1 AND status = 'pending' FOR UPDATE"
        );
        let Some(locked): Option<PendingWindow> =
            sqlx::query_as(AssertSqlSafe(query.as_str())).bind(request).fetch_optional(&mut *tx).await?
        else {
            return Ok(WindowEnd::NotPending);
        };
        if locked.left_ms > 0 {
            return Ok(WindowEnd::NotYet { left_ms: u64::try_from(locked.left_ms).unwrap_or(0) });
        }
        let row = locked.row;
        let cause = if row.request_type == RequestType::Returning {
            FailureCause::TargetedMitraTimeout
        } else {
            FailureCause::NoMitraAvailable
        };
        let failed =
            fail_request(&mut tx, &row, RequestState::Failed, cause, Some(OfferResponse::Ignored)).await?;
        tx.commit().await?;
        Ok(WindowEnd::Closed(Box::new(failed)))
    }

    /// Pending requests whose window ended more than `grace_s` ago (their timer was lost):
    /// the sweep closes them.
    pub(crate) async fn overdue_requests(&self, grace_s: i64) -> Result<Vec<RequestId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM pairing_requests
             WHERE status = 'pending' AND expires_at <= now() - make_interval(secs => $1::double precision)
             ORDER BY expires_at LIMIT 1000",
        )
        .bind(grace_s as f64)
        .fetch_all(&self.pg)
        .await?)
    }

    /// The customer gives up: a pending search is cancelled (`customer_cancelled`), and a
    /// confirmed payment without a search fails the same way. Idempotent for a payment
    /// that already failed.
    pub(crate) async fn cancel_search(
        &self,
        payment: PaymentId,
        customer: CustomerId,
    ) -> Result<Cancelled, PairingError> {
        // A search that starts between looking and locking is caught by the re-check below;
        // then the whole thing runs again (it cannot loop: the search is then found first).
        for _ in 0..3 {
            let mut tx = self.pg.begin().await?;
            let query = format!(
                "SELECT {REQUEST_COLUMNS} FROM pairing_requests
                 WHERE payment_session_id = $1 AND customer_id = $2 AND status = 'pending' FOR UPDATE"
            );
            let pending: Option<RequestRow> = sqlx::query_as(AssertSqlSafe(query.as_str()))
                .bind(payment)
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await?;
            let query = format!(
                "SELECT {PAYMENT_COLUMNS} FROM payment_sessions WHERE id = $1 AND customer_id = $2 FOR NO KEY UPDATE"
            );
            let Some(row): Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(query.as_str()))
                .bind(payment)
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Err(PairingError::PaymentNotFound);
            };
            if let Some(request) = pending {
                let failed = fail_request(
                    &mut tx,
                    &request,
                    RequestState::Cancelled,
                    FailureCause::CustomerCancelled,
                    None,
                )
                .await?;
                let query = format!("SELECT {PAYMENT_COLUMNS} FROM payment_sessions WHERE id = $1");
                let row =
                    sqlx::query_as(AssertSqlSafe(query.as_str())).bind(payment).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Cancelled { payment: row, request: Some(failed), without_search: None });
            }
            let searching: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pairing_requests WHERE payment_session_id = $1 AND status = 'pending')",
            )
            .bind(payment)
            .fetch_one(&mut *tx)
            .await?;
            if searching {
                tx.rollback().await?;
                continue;
            }
            return match row.status {
                PaymentStatus::Confirmed => {
                    fail_payment(
                        &mut tx,
                        payment,
                        None,
                        row.targeted_mitra_id,
                        FailureCause::CustomerCancelled,
                    )
                    .await?;
                    let query = format!("SELECT {PAYMENT_COLUMNS} FROM payment_sessions WHERE id = $1");
                    let row = sqlx::query_as(AssertSqlSafe(query.as_str()))
                        .bind(payment)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    let without_search = Some(WithoutSearch::PaymentFailed);
                    Ok(Cancelled { payment: row, request: None, without_search })
                }
                PaymentStatus::FailedPairing => {
                    // After a returning chat failed, the customer declines the fallback: the
                    // failure is recorded as theirs, which closes the fallback. Otherwise
                    // (cancelled already, or no fallback open) nothing changes.
                    let query = format!(
                        "INSERT INTO pairing_failures (payment_session_id, customer_id, targeted_mitra_id, cause_tag, amount)
                         SELECT id, customer_id, targeted_mitra_id, 'customer_cancelled', amount
                         FROM payment_sessions WHERE id = $1 AND {FALLBACK_OPEN}"
                    );
                    let declined = sqlx::query(AssertSqlSafe(query)).bind(payment).execute(&mut *tx).await?;
                    tx.commit().await?;
                    let without_search =
                        (declined.rows_affected() == 1).then_some(WithoutSearch::FallbackDeclined);
                    Ok(Cancelled { payment: row, request: None, without_search })
                }
                PaymentStatus::Consumed => {
                    Err(PairingError::AlreadyPaired(self.session_of_payment(payment).await?))
                }
                other => Err(PairingError::PaymentNotConfirmed(other)),
            };
        }
        Err(StoreError::Encode("the search kept changing while it was being cancelled".into()).into())
    }

    /// The request as `mitra` may see it, with the mitra's own response.
    pub(crate) async fn request_for_mitra(
        &self,
        request: RequestId,
        mitra: MitraId,
    ) -> Result<Option<(RequestRow, Option<OfferResponse>)>, StoreError> {
        let query = format!(
            "SELECT {REQUEST_COLUMNS}, response FROM pairing_requests
             JOIN (SELECT pairing_request_id AS id, response FROM chat_request_notifications
                   WHERE pairing_request_id = $1 AND mitra_id = $2) AS offered USING (id)"
        );
        let row: Option<RequestWithResponse> = sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(request)
            .bind(mitra)
            .fetch_optional(&self.pg)
            .await?;
        Ok(row.map(|r| (r.row, r.response)))
    }

    /// The customer's pairing requests for one payment, newest first.
    pub(crate) async fn requests_of_payment(
        &self,
        customer: CustomerId,
        payment: PaymentId,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let query = format!(
            "SELECT {REQUEST_COLUMNS} FROM pairing_requests WHERE payment_session_id = $1 AND customer_id = $2
             ORDER BY created_at DESC"
        );
        Ok(sqlx::query_as(AssertSqlSafe(query.as_str()))
            .bind(payment)
            .bind(customer)
            .fetch_all(&self.pg)
            .await?)
    }

    /// Whether the mitra has a live session with the customer.
    pub(crate) async fn in_session_with(
        &self,
        mitra: MitraId,
        customer: CustomerId,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chat_sessions WHERE mitra_id = $1 AND customer_id = $2 AND status <> 'completed')",
        )
        .bind(mitra)
        .bind(customer)
        .fetch_one(&self.pg)
        .await?)
    }
}

/// What a window-end timer found.
#[derive(Clone, Debug)]
pub enum WindowEnd {
    Closed(Box<Failed>),
    /// Resolved already (accepted, declined by all, cancelled, closed by another run).
    NotPending,
    /// Still open by the database's clock (the worker's clock runs ahead).
    NotYet {
        left_ms: u64,
    },
}

#[derive(sqlx::FromRow)]
struct PendingWindow {
    #[sqlx(flatten)]
    row: RequestRow,
    left_ms: i64,
}

#[derive(sqlx::FromRow)]
struct LockedForMitra {
    #[sqlx(flatten)]
    row: RequestRow,
    window_over: bool,
    response: Option<OfferResponse>,
    offered: bool,
}

#[derive(sqlx::FromRow)]
struct AcceptedRow {
    #[sqlx(flatten)]
    row: RequestRow,
    session_id: Uuid,
    started_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    duration_minutes: i32,
    customer_call_name: String,
    missed: Vec<MitraId>,
    mine: i64,
}

#[derive(sqlx::FromRow)]
struct RequestWithResponse {
    #[sqlx(flatten)]
    row: RequestRow,
    response: Option<OfferResponse>,
}
