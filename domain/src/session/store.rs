//! A chat session's life after it started: time up → closing (with its grace window) →
//! completed, an early end by either side, and the goodbye each side leaves.
//!
//! Each move is one statement (or one transaction) guarded by the session's status, so a
//! timer that fires twice, late, or races an early end changes the session once.

use crate::ids::SessionId;
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::chat::store::{SessionRow, SessionStatus};
use crate::ids::{MitraId, OperatorId, ReviewFlagId};
use crate::session::SessionError;
use crate::store::{Store, StoreError};

/// What a lifecycle timer found.
#[derive(Clone, Debug)]
pub enum Step {
    /// The session moved; here it is now.
    Done(Box<SessionRow>),
    /// Not due yet by the database's clock (the worker's clock runs ahead).
    NotYet { left_ms: u64 },
    /// Nothing to do: the session is elsewhere in its life (ended early, extended, done).
    Nothing,
}

/// Moves a session to `closing` now, with `grace_minutes` for goodbyes.
async fn start_closing(
    tx: &mut Transaction<'static, Postgres>,
    id: SessionId,
    grace_minutes: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chat_sessions SET status = 'closing', closing_started_at = now(),
                grace_ends_at = now() + make_interval(mins => $2::int)
         WHERE id = $1",
    )
    .bind(id)
    .bind(i32::try_from(grace_minutes).unwrap_or(5))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// A session, whoever's it is (for the timers, which act for the system).
    pub(crate) async fn session_for_timer(&self, id: SessionId) -> Result<Option<SessionRow>, StoreError> {
        let query = format!("{} WHERE s.id = $1", crate::chat::store::SESSION_SELECT);
        Ok(sqlx::query_as(AssertSqlSafe(query)).bind(id).fetch_optional(&self.pg).await?)
    }

    /// Locks the session and checks it is `status` and its `moment` column (`ends_at` or
    /// `grace_ends_at`) has come, by the database's clock, and is the one the timer was
    /// queued for (within a second). `Ok(None)`: go ahead with the transaction.
    async fn lock_if_due(
        tx: &mut Transaction<'static, Postgres>,
        id: SessionId,
        status: SessionStatus,
        moment: &'static str,
        expected_ms: Option<u64>,
    ) -> Result<Option<Step>, StoreError> {
        let query = format!(
            "SELECT status, greatest(0, ceil(extract(epoch FROM {moment} - now()) * 1000))::bigint,
                    (extract(epoch FROM {moment}) * 1000)::bigint
             FROM chat_sessions WHERE id = $1 FOR UPDATE"
        );
        let due: Option<(SessionStatus, i64, Option<i64>)> =
            sqlx::query_as(AssertSqlSafe(query)).bind(id).fetch_optional(&mut **tx).await?;
        let Some((now_status, left_ms, at_ms)) = due else { return Ok(Some(Step::Nothing)) };
        let stale = match (at_ms, expected_ms) {
            (Some(at), Some(expected)) => u64::try_from(at).unwrap_or(0).abs_diff(expected) > 1_000,
            _ => false,
        };
        if stale || now_status != status {
            return Ok(Some(Step::Nothing));
        }
        if left_ms > 0 {
            return Ok(Some(Step::NotYet { left_ms: u64::try_from(left_ms).unwrap_or(0) }));
        }
        Ok(None)
    }

    /// Time is up: an active session starts closing, with `grace_minutes` for goodbyes.
    pub(crate) async fn close_for_time_up(
        &self,
        id: SessionId,
        grace_minutes: i64,
        expected_end_ms: Option<u64>,
    ) -> Result<Step, StoreError> {
        let mut tx = self.pg.begin().await?;
        if let Some(step) =
            Self::lock_if_due(&mut tx, id, SessionStatus::Active, "ends_at", expected_end_ms).await?
        {
            return Ok(step);
        }
        start_closing(&mut tx, id, grace_minutes).await?;
        sqlx::query(
            "INSERT INTO session_closures (chat_session_id, kind, initiated_by) VALUES ($1, 'time_up', 'system')
             ON CONFLICT (chat_session_id) DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self.session_for_timer(id).await?.map_or(Step::Nothing, |row| Step::Done(Box::new(row))))
    }

    /// The grace window is over: a closing session completes.
    pub(crate) async fn complete_session(
        &self,
        id: SessionId,
        expected_grace_end_ms: Option<u64>,
    ) -> Result<Step, StoreError> {
        let mut tx = self.pg.begin().await?;
        if let Some(step) =
            Self::lock_if_due(&mut tx, id, SessionStatus::Closing, "grace_ends_at", expected_grace_end_ms)
                .await?
        {
            return Ok(step);
        }
        sqlx::query("UPDATE chat_sessions SET status = 'completed', completed_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(self.session_for_timer(id).await?.map_or(Step::Nothing, |row| Step::Done(Box::new(row))))
    }

    /// One side ends an active (or extending) session early: it starts closing now, with
    /// the reason recorded. Returns the session and how many early ends the mitra made
    /// today (Asia/Jakarta), this one included, when the mitra ended it.
    pub(crate) async fn end_early(
        &self,
        caller: &Principal,
        id: SessionId,
        reason_code: &str,
        reason: Option<&str>,
        grace_minutes: i64,
    ) -> Result<(SessionRow, Option<i64>), SessionError> {
        let column = match caller.role {
            Role::Customer => "customer_id",
            Role::Mitra => "mitra_id",
            Role::Cc => return Err(SessionError::NotFound),
        };
        let mut tx = self.pg.begin().await?;
        // The extension row first, then the session: the order extension resolutions use.
        sqlx::query(
            "SELECT id FROM extension_requests WHERE chat_session_id = $1 AND status = 'pending' FOR UPDATE",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let query = format!("SELECT status FROM chat_sessions WHERE id = $1 AND {column} = $2 FOR UPDATE");
        let status: Option<SessionStatus> = sqlx::query_scalar(AssertSqlSafe(query))
            .bind(id)
            .bind(caller.id)
            .fetch_optional(&mut *tx)
            .await?;
        match status {
            None => return Err(SessionError::NotFound),
            Some(status) if status.is_open() => {}
            Some(other) => return Err(SessionError::NotAllowed(other)),
        }
        start_closing(&mut tx, id, grace_minutes).await?;
        // A pending extension ends with the session (its payment is never charged).
        sqlx::query(
            "UPDATE extension_requests SET status = 'cancelled', resolution_reason = 'session_ended_early',
                    resolved_at = now()
             WHERE chat_session_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO session_closures (chat_session_id, kind, initiated_by, reason_code, reason)
             VALUES ($1, 'early_end', $2, $3, $4)
             ON CONFLICT (chat_session_id) DO UPDATE SET kind = 'early_end', initiated_by = EXCLUDED.initiated_by,
                 reason_code = EXCLUDED.reason_code, reason = EXCLUDED.reason, closing_started_at = now(),
                 customer_message = NULL, customer_message_at = NULL, mitra_message = NULL, mitra_message_at = NULL",
        )
        .bind(id)
        .bind(caller.role.as_str())
        .bind(reason_code)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let today = if caller.role == Role::Mitra {
            Some(
                sqlx::query_scalar(
                    "SELECT count(*) FROM session_closures x JOIN chat_sessions s ON s.id = x.chat_session_id
                     WHERE s.mitra_id = $1 AND x.kind = 'early_end' AND x.initiated_by = 'mitra'
                       AND x.closing_started_at::date = now()::date",
                )
                .bind(caller.id)
                .fetch_one(&mut *tx)
                .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        let row = self.session_for_timer(id).await?.ok_or(StoreError::Encode("session vanished".into()))?;
        Ok((row, today))
    }

    /// Flags the mitra for control-center review (once a day; the count is kept current).
    pub(crate) async fn flag_mitra_for_early_ends(
        &self,
        mitra: MitraId,
        count: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mitra_review_flags (mitra_id, reason, day, count)
             VALUES ($1, 'early_end_daily_cap', now()::date, $2)
             ON CONFLICT (mitra_id, reason, day) DO UPDATE SET count = greatest(mitra_review_flags.count, EXCLUDED.count)",
        )
        .bind(mitra)
        .bind(i32::try_from(count).unwrap_or(i32::MAX))
        .execute(&self.pg)
        .await?;
        Ok(())
    }

    /// The caller's goodbye while the session is closing; each side says it once.
    pub(crate) async fn leave_closing_message(
        &self,
        caller: &Principal,
        id: SessionId,
        message: &str,
    ) -> Result<SessionRow, SessionError> {
        let (party, side) = match caller.role {
            Role::Customer => ("customer_id", "customer"),
            Role::Mitra => ("mitra_id", "mitra"),
            Role::Cc => return Err(SessionError::NotFound),
        };
        let query = format!(
            "UPDATE session_closures x SET {side}_message = $3, {side}_message_at = now()
             FROM chat_sessions s
             WHERE x.chat_session_id = s.id AND s.id = $1 AND s.{party} = $2 AND s.status = 'closing'
               AND x.{side}_message IS NULL
             RETURNING s.id"
        );
        let said: Option<Uuid> = sqlx::query_scalar(AssertSqlSafe(query))
            .bind(id)
            .bind(caller.id)
            .bind(message)
            .fetch_optional(&self.pg)
            .await?;
        let Some(row) = self.chat_session_for(caller, id).await? else {
            return Err(SessionError::NotFound);
        };
        if said.is_some() {
            return Ok(row);
        }
        let already = match caller.role {
            Role::Customer => row.customer_closing_message.is_some(),
            _ => row.mitra_closing_message.is_some(),
        };
        Err(if already { SessionError::AlreadySaid } else { SessionError::NotAllowed(row.status) })
    }

    /// Sessions whose timers were lost: active past their end, closing past their grace
    /// (by more than `grace_s`). The sweep moves them.
    pub(crate) async fn overdue_sessions(&self, grace_s: i64) -> Result<(Vec<Uuid>, Vec<Uuid>), StoreError> {
        let rows: Vec<(Uuid, SessionStatus)> = sqlx::query_as(
            "SELECT id, status FROM chat_sessions
             WHERE (status = 'active' AND ends_at <= now() - make_interval(secs => $1::double precision))
                OR (status = 'closing' AND grace_ends_at <= now() - make_interval(secs => $1::double precision))
             LIMIT 1000",
        )
        .bind(grace_s as f64)
        .fetch_all(&self.pg)
        .await?;
        let (active, closing): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|(_, status)| *status == SessionStatus::Active);
        Ok((active.into_iter().map(|r| r.0).collect(), closing.into_iter().map(|r| r.0).collect()))
    }

    /// Live sessions per mitra, from the record (for rebuilding the Redis counters).
    pub(crate) async fn live_session_counts(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT m.id, count(s.id) FROM mitras m
             LEFT JOIN chat_sessions s ON s.mitra_id = m.id AND s.status <> 'completed'
             GROUP BY m.id",
        )
        .fetch_all(&self.pg)
        .await?)
    }
}

/// One early end, for the control center's log.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EarlyEndRow {
    pub chat_session_id: SessionId,
    pub initiated_by: crate::chat::store::ClosureInitiator,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub ended_at: chrono::DateTime<chrono::Utc>,
    pub mitra_id: MitraId,
    pub mitra_display_name: String,
    pub customer_call_name: String,
}

/// A mitra flagged for review.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReviewFlagRow {
    pub id: ReviewFlagId,
    pub mitra_id: MitraId,
    pub mitra_display_name: String,
    pub reason: String,
    pub day: chrono::NaiveDate,
    pub count: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub reviewed_by: Option<OperatorId>,
    pub reviewed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What resolving a review flag came to.
#[derive(Debug)]
pub enum Resolution {
    Resolved(ReviewFlagRow),
    NotFound,
    AlreadyResolved,
}

impl Store {
    /// Every session not completed, oldest first (the control center's live view).
    pub(crate) async fn live_sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let query = format!(
            "{} WHERE s.status <> 'completed' ORDER BY s.started_at",
            crate::chat::store::SESSION_SELECT
        );
        Ok(sqlx::query_as(AssertSqlSafe(query)).fetch_all(&self.pg).await?)
    }

    /// Early ends, newest first, in `[from, to)`.
    pub(crate) async fn early_ends(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        limit: i64,
    ) -> Result<Vec<EarlyEndRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT x.chat_session_id, x.initiated_by, x.reason_code, x.reason, x.closing_started_at AS ended_at,
                    s.mitra_id, m.display_name AS mitra_display_name, c.call_name AS customer_call_name
             FROM session_closures x
             JOIN chat_sessions s ON s.id = x.chat_session_id
             JOIN mitras m ON m.id = s.mitra_id
             JOIN customers c ON c.id = s.customer_id
             WHERE x.kind = 'early_end' AND ($1::timestamptz IS NULL OR x.closing_started_at >= $1)
               AND ($2::timestamptz IS NULL OR x.closing_started_at < $2)
             ORDER BY x.closing_started_at DESC LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pg)
        .await?)
    }

    /// Mitras flagged for review, newest first: the open ones, or all with `include_resolved`.
    pub(crate) async fn review_flags(
        &self,
        limit: i64,
        include_resolved: bool,
    ) -> Result<Vec<ReviewFlagRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT f.id, f.mitra_id, m.display_name AS mitra_display_name, f.reason, f.day, f.count, f.created_at,
                    f.reviewed_by, f.reviewed_at
             FROM mitra_review_flags f JOIN mitras m ON m.id = f.mitra_id
             WHERE $2 OR f.reviewed_at IS NULL
             ORDER BY f.day DESC, f.created_at DESC LIMIT $1",
        )
        .bind(limit)
        .bind(include_resolved)
        .fetch_all(&self.pg)
        .await?)
    }

    /// Marks a review flag resolved by `operator`, once, and records it.
    pub(crate) async fn resolve_review_flag(
        &self,
        operator: OperatorId,
        id: ReviewFlagId,
    ) -> Result<Resolution, StoreError> {
        let mut tx = self.pg.begin().await?;
        let found: Option<Option<OperatorId>> =
            sqlx::query_scalar("SELECT reviewed_by FROM mitra_review_flags WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match found {
            None => return Ok(Resolution::NotFound),
            Some(Some(_)) => return Ok(Resolution::AlreadyResolved),
            Some(None) => {}
        }
        sqlx::query("UPDATE mitra_review_flags SET reviewed_by = $2, reviewed_at = now() WHERE id = $1")
            .bind(id)
            .bind(operator)
            .execute(&mut *tx)
            .await?;
        crate::accounts::store::audit(
            &mut tx,
            operator,
            crate::accounts::store::AuditAction::ReviewFlagResolve,
            &id.to_string(),
            None,
            None,
        )
        .await?;
        let row = sqlx::query_as(
            "SELECT f.id, f.mitra_id, m.display_name AS mitra_display_name, f.reason, f.day, f.count, f.created_at,
                    f.reviewed_by, f.reviewed_at
             FROM mitra_review_flags f JOIN mitras m ON m.id = f.mitra_id WHERE f.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Resolution::Resolved(row))
    }
}

impl Store {
    /// The console's counts that Postgres holds: searches pending, chats not completed,
    /// failed pairings not actioned, review flags not resolved; and the session's time zone.
    pub(crate) async fn overview_counts(&self) -> Result<(i64, i64, i64, i64, String), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM pairing_requests WHERE status = 'pending'),
                    (SELECT count(*) FROM chat_sessions WHERE status <> 'completed'),
                    (SELECT count(*) FROM pairing_failures WHERE operator_action IS NULL),
                    (SELECT count(*) FROM mitra_review_flags WHERE reviewed_at IS NULL),
                    current_setting('TimeZone')",
        )
        .fetch_one(&self.pg)
        .await?)
    }
}
