//! Durable, punctual timers.
//!
//! A timer is a job ([`FireTimer`]) carrying its due time in milliseconds. The job backend
//! stores `run_at` in whole seconds, so a job becomes fetchable up to a second before or
//! after the instant it names. Timers are therefore stored to run one whole second before
//! their due second: the worker holds the job early, and the job sleeps until the exact
//! due time (rounded up to the next millisecond) before it acts. So a timer never fires
//! early, and its lateness is the wake-up cost, not the poll interval. The job is durable:
//! a worker that dies while holding it misses its heartbeats (1 s, dead after 2 missed) and
//! the job goes back to the queue for the next worker; every timer kind re-reads the state
//! it acts on, so a repeat changes nothing.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_postgres::{Config, PostgresStorage};
use domain::Store;
pub use domain::clock::now_ms;

pub use domain::jobs::TimerKind;

/// The job: fire timer `kind` for `key` at `due_at_ms` (unix milliseconds).
pub type FireTimer = domain::jobs::Timer;

pub type Storage = PostgresStorage<FireTimer>;

/// How often a worker holding timers proves it is alive, and after how many missed beats
/// its timers go back to the queue: a killed worker's timers resume within about 2 s.
const HEARTBEAT: Duration = Duration::from_secs(1);
const MISSED_HEARTBEATS: usize = 2;
/// Timers fetched per poll: enough for thousands due in the same second.
const BATCH: usize = 1_000;

pub fn storage(store: &Store) -> Storage {
    let config = Config::default()
        .queue(std::any::type_name::<FireTimer>())
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .batch_size(BATCH);
    PostgresStorage::new(domain::jobs::queue_pool(store)).with_config(config)
}

/// A job could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("queuing a job failed: {0}")]
pub struct ScheduleError(String);

impl ScheduleError {
    pub(crate) fn new(reason: String) -> Self {
        Self(reason)
    }
}

fn task(timer: FireTimer) -> apalis::prelude::Task<FireTimer> {
    // One second before the due second (whole seconds), so the worker holds it in time.
    let run_at_s = (timer.due_at_ms / 1_000).saturating_sub(1);
    let key = format!("{}:{}:{}", timer.kind.as_str(), timer.key, timer.due_at_ms);
    TaskBuilder::new(timer).run_at_timestamp(run_at_s).idempotency_key(key).max_attempts(5).build()
}

/// Schedules a timer. Scheduling the same `(kind, key, due_at_ms)` twice is one timer.
pub async fn schedule(
    storage: &mut Storage,
    kind: TimerKind,
    key: uuid::Uuid,
    due_at_ms: u64,
) -> Result<(), ScheduleError> {
    match storage.push_task(task(FireTimer { kind, key, due_at_ms })).await {
        Ok(()) => Ok(()),
        Err(error) if error.to_string().contains("idx_jobs_idempotency_key") => Ok(()),
        Err(error) => Err(ScheduleError(error.to_string())),
    }
}

/// Sleeps until `due_at_ms` on the wall clock, never waking before it.
pub(crate) async fn sleep_until(due_at_ms: u64) {
    let now_us = domain::clock::now_us();
    let due_us = due_at_ms.saturating_mul(1_000);
    if due_us > now_us {
        // Rounded up: the timer wheel has millisecond resolution.
        tokio::time::sleep(Duration::from_micros(due_us - now_us + 1_000)).await;
    }
}

/// Schedules many timers in one batch (all new: a duplicate fails the batch).
pub async fn schedule_many(storage: &mut Storage, timers: Vec<FireTimer>) -> Result<(), ScheduleError> {
    let mut tasks = futures::stream::iter(timers.into_iter().map(task));
    storage.push_all(&mut tasks).await.map_err(|e| ScheduleError(e.to_string()))
}
