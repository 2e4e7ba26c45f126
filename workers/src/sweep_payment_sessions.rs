//! The payment-session sweep: every `payment_sweep_interval_s` (60 s by default) it closes
//! payments whose expiry has passed. Expiry is also checked inline at every transition; the
//! sweep makes sure abandoned rows reach their final state and land in the failure ledger,
//! and finishes confirm charges left pending (`domain::payment::finish_stale_charges`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use domain::store::Store;
use domain::store::StoreError;
use domain::store::payments::PaymentStatus;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::JobContext;

pub const JOB: &str = "sweep_payment_sessions";

/// One sweep, queued once per period.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepPaymentSessions {
    /// The start of the period (unix seconds) this sweep belongs to.
    pub period_start_s: u64,
}

pub type Storage = PostgresStorage<SweepPaymentSessions>;

pub fn storage(store: &Store) -> Storage {
    PostgresStorage::new(store.pg_pool())
}

/// Closes expired payment sessions. Running it twice, or late, changes nothing more.
pub async fn run(_job: &SweepPaymentSessions, ctx: &JobContext) -> Result<(), StoreError> {
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

pub(crate) async fn handle(job: SweepPaymentSessions, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
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
        let task = TaskBuilder::new(SweepPaymentSessions { period_start_s })
            .idempotency_key(format!("{JOB}:{period_start_s}"))
            .max_attempts(3)
            .build();
        if let Err(error) = storage.push_task(task).await {
            // Most often another process queued this period's sweep first.
            tracing::debug!(%error, "payment sweep not queued");
        }
    }
}
