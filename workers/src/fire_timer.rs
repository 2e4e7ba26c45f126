//! The timer job: waits for the exact due time, then runs the timer's kind.

use apalis::prelude::{Attempt, BoxDynError, Data};
use domain::StoreError;

use crate::JobContext;
use crate::timers::{FireTimer, TimerKind, now_ms, sleep_until};

pub const JOB: &str = "fire_timer";

/// A timer that failed; apalis runs it again (up to its attempts).
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Extension(#[from] domain::extension::ExtensionError),
}

/// Runs the timer's kind. Each kind re-reads the state it acts on, so running a timer
/// twice, or late, changes nothing more.
pub async fn run(timer: &FireTimer, ctx: &JobContext) -> Result<(), TimerError> {
    let services = &ctx.services;
    let (key, due) = (timer.key, timer.due_at_ms);
    match timer.kind {
        TimerKind::Probe => crate::record_probe::run(key, ctx).await?,
        TimerKind::ExpirePaymentSession => crate::expire_payment_session::run(key, ctx).await?,
        TimerKind::ClosePairingRequest => {
            drop(domain::pairing::close_window(services, domain::ids::RequestId(key)).await?)
        }
        TimerKind::WarnSessionEnding => {
            domain::session::warn(services, domain::ids::SessionId(key), due).await?
        }
        TimerKind::EndSessionTime => {
            domain::session::time_up(services, domain::ids::SessionId(key), Some(due)).await?
        }
        TimerKind::CompleteSession => {
            domain::session::complete(services, domain::ids::SessionId(key), Some(due)).await?
        }
        TimerKind::ExpireExtension => {
            domain::extension::window_ended(services, domain::ids::ExtensionId(key)).await?
        }
    }
    Ok(())
}

pub(crate) async fn handle(
    timer: FireTimer,
    attempt: Attempt,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    sleep_until(timer.due_at_ms).await;
    let late_ms = now_ms().saturating_sub(timer.due_at_ms);
    let kind = timer.kind.as_str();
    ctx.metrics.job_lateness_seconds.with_label_values(&[kind]).observe(late_ms as f64 / 1_000.0);
    if attempt.current() > 1 {
        ctx.metrics.job_retries.with_label_values(&[kind]).inc();
    }
    crate::record(&ctx.metrics, kind, run(&timer, &ctx).await)
}
