//! The gauges read from the stores rather than counted as things happen: readiness (the
//! checks `/readyz` runs too, [`readiness`]: each run sets `bestie_dependency_up` and
//! `bestie_dependency_check_seconds`), this process's pool usage, and the mitras online and
//! available. Every process samples them every [`SAMPLE_EVERY`], whatever its roles.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How often the gauges are read; a few scrapes see the same value.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How long a store may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

crate::text_enum::text_enum! {
    /// How a store answered its readiness check (`/readyz`'s `checks`).
    pub enum Check {
        Ok = "ok",
        /// It answered with an error, or the connection failed.
        Down = "down",
        /// No answer within two seconds.
        Timeout = "timeout",
    }
}

/// Each store's readiness check, as `/readyz` answers it and the `bestie_ready` gauges read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub postgres: Check,
    pub redis: Check,
}

impl Readiness {
    pub fn ready(self) -> bool {
        self.postgres == Check::Ok && self.redis == Check::Ok
    }
}

/// Checks both stores at once, each for at most two seconds, recording in `metrics`
/// whether each answered and how long it took.
pub async fn readiness(store: &Store, metrics: &Metrics) -> Readiness {
    let (postgres, redis) = tokio::join!(
        check(metrics, "postgres", store.check_postgres()),
        check(metrics, "redis", store.check_redis()),
    );
    Readiness { postgres, redis }
}

/// Samples the gauges until `shutdown`.
pub async fn run(store: Store, metrics: Metrics, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => sample(&store, &metrics).await,
        }
    }
}

/// Reads every gauge once.
pub async fn sample(store: &Store, metrics: &Metrics) {
    let readiness = readiness(store, metrics).await;
    metrics.ready.set(i64::from(readiness.ready()));

    let pools = store.pool_usage();
    let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    metrics.postgres_pool_connections.with_label_values(&["in_use"]).set(gauge(pools.postgres_in_use));
    metrics.postgres_pool_connections.with_label_values(&["idle"]).set(gauge(pools.postgres_idle));
    metrics.postgres_pool_max_connections.set(gauge(pools.postgres_max));
    metrics.redis_pool_connections.with_label_values(&["connected"]).set(gauge(pools.redis_connected));
    metrics.redis_pool_connections.with_label_values(&["disconnected"]).set(gauge(pools.redis_disconnected));
    metrics.redis_commands_queued.set(gauge(pools.redis_commands_queued));

    if readiness.redis == Check::Ok {
        match store.mitra_counts().await {
            Ok((online, available)) => {
                metrics.mitras_online.set(gauge(online));
                metrics.mitras_available.set(gauge(available));
            }
            Err(error) => tracing::debug!(%error, "mitra counts unavailable"),
        }
    }
}

/// Runs one readiness check, records whether it answered and how long it took.
async fn check(
    metrics: &Metrics,
    dependency: &str,
    probe: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Check {
    let started = Instant::now();
    let check = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => Check::Ok,
        Ok(Err(_)) => Check::Down,
        Err(_) => Check::Timeout,
    };
    metrics.dependency_up.with_label_values(&[dependency]).set(i64::from(check == Check::Ok));
    metrics.dependency_check_seconds.with_label_values(&[dependency]).set(started.elapsed().as_secs_f64());
    check
}
