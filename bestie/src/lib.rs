//! Wiring: settings in, a running process out.
//!
//! [`Application::build`] connects the stores, migrates, binds the listeners of the roles it
//! runs (port 0 picks a free port, which the test harness relies on) and returns before
//! serving; [`Application::run_until_stopped`] serves until the shutdown token is cancelled,
//! then drains: stop accepting, close sockets with 1012, let jobs in flight finish.

pub mod settings;
pub mod telemetry;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::{AppContext, AppState, Listener};
use domain::Store;
use domain::auth::AuthContext;
use domain::metrics::Metrics;
use domain::services::Services;
use domain::settings::Settings;
use hub::Hub;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a process runs. `serve` runs all of them unless `--role` names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum ServiceRole {
    /// REST on the public (`/api`) and internal (`/internal`) listeners.
    Api,
    /// The WebSocket endpoint `/ws` on the public listener.
    Hub,
    /// Durable background jobs.
    Worker,
}

impl ServiceRole {
    pub fn all() -> BTreeSet<ServiceRole> {
        [ServiceRole::Api, ServiceRole::Hub, ServiceRole::Worker].into()
    }
}

/// A built, not yet serving, process.
pub struct Application {
    settings: Settings,
    roles: BTreeSet<ServiceRole>,
    state: AppState,
    hub: Option<Hub>,
    public: Option<TcpListener>,
    internal: TcpListener,
}

impl Application {
    /// Connects, migrates (unless `database.migrate_on_start` is false) and binds.
    pub async fn build(settings: Settings, roles: BTreeSet<ServiceRole>) -> anyhow::Result<Self> {
        anyhow::ensure!(!roles.is_empty(), "at least one role must run");
        let metrics = Metrics::new();
        let auth = AuthContext::new(&settings.auth, settings.mode, &metrics).map_err(anyhow::Error::msg)?;
        let payments = domain::charges::provider(&settings.payments, settings.mode, &metrics)
            .map_err(anyhow::Error::msg)
            .context("setting up the payment provider")?;
        let store = Store::connect(&settings.database, &settings.redis)
            .await
            .context("connecting to Postgres and Redis")?;
        if settings.database.migrate_on_start {
            migrate(&store).await?;
        }
        let services = Arc::new(Services {
            store: store.clone(),
            jobs: Arc::new(workers::jobs::PgJobs::new(&store)),
            payments,
            hub: settings.hub.clone(),
            presence: settings.presence.clone(),
            metrics: metrics.clone(),
            live: Default::default(),
            budget: domain::budget::UserBudget::new(&settings.hub),
            deferred_pushes: Default::default(),
        });
        let state: AppState = Arc::new(AppContext {
            store,
            metrics,
            auth: Arc::new(auth),
            services,
            availability: domain::presence::AvailabilityView::default(),
            documents: Default::default(),
        });
        let hub = if roles.contains(&ServiceRole::Hub) {
            let hub = Hub::new(
                settings.hub.clone(),
                settings.presence.clone(),
                state.services.clone(),
                state.auth.clone(),
            );
            hub.start().await.context("starting the hub")?;
            Some(hub)
        } else {
            None
        };
        // The public listener serves the apps: REST (api role) and /ws (hub role).
        let public = if roles.contains(&ServiceRole::Api) || roles.contains(&ServiceRole::Hub) {
            Some(bind(settings.api.public_addr, "public", "BESTIE__API__PUBLIC_ADDR").await?)
        } else {
            None
        };
        // Every process has the internal listener for /healthz, /readyz and /metrics.
        let internal = bind(settings.api.internal_addr, "internal", "BESTIE__API__INTERNAL_ADDR").await?;
        Ok(Self { settings, roles, state, hub, public, internal })
    }

    /// The bound public address, when this process serves the apps.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.local_addr().expect("a bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// What the flows of this process use (its job queue, its payment provider).
    pub fn services(&self) -> &Arc<Services> {
        &self.state.services
    }

    /// The token keys this process signs with, for tests that mint tokens directly.
    pub fn auth(&self) -> Arc<AuthContext> {
        self.state.auth.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains within `api.shutdown_timeout_ms`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, roles, state, hub, public, internal } = self;
        let public_addr = public.as_ref().map(TcpListener::local_addr).transpose()?;
        let internal_addr = internal.local_addr()?;
        let drain = Duration::from_millis(settings.api.shutdown_timeout_ms);
        let mut tasks = tokio::task::JoinSet::new();

        // Every role authenticates (REST or socket upgrades): keep the revocation list in memory.
        let store = state.store.clone();
        let token = shutdown.clone();
        tokio::spawn(async move { domain::auth::session::watch_revocations(&store, token).await });
        if roles.contains(&ServiceRole::Api) {
            tokio::spawn(domain::presence::run_availability_view(
                state.store.clone(),
                state.availability.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(listener) = public {
            let mut routes = api::openapi::Routes::default();
            if roles.contains(&ServiceRole::Api) {
                routes = routes.merge(api::public_routes(&state));
            }
            if let Some(hub) = &hub {
                routes = routes.merge(hub.routes());
            }
            let router = api::finish(Listener::Public, routes, state.clone());
            tasks.spawn(serve(listener, router, shutdown.clone(), "public"));
        }
        let internal_routes = if roles.contains(&ServiceRole::Api) {
            api::internal_routes(&state)
        } else {
            api::openapi::Routes::default()
        };
        let router = api::finish(Listener::Internal, internal_routes, state.clone())
            .layer(api::layers::cors(&settings.api.cc_origins));
        tasks.spawn(serve(internal, router, shutdown.clone(), "internal"));

        if roles.contains(&ServiceRole::Worker) {
            let push = domain::push::sender(&settings.push).context("setting up push notifications")?;
            let ctx = workers::JobContext::new(state.services.clone()).with_push(push.into());
            let worker_settings = settings.worker.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                workers::run(ctx, &worker_settings, token, drain).await.context("job workers")
            });
        }

        // Every process samples its readiness and pool gauges (and the global mitra counts).
        tokio::spawn(domain::sampler::run(state.store.clone(), state.metrics.clone(), shutdown.clone()));
        // Sockets are upgraded connections the HTTP server no longer tracks: close them
        // ourselves once the shutdown starts.
        // Every process reaps dead hub instances, so presence heals even with no hub left.
        // It also copies presence back from Postgres when Redis lost its data.
        tokio::spawn(domain::presence::run_reaper(state.services.clone(), shutdown.clone()));
        tokio::spawn(domain::budget::run_forgetting(state.services.clone(), shutdown.clone()));
        tokio::spawn(domain::delivery::run(state.services.clone(), shutdown.clone()));
        if let Some(hub) = hub {
            let token = shutdown.clone();
            tasks.spawn(async move {
                token.cancelled().await;
                if !hub.shutdown(drain).await {
                    tracing::warn!("some sockets were still open at the shutdown deadline");
                }
                Ok(())
            });
        }
        // The bound addresses, so a process started on port 0 says where it listens.
        let version = env!("CARGO_PKG_VERSION");
        match public_addr {
            Some(public) => {
                tracing::info!(version, roles = ?roles, mode = ?settings.mode, %public, internal = %internal_addr, "serving")
            }
            None => {
                tracing::info!(version, roles = ?roles, mode = ?settings.mode, internal = %internal_addr, "serving")
            }
        }

        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|result| result);
            if let Err(error) = result {
                tracing::error!(error = format!("{error:#}"), "a role stopped with an error");
                // One role failing stops the others: a half-running process is worse than a restart.
                shutdown.cancel();
                first_error.get_or_insert(error);
            }
        }
        state.store.close().await;
        first_error.map_or(Ok(()), Err)
    }
}

/// Applies our migrations and the job backend's.
pub async fn migrate(store: &Store) -> anyhow::Result<()> {
    store.migrate().await.context("applying migrations")?;
    workers::migrate(store).await.context("setting up the job backend")?;
    Ok(())
}

/// Binds a listener; a failure (the port taken, say) names the setting to change.
async fn bind(addr: SocketAddr, name: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {name} listener (set by {setting})"))
}

async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
    name: &'static str,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    tracing::info!(listener = name, addr = %listener.local_addr()?, "listening");
    // Small frames (acks, events) leave at once instead of waiting behind Nagle's algorithm
    // for the previous segment's acknowledgement (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    // Connection info gives handlers the peer address (rate limits, OTP throttles).
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .with_context(|| format!("serving the {name} listener"))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// Schedules `count` probe timers due evenly over `spread_s` seconds from `start_in_s`
/// seconds on, waits until every one fired (or a minute past the last due time), and
/// reports how late they ran. A worker process must be running against the same database.
pub async fn probe_timers(
    store: &Store,
    count: usize,
    spread_s: u64,
    start_in_s: u64,
) -> anyhow::Result<serde_json::Value> {
    let since = chrono::Utc::now();
    let start_ms = workers::timers::now_ms() + start_in_s * 1_000;
    let step_ms = if count > 1 { spread_s * 1_000 / (count as u64 - 1) } else { 0 };
    let timers: Vec<workers::timers::FireTimer> = (0..count as u64)
        .map(|n| workers::timers::FireTimer {
            kind: workers::timers::TimerKind::Probe,
            key: uuid::Uuid::new_v4(),
            due_at_ms: start_ms + n * step_ms,
        })
        .collect();
    let probes: Vec<_> = timers
        .iter()
        .map(|t| {
            let due = chrono::DateTime::from_timestamp_millis(i64::try_from(t.due_at_ms).unwrap_or(i64::MAX));
            (domain::ids::ProbeId(t.key), due.unwrap_or(since))
        })
        .collect();
    domain::jobs::probes::insert(store, &probes).await?;
    let mut storage = workers::timers::storage(store);
    for chunk in timers.chunks(1_000) {
        workers::timers::schedule_many(&mut storage, chunk.to_vec()).await?;
    }
    let last_due_ms = start_ms + spread_s * 1_000;
    loop {
        let report = domain::jobs::probes::report(store, since).await?;
        let give_up = workers::timers::now_ms() > last_due_ms + 60_000;
        if report.fired == report.scheduled || give_up {
            return Ok(serde_json::json!({
                "scheduled": report.scheduled,
                "fired": report.fired,
                "early": report.early,
                "repeated": report.repeated,
                "lateness_ms": {"p50": report.p50_ms, "p99": report.p99_ms, "max": report.max_ms},
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
