//! Durable background jobs: everything that happens later or outside a request.
//!
//! Jobs live in Postgres (apalis-postgres keeps its tables in the `apalis` schema), so a job
//! survives the process that queued it. One file per job, named verb_noun, each with an
//! idempotent `run` that tests call directly; the worker shell around it only counts and logs.

pub mod charge_payment;
pub mod expire_payment_session;
pub mod fire_timer;
pub mod jobs;
pub mod record_probe;
pub mod repair;
pub mod send_push;
pub mod timers;

use std::time::Duration;

use apalis::prelude::{BoxDynError, Monitor, ParallelizeExt, WorkerBuilder};
use apalis::prelude::{IntervalStrategy, PollWith};
use apalis_postgres::PostgresStorage;
use domain::Store;
use domain::metrics::Metrics;
use domain::settings::WorkerSettings;
use tokio_util::sync::CancellationToken;

/// What every job gets: the stores, the metrics and the outside services.
#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub metrics: Metrics,
    pub payments: std::sync::Arc<dyn domain::charges::PaymentProvider>,
    pub push: std::sync::Arc<dyn domain::push::PushSender>,
    /// What the flows a timer runs need (the same as the api's).
    pub services: std::sync::Arc<domain::services::Services>,
}

impl JobContext {
    /// With the services' payment provider and the log push sender; `with_push` sets a
    /// real one.
    pub fn new(services: std::sync::Arc<domain::services::Services>) -> Self {
        Self {
            store: services.store.clone(),
            metrics: services.metrics.clone(),
            payments: services.payments.clone(),
            push: std::sync::Arc::new(domain::push::LogSender),
            services,
        }
    }

    pub fn with_push(mut self, push: std::sync::Arc<dyn domain::push::PushSender>) -> Self {
        self.push = push;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("job backend: {0}")]
    Backend(#[from] apalis_postgres::Error),
    #[error("worker monitor: {0}")]
    Monitor(#[from] apalis::prelude::MonitorError),
}

/// Creates or upgrades the job backend's own tables (schema `apalis`).
pub async fn migrate(store: &Store) -> Result<(), WorkerError> {
    PostgresStorage::<()>::setup(domain::jobs::queue_pool(store)).await?;
    Ok(())
}

/// Restarts of a failed worker inside one monitor before the whole monitor is rebuilt.
const RESTARTS_PER_MONITOR: usize = 3;

/// Runs every job worker until `shutdown` is cancelled, then lets jobs in flight finish
/// (bounded by `drain_timeout`).
///
/// A worker whose backend fails (Postgres unreachable, pool exhausted) ends with an error;
/// apalis would then stop. Here it is restarted, and when it keeps failing the monitor is
/// rebuilt after a pause under fresh worker names (apalis refuses a name it still holds),
/// so jobs resume by themselves once the database is back.
pub async fn run(
    ctx: JobContext,
    settings: &WorkerSettings,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> Result<(), WorkerError> {
    let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
    create_job_series(&ctx.metrics);
    let sweep_storage = repair::storage(&ctx.store);
    let depth = tokio::spawn(report_queue_depth(ctx.clone(), shutdown.clone()));
    let scheduler = tokio::spawn(repair::schedule(
        sweep_storage.clone(),
        Duration::from_secs(settings.repair_interval_s.max(1)),
        shutdown.clone(),
    ));
    while !shutdown.is_cancelled() {
        // A crashed process's worker name stays registered until its lease runs out, so
        // every monitor registers fresh names.
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{}-{}", settings.name, &suffix[..8]);
        tracing::info!(worker = %name, poll_ms = poll.as_millis() as u64, "job workers starting");
        let worker_ctx = ctx.clone();
        let storage = sweep_storage.clone();
        let timer_ctx = ctx.clone();
        let timer_storage = timers::storage(&ctx.store);
        let timer_name = name.clone();
        let charge_ctx = ctx.clone();
        let charge_storage = charge_payment::storage(&ctx.store);
        let charge_name = name.clone();
        let push_ctx = ctx.clone();
        let push_storage = send_push::storage(&ctx.store);
        let push_name = name.clone();
        let monitor = Monitor::new()
            .shutdown_timeout(drain_timeout)
            .should_restart(|worker, error| {
                tracing::warn!(worker = %worker.name(), %error, "job worker failed; restarting");
                worker.restarts() < RESTARTS_PER_MONITOR
            })
            .register(move |_restarts| {
                WorkerBuilder::new(format!("{name}-repair"))
                    .backend(PollWith::new(storage.clone(), IntervalStrategy::new(poll)))
                    .data(worker_ctx.clone())
                    .build(repair::handle)
            })
            .register(move |_restarts| {
                // Timers sleep until their exact due time inside the job, so they run in
                // parallel rather than one after another.
                WorkerBuilder::new(format!("{timer_name}-fire-timer"))
                    .backend(PollWith::new(timer_storage.clone(), IntervalStrategy::new(poll)))
                    .data(timer_ctx.clone())
                    .parallelize(tokio::spawn)
                    .build(fire_timer::handle)
            })
            .register(move |_restarts| {
                WorkerBuilder::new(format!("{charge_name}-charge-payment"))
                    .backend(PollWith::new(charge_storage.clone(), IntervalStrategy::new(poll)))
                    .data(charge_ctx.clone())
                    .build(charge_payment::handle)
            })
            .register(move |_restarts| {
                // A push may wait out FCM's Retry-After: pushes run side by side.
                WorkerBuilder::new(format!("{push_name}-send-push"))
                    .backend(PollWith::new(push_storage.clone(), IntervalStrategy::new(poll)))
                    .data(push_ctx.clone())
                    .parallelize(tokio::spawn)
                    .build(send_push::handle)
            });
        // `run_with_signal` would wait for the signal even after every worker stopped, so
        // race the run against our token and stop the monitor ourselves.
        let context = monitor.context();
        let run = monitor.run();
        tokio::pin!(run);
        let result = tokio::select! {
            result = &mut run => result,
            () = shutdown.cancelled() => {
                let _ = context.shutdown();
                (&mut run).await
            }
        };
        match result {
            Ok(()) => break,
            Err(error) if !shutdown.is_cancelled() => {
                tracing::error!(%error, "job workers stopped; starting them again in 1 s");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(error) => {
                scheduler.abort();
                depth.abort();
                return Err(error.into());
            }
        }
    }
    scheduler.abort();
    depth.abort();
    Ok(())
}

/// The job queues by the job type apalis stores (the argument's type name), with the name
/// the `queue` label gives each.
fn queues() -> [(&'static str, &'static str); 4] {
    use std::any::type_name;
    [
        (type_name::<timers::FireTimer>(), fire_timer::JOB),
        (type_name::<charge_payment::ChargePayment>(), charge_payment::JOB),
        (type_name::<send_push::SendPush>(), send_push::JOB),
        (type_name::<repair::Repair>(), repair::JOB),
    ]
}

/// Every value the `kind` label of the run counters takes: the jobs, and each timer kind (a
/// timer counts under its kind).
fn job_names() -> impl Iterator<Item = &'static str> {
    let kinds = domain::jobs::TimerKind::ALL.into_iter().map(domain::jobs::TimerKind::as_str);
    [charge_payment::JOB, send_push::JOB, repair::JOB].into_iter().chain(kinds)
}

/// Creates every job's counters at zero, so rates and alerts over them have a series before
/// the first run.
fn create_job_series(metrics: &Metrics) {
    for job in job_names() {
        for outcome in ["ok", "error"] {
            metrics.jobs.with_label_values(&[job, outcome]);
        }
        metrics.job_retries.with_label_values(&[job]);
    }
}

/// Publishes, every few seconds, each queue's jobs due and not started and how long the
/// oldest of them has waited (0 for a queue with nothing due).
async fn report_queue_depth(ctx: JobContext, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match domain::jobs::queue_depths(&ctx.store).await {
            Ok(depths) => {
                for (job_type, job) in queues() {
                    let (depth, oldest_s) = depths
                        .iter()
                        .find(|(stored, _, _)| stored == job_type)
                        .map_or((0, 0.0), |(_, depth, oldest_s)| (*depth, *oldest_s));
                    ctx.metrics.job_queue_depth.with_label_values(&[job]).set(depth);
                    ctx.metrics.job_queue_oldest_seconds.with_label_values(&[job]).set(oldest_s.max(0.0));
                }
            }
            Err(error) => tracing::debug!(%error, "queue depth unavailable"),
        }
    }
}

/// Runs a job's outcome through the shared counters and logs, and converts it for apalis.
fn record<E: std::error::Error + Send + Sync + 'static>(
    metrics: &Metrics,
    job: &'static str,
    outcome: Result<(), E>,
) -> Result<(), BoxDynError> {
    match outcome {
        Ok(()) => {
            metrics.jobs.with_label_values(&[job, "ok"]).inc();
            Ok(())
        }
        Err(error) => {
            metrics.jobs.with_label_values(&[job, "error"]).inc();
            tracing::warn!(job, %error, "job failed");
            Err(Box::new(error))
        }
    }
}
