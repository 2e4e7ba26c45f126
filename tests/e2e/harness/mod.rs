//! `TestApp::spawn()`: the real application, in-process, on random ports, with a fresh
//! database and a unique Redis prefix; and `BestieProcess`: the real executable.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bestie::{Application, ServiceRole};
use domain::auth::Role;
use domain::auth::tokens::TokenKeys;
use domain::ids::UserId;
use domain::settings::{ConnectionUrl, Settings};
use domain::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod process;
mod redis;
mod ws;

pub use process::*;
pub use redis::*;
pub use ws::*;

/// Where test databases are created. Each test gets `bestie_test_<uuid>` on this server.
const TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The Redis the tests use unless `BESTIE_TEST_REDIS` names another (a cluster's
/// `redis-cluster://` URL from `scripts/redis-cluster`, for the cluster job).
const TEST_REDIS: &str = "redis://127.0.0.1:6379";

/// The Redis URL the tests run against: `BESTIE_TEST_REDIS`, or the single one on 6379.
pub fn test_redis_url() -> String {
    std::env::var("BESTIE_TEST_REDIS").unwrap_or_else(|_| TEST_REDIS.to_owned())
}

/// Settings for one isolated test: a new database name, a new Redis prefix, free ports.
pub fn isolated_settings() -> Settings {
    // `TEST_LOG=debug cargo test ... -- --nocapture` shows the application's logs.
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let log = domain::settings::LogSettings { filter, ..Default::default() };
        // Kept for the whole test binary (a second init keeps the first subscriber).
        static LOG: std::sync::OnceLock<bestie::telemetry::LogGuard> = std::sync::OnceLock::new();
        LOG.get_or_init(|| bestie::telemetry::init(&log, domain::settings::Mode::Development));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut settings = Settings::default();
    settings.database.url = ConnectionUrl::new(format!("{TEST_POSTGRES}/bestie_test_{id}"));
    settings.database.max_connections = 5;
    settings.redis.url = ConnectionUrl::new(test_redis_url());
    settings.redis.prefix = format!("test_{id}");
    settings.redis.pool_size = 2;
    settings.api.public_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.api.internal_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.seed.demo_mitras = Some(0);
    // Every test client is 127.0.0.1; the tests of the limits lower these again.
    settings.auth.rate_limit_burst = 10_000;
    settings.auth.rate_limit_per_minute = 10_000;
    settings.auth.otp_max_per_address_per_hour = 10_000;
    settings
}

/// An access token signed with the keys `settings` configure, for `id` acting as `role`.
pub fn token_for(settings: &Settings, id: uuid::Uuid, role: Role) -> String {
    TokenKeys::new(&settings.auth).issue(UserId(id), role).expect("sign token").token
}

/// A WebSocket URL with the token in the query string.
/// A `chat_message` event whose message has `seq` `n` and `body`, to publish straight to a
/// user (the hub's tests need an event, not a chat).
pub fn message_event(n: i64, body: &str) -> domain::event::Event {
    let message = domain::chat::MessageView {
        id: uuid::Uuid::new_v4(),
        session_id: uuid::Uuid::nil(),
        seq: n,
        sender_role: Role::Customer,
        client_msg_id: format!("m-{n}"),
        body: body.to_owned(),
        created_at: chrono::Utc::now(),
    };
    domain::event::Event::ChatMessage(domain::event::ChatMessageData { message })
}

pub fn ws_url_with_token(public: SocketAddr, token: &str) -> String {
    format!("ws://{public}/ws?token={token}")
}

/// The application running in this test's runtime.
pub struct TestApp {
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub http: reqwest::Client,
    /// The application's own store, for assertions through the same queries it runs.
    pub store: Store,
    /// The application's flows' dependencies (job queue, payment provider).
    pub services: std::sync::Arc<domain::services::Services>,
    pub settings: Settings,
    shutdown: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Every role in one process, as `bestie serve` runs it.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`spawn`](Self::spawn), after `configure` adjusts the settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_roles(ServiceRole::all(), configure).await
    }

    /// Only `roles` (which must include api or hub, for the public listener), after
    /// `configure` adjusts the settings. Without the worker role nothing runs in the
    /// background, so a test can call a job's `run` itself without racing it.
    pub async fn spawn_roles(roles: BTreeSet<ServiceRole>, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = isolated_settings();
        configure(&mut settings);
        Self::spawn_from(settings, roles).await
    }

    /// Another instance sharing this one's database and Redis prefix (its own ports).
    pub async fn spawn_sibling(&self) -> Self {
        Self::spawn_from(self.settings.clone(), ServiceRole::all()).await
    }

    async fn spawn_from(settings: Settings, roles: BTreeSet<ServiceRole>) -> Self {
        let app = Application::build(settings.clone(), roles).await.expect("application builds");
        let public = app.public_addr().expect("api or hub role serves the public listener");
        let internal = app.internal_addr();
        let store = app.store().clone();
        let services = app.services().clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        // The reaper's first tick copies the record into the presence counters; a flow that
        // started before it would have its session deltas overwritten by that copy.
        eventually(Duration::from_secs(30), "the presence counters are seeded", || async {
            store.presence_seeded().await.expect("read the seeded marker")
        })
        .await;
        Self {
            public,
            internal,
            http: reqwest::Client::new(),
            store,
            services,
            settings,
            shutdown,
            running: Some(running),
        }
    }

    /// Runs one repair sweep (expiry, stale charges, lost timers) as a worker's period
    /// would; `why` names it in a failure.
    pub async fn run_repair(&self, why: &str) {
        let ctx = workers::JobContext::new(self.services.clone());
        let job = workers::repair::Repair { period_start_s: 0 };
        workers::repair::run(&job, &ctx).await.expect(why);
    }

    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.internal)
    }

    /// `/ws` for a new customer, authenticated through the query string.
    pub fn ws_url(&self) -> String {
        ws_url_with_token(self.public, &self.token_for(uuid::Uuid::new_v4(), Role::Customer))
    }

    /// An access token signed with this application's keys.
    pub fn token_for(&self, id: uuid::Uuid, role: Role) -> String {
        token_for(&self.settings, id, role)
    }

    /// Sends `method url` with an optional JSON body and bearer token; returns the status
    /// and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body read");
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, json)
    }

    pub async fn post(
        &self,
        url: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, url, token, Some(body)).await
    }

    /// Signs a new customer in through the OTP flow; returns (id, access, refresh).
    pub async fn sign_in_customer(&self, phone: &str) -> (uuid::Uuid, String, String) {
        let (status, sent) = self
            .post(&self.public_url("/api/auth/customer/otp"), None, serde_json::json!({"phone": phone}))
            .await;
        assert_eq!(status, 202, "{sent}");
        let code = sent["dev_code"].as_str().expect("dev_code").to_owned();
        let (status, session) = self
            .post(
                &self.public_url("/api/auth/customer/verify"),
                None,
                serde_json::json!({"phone": phone, "code": code, "call_name": "Rani"}),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        let id = session["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("user id");
        let (access, refresh) = session_tokens(&session);
        (id, access, refresh)
    }

    /// Seeds the control-center admin and signs in; returns its access token.
    pub async fn sign_in_operator(&self) -> String {
        domain::seed::run(&self.store, &self.settings.seed).await.expect("seed");
        let body = serde_json::json!({
            "email": self.settings.seed.admin_email,
            "password": self.settings.seed.admin_password.expose(),
        });
        let (status, session) = self.post(&self.internal_url("/internal/auth/login"), None, body).await;
        assert_eq!(status, 200, "{session}");
        session["access_token"].as_str().expect("access").to_owned()
    }

    /// Creates a mitra through the control center and signs in; returns (id, access, refresh).
    pub async fn sign_in_new_mitra(&self, operator: &str) -> (uuid::Uuid, String, String) {
        let email = format!("m{}@bestie.test", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let body =
            serde_json::json!({"email": email, "password": "listen-well-1", "display_name": "Bestie Ayu"});
        let (status, mitra) = self.post(&self.internal_url("/internal/mitras"), Some(operator), body).await;
        assert_eq!(status, 201, "{mitra}");
        let login = serde_json::json!({"email": email, "password": "listen-well-1"});
        let (status, session) = self.post(&self.public_url("/api/auth/mitra/login"), None, login).await;
        assert_eq!(status, 200, "{session}");
        let id = mitra["id"].as_str().and_then(|id| id.parse().ok()).expect("mitra id");
        let (access, refresh) = session_tokens(&session);
        (id, access, refresh)
    }

    /// The internal listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.internal_url("/metrics")).send().await.expect("metrics");
        response.text().await.expect("metrics text")
    }

    /// Starts a graceful shutdown and returns what `run_until_stopped` returned.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.running.take() {
            Some(running) => running.await.expect("the application task does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        drop_isolated(&self.settings);
    }
}

/// Drops a test's database and Redis keys. Runs on its own thread and runtime because
/// `Drop` cannot await.
pub fn drop_isolated(settings: &Settings) {
    let settings = settings.clone();
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            if let Err(error) = domain::store::database::drop(settings.database.url.expose()).await {
                eprintln!("could not drop the test database: {error}");
            }
            if let Err(error) = domain::store::keys::purge(&settings.redis).await {
                eprintln!("could not purge the test Redis keys: {error}");
            }
        });
    });
    let _ = cleanup.join();
}

/// A port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

/// A phone number no other test uses.
pub fn unique_phone() -> String {
    format!("+62812{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000)
}

/// `(access_token, refresh_token)` of a sign-in answer.
pub fn session_tokens(session: &serde_json::Value) -> (String, String) {
    let field =
        |name: &str| session[name].as_str().unwrap_or_else(|| panic!("{name} in {session}")).to_owned();
    (field("access_token"), field("refresh_token"))
}

/// Waits until `condition` holds, checking every 20 ms, failing after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}
