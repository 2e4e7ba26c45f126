//! A chat session's life: the ending-soon warning, time up → closing (goodbyes, the
//! customer may still extend), grace end → completed (the mitra's capacity frees up), and
//! an early end by either side where the control center allows it.
//!
//! The three moments are durable timers scheduled when the session starts; each re-reads
//! the session, so a repeated, late or stale timer (the session was extended or ended
//! early) changes nothing. The repair sweep moves sessions whose timers were lost.

pub mod store;

use crate::calendar::{Instants, Period};
mod overview;
mod views;

pub use overview::{Overview, overview};
pub use views::{EarlyEndView, EarlyEnds, LiveSessionView, LiveSessions, ReviewFlagView, ReviewFlags};

use chrono::Utc;
use serde_json::json;

use crate::app_config;
use crate::auth::{Principal, Role};
use crate::capacity::{self, Change};
use crate::chat::SessionRow;
use crate::chat::store::{ClosureKind, SessionStatus};
use crate::error::{DomainError, ErrorKind};
use crate::event::{ClosingData, ClosingMessageData, CompletedData, EndingWarningData, Event};
use crate::ids::{MitraId, SessionId, UserId};
use crate::jobs::{Timer, TimerKind};
use crate::services::{Notice, Services};
use crate::session::store::Step;
pub use crate::session::store::{EarlyEndRow, ReviewFlagRow};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("ending a session early is switched off")]
    FeatureDisabled,
    #[error("reason_code must be 1 to 64 characters of a-z, 0-9 and _")]
    InvalidReasonCode,
    #[error("reason_text must be at most 1,000 characters")]
    InvalidReasonText,
    #[error("a closing message must be 1 to 1,000 characters and not only white space")]
    InvalidClosingMessage,
    #[error("no such chat session of yours")]
    NotFound,
    #[error("the session is {0}")]
    NotAllowed(SessionStatus),
    #[error("you already left your closing message")]
    AlreadySaid,
    #[error("limit must be 1 to {MAX_LOG_PAGE}")]
    InvalidPage,
    #[error("no such review flag")]
    FlagNotFound,
    #[error("this review flag was already resolved")]
    FlagAlreadyResolved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for SessionError {
    fn code(&self) -> &'static str {
        match self {
            Self::FeatureDisabled => "feature_disabled",
            Self::InvalidReasonCode => "invalid_reason_code",
            Self::InvalidReasonText => "invalid_reason_text",
            Self::InvalidClosingMessage => "invalid_closing_message",
            Self::NotFound => "chat_session_not_found",
            Self::NotAllowed(_) => "chat_session_not_open",
            Self::AlreadySaid => "closing_message_already_left",
            Self::InvalidPage => "invalid_page",
            Self::FlagNotFound => "review_flag_not_found",
            Self::FlagAlreadyResolved => "review_flag_already_resolved",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::FeatureDisabled => ErrorKind::Forbidden,
            Self::InvalidReasonCode
            | Self::InvalidReasonText
            | Self::InvalidClosingMessage
            | Self::InvalidPage => ErrorKind::Invalid,
            Self::NotFound | Self::FlagNotFound => ErrorKind::NotFound,
            Self::FlagAlreadyResolved => ErrorKind::Conflict,
            Self::NotAllowed(_) | Self::AlreadySaid => ErrorKind::Conflict,
            Self::Store(e) => e.kind(),
        }
    }

    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Self::NotAllowed(status) => vec![("status", json!(status))],
            _ => Vec::new(),
        }
    }
}

fn ms(at: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or_default()
}

/// Schedules the warning and the time-up of a session that (re)starts running until
/// `ends_at`. A failure is logged: the sweep ends sessions whose timers were lost.
pub async fn schedule_end(services: &Services, session: SessionId, ends_at: chrono::DateTime<chrono::Utc>) {
    let warning_s =
        app_config::get(&services.store, app_config::SESSION_ENDING_WARNING_SECONDS).await.unwrap_or(60);
    let end_ms = ms(ends_at);
    let warn_ms = end_ms.saturating_sub(u64::try_from(warning_s).unwrap_or(60).saturating_mul(1_000));
    let mut timers = vec![Timer { kind: TimerKind::EndSessionTime, key: session.0, due_at_ms: end_ms }];
    if warn_ms > crate::clock::now_ms() {
        timers.push(Timer { kind: TimerKind::WarnSessionEnding, key: session.0, due_at_ms: warn_ms });
    }
    for timer in timers {
        if let Err(error) = services.jobs.schedule(timer).await {
            tracing::warn!(%error, %session, "a session timer could not be queued; the sweep will end it");
        }
    }
}

/// Both parties of a session get `event`.
async fn tell_both(services: &Services, row: &SessionRow, event: Event) {
    services
        .notify(vec![
            Notice {
                role: Role::Customer,
                user: UserId::from(row.customer_id),
                event: event.clone(),
                push: None,
            },
            Notice { role: Role::Mitra, user: UserId::from(row.mitra_id), event, push: None },
        ])
        .await;
}

/// The warning timer: tells both sides the session ends soon, unless it was extended or
/// ended meanwhile (its end is no longer the one this timer was for).
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn warn(services: &Services, session: SessionId, due_at_ms: u64) -> Result<(), StoreError> {
    let Some(row) = services.store.session_for_timer(session).await? else { return Ok(()) };
    let warning_s = app_config::get(&services.store, app_config::SESSION_ENDING_WARNING_SECONDS).await?;
    let expected_end_ms =
        due_at_ms.saturating_add(u64::try_from(warning_s).unwrap_or(0).saturating_mul(1_000));
    let stale = ms(row.ends_at).abs_diff(expected_end_ms) > 1_000;
    if stale || !row.status.is_open() {
        return Ok(());
    }
    let seconds_left = (row.ends_at - chrono::Utc::now()).num_seconds().max(0);
    let data = EndingWarningData { session_id: row.id, ends_at: row.ends_at, seconds_left };
    tell_both(services, &row, Event::SessionEndingWarning(data)).await;
    Ok(())
}

/// The time-up timer: an active session starts closing. `due_at_ms` is the end the timer
/// was queued for: when an extension moved the end, the stale timer does nothing (the
/// sweep passes `None`).
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn time_up(
    services: &Services,
    session: SessionId,
    due_at_ms: Option<u64>,
) -> Result<(), StoreError> {
    let grace = app_config::get(&services.store, app_config::CLOSING_GRACE_MINUTES).await?;
    let row = match step(|| services.store.close_for_time_up(session, grace, due_at_ms)).await? {
        Some(row) => row,
        None => return Ok(()),
    };
    closing_started(services, &row, ClosureKind::TimeUp, None).await;
    Ok(())
}

/// Schedules the grace end and tells both sides the session is closing.
async fn closing_started(services: &Services, row: &SessionRow, reason: ClosureKind, by: Option<Role>) {
    tracing::info!(session_id = %row.id, reason = reason.as_str(), by = by.map(Role::as_str), "chat session closing");
    if let Some(grace_ends_at) = row.grace_ends_at {
        let timer = Timer { kind: TimerKind::CompleteSession, key: row.id.0, due_at_ms: ms(grace_ends_at) };
        if let Err(error) = services.jobs.schedule(timer).await {
            tracing::warn!(%error, session = %row.id, "the grace timer could not be queued; the sweep will complete it");
        }
    }
    let data = ClosingData {
        session_id: row.id,
        reason,
        by,
        grace_ends_at: row.grace_ends_at,
        can_extend: reason == ClosureKind::TimeUp,
    };
    tell_both(services, row, Event::SessionClosing(data)).await;
}

/// The grace timer: a closing session completes and the mitra's capacity frees up. A timer
/// for a grace window that is no longer the session's (it was extended, then closed again)
/// does nothing.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn complete(
    services: &Services,
    session: SessionId,
    due_at_ms: Option<u64>,
) -> Result<(), StoreError> {
    let Some(row) = step(|| services.store.complete_session(session, due_at_ms)).await? else {
        return Ok(());
    };
    tracing::info!(session_id = %row.id, "chat session completed");
    // Committed: whatever fails below is repaired by the sweep's recount.
    let cap = app_config::get(&services.store, app_config::MAX_CUSTOMERS_PER_MITRA).await.unwrap_or(3);
    match capacity::changed(services, row.mitra_id, Change::SessionEnded { cap }).await {
        Ok(changed) => {
            changed.offer(services).await;
        }
        Err(error) => tracing::warn!(%error, "could not update the mitra's session count in Redis"),
    }
    let data = CompletedData { session_id: row.id, completed_at: row.completed_at };
    tell_both(services, &row, Event::SessionCompleted(data)).await;
    Ok(())
}

/// Runs a lifecycle step, waiting while the database's clock says it is not due yet.
async fn step<F, Fut>(run: F) -> Result<Option<SessionRow>, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Step, StoreError>>,
{
    for _ in 0..5 {
        match run().await? {
            Step::Done(row) => return Ok(Some(*row)),
            Step::Nothing => return Ok(None),
            Step::NotYet { left_ms } => {
                tokio::time::sleep(std::time::Duration::from_millis(left_ms.clamp(1, 5_000))).await;
            }
        }
    }
    Ok(None)
}

/// Ends the caller's active session now, where the control center allows it
/// (`early_end_mitra_enabled` / `early_end_customer_enabled`). A mitra over
/// `early_end_mitra_daily_cap` early ends today is flagged for review (not blocked).
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn end_early(
    services: &Services,
    caller: &Principal,
    session: SessionId,
    reason_code: &str,
    reason_text: Option<&str>,
) -> Result<SessionRow, SessionError> {
    let store = &services.store;
    let gate = if caller.role == Role::Mitra {
        app_config::EARLY_END_MITRA_ENABLED
    } else {
        app_config::EARLY_END_CUSTOMER_ENABLED
    };
    if !app_config::get(store, gate).await? {
        return Err(SessionError::FeatureDisabled);
    }
    let code_ok = (1..=64).contains(&reason_code.len())
        && reason_code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !code_ok {
        return Err(SessionError::InvalidReasonCode);
    }
    // The length counts what was sent (as the OpenAPI schema says); white space alone is none.
    if reason_text.is_some_and(|text| text.chars().count() > 1_000 || text.contains('\0')) {
        return Err(SessionError::InvalidReasonText);
    }
    let reason_text = reason_text.map(str::trim).filter(|text| !text.is_empty());
    let grace = app_config::get(store, app_config::CLOSING_GRACE_MINUTES).await?;
    let (row, today) = store.end_early(caller, session, reason_code, reason_text, grace).await?;
    if let Some(count) = today {
        let cap = app_config::get(store, app_config::EARLY_END_MITRA_DAILY_CAP).await?;
        if count > cap {
            store.flag_mitra_for_early_ends(caller.mitra_id(), count).await?;
        }
    }
    closing_started(services, &row, ClosureKind::EarlyEnd, Some(caller.role)).await;
    Ok(row)
}

/// The caller's goodbye while the session is closing; the other side gets it live.
#[tracing::instrument(skip_all, fields(session_id = %session))]
pub async fn leave_closing_message(
    services: &Services,
    caller: &Principal,
    session: SessionId,
    message: &str,
) -> Result<SessionRow, SessionError> {
    let trimmed = message.trim();
    if trimmed.is_empty() || message.chars().count() > 1_000 || message.contains('\0') {
        return Err(SessionError::InvalidClosingMessage);
    }
    let row = services.store.leave_closing_message(caller, session, trimmed).await?;
    let (role, other) = match caller.role {
        Role::Customer => (Role::Mitra, UserId::from(row.mitra_id)),
        _ => (Role::Customer, row.customer_id.into()),
    };
    let data = ClosingMessageData { session_id: row.id, by: caller.role, message: trimmed.to_owned() };
    let event = Event::ClosingMessage(data);
    services.notify(vec![Notice { role, user: other, event, push: None }]).await;
    Ok(row)
}

/// Moves sessions whose timers were lost (a process died before queuing them): active
/// past their end over a minute ago start closing; closing past their grace complete.
pub async fn close_overdue(services: &Services) -> Result<usize, StoreError> {
    let (ended, graced) = services.store.overdue_sessions(60).await?;
    let moved = ended.len() + graced.len();
    // One failing session must not stop the others.
    for session in ended {
        if let Err(error) = time_up(services, crate::ids::SessionId(session), None).await {
            tracing::warn!(%error, %session, "ending a session whose timer was lost failed");
        }
    }
    for session in graced {
        if let Err(error) = complete(services, crate::ids::SessionId(session), None).await {
            tracing::warn!(%error, %session, "completing a session whose timer was lost failed");
        }
    }
    // The session counters in Redis move by deltas; recount them from the record, so a
    // lost delta (a crash between a commit and its delta) heals.
    let cap = app_config::get(&services.store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
    for (mitra, live) in services.store.live_session_counts().await? {
        match capacity::changed(services, MitraId(mitra), Change::Recounted { live, cap }).await {
            Ok(changed) => {
                changed.offer(services).await;
            }
            Err(error) => tracing::warn!(%error, %mitra, "recounting a mitra's sessions failed"),
        }
    }
    for extension in services.store.overdue_extensions(60).await? {
        if let Err(error) = crate::extension::window_ended(services, crate::ids::ExtensionId(extension)).await
        {
            tracing::warn!(%error, %extension, "resolving an extension whose timer was lost failed");
        }
    }
    Ok(moved)
}

/// Most rows of a control-center log page (early ends, review flags), and the default.
pub const MAX_LOG_PAGE: i64 = 500;
const DEFAULT_LOG_PAGE: i64 = 100;

fn log_page(limit: Option<i64>) -> Result<i64, SessionError> {
    let limit = limit.unwrap_or(DEFAULT_LOG_PAGE);
    (1..=MAX_LOG_PAGE).contains(&limit).then_some(limit).ok_or(SessionError::InvalidPage)
}

/// Every session not completed, oldest first: the control center's live view.
pub async fn live(store: &Store) -> Result<LiveSessions, SessionError> {
    let now = Utc::now();
    let rows = store.live_sessions().await?;
    Ok(LiveSessions { rows: rows.iter().map(|row| LiveSessionView::new(row, now)).collect() })
}

/// The early ends in `[from, to)` (either open), newest first.
pub async fn early_ends(
    store: &Store,
    period: Period,
    limit: Option<i64>,
) -> Result<EarlyEnds, SessionError> {
    let limit = log_page(limit)?;
    let Instants { from, to } = store.instants(period).await?;
    let rows = store.early_ends(from, to, limit).await?;
    Ok(EarlyEnds { rows: rows.iter().map(EarlyEndView::from).collect() })
}

/// The mitras flagged for review (over `early_end_mitra_daily_cap`), newest first: the open
/// flags, or all of them with `include_resolved`.
pub async fn review_flags(
    store: &Store,
    limit: Option<i64>,
    include_resolved: bool,
) -> Result<ReviewFlags, SessionError> {
    let rows = store.review_flags(log_page(limit)?, include_resolved).await?;
    Ok(ReviewFlags { rows: rows.iter().map(ReviewFlagView::from).collect() })
}

/// An operator resolves a review flag (they looked at the mitra's early ends): once, with
/// who and when, in the audit log too.
pub async fn resolve_review_flag(
    store: &Store,
    operator: &Principal,
    id: crate::ids::ReviewFlagId,
) -> Result<ReviewFlagView, SessionError> {
    match store.resolve_review_flag(operator.operator_id(), id).await? {
        store::Resolution::Resolved(row) => Ok(ReviewFlagView::from(&row)),
        store::Resolution::NotFound => Err(SessionError::FlagNotFound),
        store::Resolution::AlreadyResolved => Err(SessionError::FlagAlreadyResolved),
    }
}
