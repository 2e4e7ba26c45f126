//! The repair sweep: every `repair_interval_s` (60 s by default) it finishes what a lost timer
//! or a process that died mid-step left undone. Each flow has its own timer and checks its
//! deadline inline at every transition; this is the backstop that makes every abandoned row
//! reach its final state:
//! - payments whose expiry passed are closed (and land in the failure ledger);
//! - confirm charges left pending are finished (`domain::payment::finish_stale_charges`);
//! - searches whose window ended are closed (`domain::pairing::close_overdue_windows`);
//! - chat sessions past their end or grace are moved on, each mitra's live sessions are
//!   recounted from the record, and extension requests past their window are resolved
//!   (`domain::session::close_overdue`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use domain::payment::PaymentStatus;
use domain::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::JobContext;

pub const JOB: &str = "repair";

/// One repair sweep, queued once per period.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repair {
    /// The start of the period (unix seconds) this sweep belongs to.
    pub period_start_s: u64,
}

pub type Storage = PostgresStorage<Repair>;

pub fn storage(store: &Store) -> Storage {
    PostgresStorage::new(domain::jobs::queue_pool(store))
}

/// One repair sweep. Running it twice, or late, changes nothing more.
pub async fn run(_job: &Repair, ctx: &JobContext) -> Result<(), StoreError> {
    let counts = domain::payment::sweep_expired(&ctx.store).await?;
    let swept = &ctx.metrics.payment_sessions_swept;
    swept.with_label_values(&[PaymentStatus::Expired.as_str()]).inc_by(counts.expired);
    swept.with_label_values(&[PaymentStatus::FailedPairing.as_str()]).inc_by(counts.failed);
    if counts.expired + counts.failed > 0 {
        tracing::info!(expired = counts.expired, failed = counts.failed, "payment sessions swept");
    }
    // Confirms that died mid-charge, or whose provider never answered, end here.
    let finished = domain::payment::finish_stale_charges(&ctx.services).await?;
    if finished != domain::payment::FinishedCharges::default() {
        tracing::warn!(
            confirmed = finished.confirmed,
            declined = finished.declined,
            unanswered = finished.unanswered,
            "finished confirm charges left pending"
        );
    }
    // Searches whose window timer was lost (a process died between the two) end here.
    let closed = domain::pairing::close_overdue_windows(&ctx.services).await?;
    if closed > 0 {
        tracing::warn!(closed, "closed searches whose window timer was lost");
    }
    let moved = domain::session::close_overdue(&ctx.services).await?;
    if moved > 0 {
        tracing::warn!(moved, "moved chat sessions whose timers were lost");
    }
    Ok(())
}

pub(crate) async fn handle(job: Repair, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    crate::record(&ctx.metrics, JOB, run(&job, &ctx).await)
}

/// Queues one sweep per period. Every worker process runs this loop; the period start is the
/// job's idempotency key, so however many processes queue it, one sweep runs per period.
pub(crate) async fn schedule(mut storage: Storage, period: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let period_start_s = now_s - now_s % period.as_secs().max(1);
        let task = TaskBuilder::new(Repair { period_start_s })
            .idempotency_key(format!("{JOB}:{period_start_s}"))
            .max_attempts(3)
            .build();
        if let Err(error) = storage.push_task(task).await {
            // Most often another process queued this period's sweep first.
            tracing::debug!(%error, "repair sweep not queued");
        }
    }
}
