//! What the rules ask to happen later or elsewhere: timers and pushes.
//!
//! The rules decide *that* a timer is due or a push must go out; the `workers` crate
//! implements [`Jobs`] on its durable job queue (Postgres) and runs them. Keeping the port
//! here lets the api, the hub and the jobs themselves call the same flows without the
//! domain knowing the job backend.

pub mod store;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Role;
use crate::error::{DomainError, ErrorKind};
use crate::push::PushMessage;
use crate::store::{Store, StoreError};

/// What a timer does when it fires; each kind's handler lives in `workers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// A canary that records when it fired (`bestie timers-probe`).
    Probe,
    /// A payment session reaches its expiry.
    ExpirePaymentSession,
    /// A pairing request's window ends (general blast or returning chat).
    ClosePairingRequest,
    /// `session_ending_warning_seconds` before a session's end.
    WarnSessionEnding,
    /// A session's time is up: it starts closing.
    EndSessionTime,
    /// A closing session's grace window ends: it completes.
    CompleteSession,
    /// An extension request's window ends unanswered.
    ExpireExtension,
}

impl TimerKind {
    pub const ALL: [TimerKind; 7] = [
        Self::Probe,
        Self::ExpirePaymentSession,
        Self::ClosePairingRequest,
        Self::WarnSessionEnding,
        Self::EndSessionTime,
        Self::CompleteSession,
        Self::ExpireExtension,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::ExpirePaymentSession => "expire_payment_session",
            Self::ClosePairingRequest => "close_pairing_request",
            Self::WarnSessionEnding => "warn_session_ending",
            Self::EndSessionTime => "end_session_time",
            Self::CompleteSession => "complete_session",
            Self::ExpireExtension => "expire_extension",
        }
    }
}

/// A timer: run `kind` for `key` at `due_at_ms` (unix milliseconds), never before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub kind: TimerKind,
    /// What the timer is about: a payment session id, a pairing request id, ...
    pub key: Uuid,
    pub due_at_ms: u64,
}

/// A push for every device of one account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub role: Role,
    pub account: Uuid,
    pub message: PushMessage,
}

/// A job could not be queued (the job store is unreachable).
#[derive(Debug, thiserror::Error)]
#[error("queuing a job failed: {0}")]
pub struct JobError(pub String);

impl DomainError for JobError {
    fn code(&self) -> &'static str {
        "store_unavailable"
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

/// The durable job queue. Scheduling the same timer twice is one timer.
pub trait Jobs: Send + Sync {
    fn schedule(&self, timer: Timer) -> BoxFuture<'_, Result<(), JobError>>;
    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), JobError>>;
}

/// The Postgres pool the job backend keeps its queue in (the same database as the rules', so
/// a flow's commit and the job it queues can be one transaction).
pub fn queue_pool(store: &Store) -> &sqlx::PgPool {
    store.pg_pool()
}

/// Per job type, the jobs due and not started, and how long the oldest of them has been due,
/// in seconds (types with nothing due are absent).
pub async fn queue_depths(store: &Store) -> Result<Vec<(String, i64, f64)>, StoreError> {
    store.job_queue_depths().await
}

/// Timer probes: timers queued only to measure how late the queue fires them
/// (`bestie probe-timers`).
pub mod probes {
    use chrono::{DateTime, Utc};

    use crate::ids::ProbeId;
    pub use crate::jobs::store::ProbeReport;
    use crate::store::{Store, StoreError};

    /// Records probes due at their times, before their timers are queued.
    pub async fn insert(store: &Store, probes: &[(ProbeId, DateTime<Utc>)]) -> Result<(), StoreError> {
        store.insert_probes(probes).await
    }

    /// The probe's timer fired now.
    pub async fn fired(store: &Store, id: ProbeId) -> Result<(), StoreError> {
        store.record_probe_firing(id).await
    }

    /// The lateness of the probes scheduled since `since`.
    pub async fn report(store: &Store, since: DateTime<Utc>) -> Result<ProbeReport, StoreError> {
        store.probe_report(since).await
    }
}
