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

/// The real `bestie` executable, started with `BESTIE__...` variables on ports it picks
/// itself (port 0), so no other process can take them between a test choosing a port and
/// the server binding it.
pub struct BestieProcess {
    pub child: Child,
    /// The public listener's address; `127.0.0.1:0` for a process without one (a worker).
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub settings: Settings,
    /// What the process wrote on stdout: its log lines (JSON when the test asked for it).
    pub log: PathBuf,
    stderr: PathBuf,
}

impl BestieProcess {
    /// Starts `bestie serve` with `args` and waits until `/readyz` answers 200 on the
    /// internal listener.
    pub async fn serve(args: &[&str]) -> Self {
        Self::serve_with(isolated_settings(), args).await
    }

    /// Like [`serve`](Self::serve) with the database and Redis prefix of `settings`, so
    /// several processes can share them.
    pub async fn serve_with(settings: Settings, args: &[&str]) -> Self {
        Self::serve_with_env(settings, args, &[]).await
    }

    /// Like [`serve_with`](Self::serve_with), with more `BESTIE__...` variables.
    pub async fn serve_with_env(settings: Settings, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Self::command(&settings);
        command
            .args(args)
            .env("BESTIE__LOG__FORMAT", "json")
            .envs(env.iter().map(|(key, value)| (key, value)));
        Self::start(command, settings).await
    }

    /// `bestie serve` on the database and Redis prefix of `settings`; add arguments and
    /// variables, then [`start`](Self::start) it.
    pub fn command(settings: &Settings) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bestie"));
        command
            .arg("serve")
            .env("BESTIE__DATABASE__URL", settings.database.url.expose())
            .env("BESTIE__REDIS__URL", settings.redis.url.expose())
            .env("BESTIE__REDIS__PREFIX", &settings.redis.prefix);
        command
    }

    /// Spawns `command` on port 0 with its output in files, reads the addresses it bound
    /// from its `serving` line (so its log must be JSON, at info or below), and waits until
    /// it is ready. A process that exits or never gets ready fails the test with what it
    /// printed.
    pub async fn start(mut command: Command, settings: Settings) -> Self {
        let name = format!("bestie-{}", uuid::Uuid::new_v4().simple());
        let (log, stderr) = (
            std::env::temp_dir().join(format!("{name}.jsonl")),
            std::env::temp_dir().join(format!("{name}.err")),
        );
        let child = command
            .env("BESTIE__API__PUBLIC_ADDR", "127.0.0.1:0")
            .env("BESTIE__API__INTERNAL_ADDR", "127.0.0.1:0")
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(std::fs::File::create(&stderr).expect("stderr file")))
            .spawn()
            .expect("bestie starts");
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut process = Self { child, public: unbound, internal: unbound, settings, log, stderr };
        let serving = process.wait_for_serving_line().await;
        let addr = |field: &str| serving[field].as_str().map(|addr| addr.parse().expect("an address"));
        process.internal = addr("internal").unwrap_or_else(|| panic!("no internal address in {serving}"));
        process.public = addr("public").unwrap_or(unbound);
        process.wait_ready().await;
        process
    }

    /// The `serving` line, written once the listeners are bound.
    async fn wait_for_serving_line(&mut self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let serving = log
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|line| line["message"] == "serving");
            if let Some(serving) = serving {
                return serving;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("bestie exited ({status}) before serving\n{}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bestie did not serve within 30 s\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of what the process printed, for a failure message.
    pub fn output(&self) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!("--- stdout (last 40 lines) ---\n{}\n--- stderr ---\n{}", tail(&self.log), tail(&self.stderr))
    }

    /// Waits until `/readyz` answers 200 on the internal listener (30 s at most).
    pub async fn wait_ready(&mut self) {
        let url = format!("http://{}/readyz", self.internal);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("bestie exited ({status}) before it was ready\n{}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bestie did not become ready within 30 s\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BestieProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.stderr);
        drop_isolated(&self.settings);
    }
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

/// A WebSocket client for tests that behaves like an app: a task keeps reading the socket
/// (so the library answers the server's pings, as a foreground app's does) and queues the
/// frames for the test. [`WsClient::stop_reading`] makes it a suspended app: the connection
/// stays open and nothing is read, so no pong answers a ping.
pub struct WsClient {
    frames: tokio::sync::mpsc::UnboundedReceiver<Received>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    reading: bool,
}

/// What the reading task hands over.
enum Received {
    Text(String),
    Close(Option<(u16, String)>),
    Other(String),
    /// The connection ended without a close frame.
    Ended,
}

enum Control {
    Send(tokio_tungstenite::tungstenite::Message, tokio::sync::oneshot::Sender<bool>),
    Reading(bool, tokio::sync::oneshot::Sender<()>),
}

/// How long a test waits for a frame before failing.
const FRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Owns the socket: reads while told to (pings are answered by the library as it reads),
/// sends what the test sends. Ends when the test drops its client or the connection ends.
async fn drive(
    mut socket: Socket,
    frames: tokio::sync::mpsc::UnboundedSender<Received>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut reading = true;
    let mut ended = false;
    loop {
        tokio::select! {
            command = control.recv() => match command {
                Some(Control::Send(message, done)) => {
                    let _ = done.send(socket.send(message).await.is_ok());
                }
                Some(Control::Reading(on, done)) => {
                    reading = on;
                    let _ = done.send(());
                }
                None => return,
            },
            frame = socket.next(), if reading && !ended => {
                let received = match frame {
                    Some(Ok(Message::Text(text))) => Received::Text(text.to_string()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        Received::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Some(Ok(other)) => Received::Other(format!("{other:?}")),
                    None | Some(Err(_)) => {
                        ended = true;
                        Received::Ended
                    }
                };
                if frames.send(received).is_err() {
                    return;
                }
            }
        }
    }
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket opens");
        let (frames_tx, frames) = tokio::sync::mpsc::unbounded_channel();
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(drive(socket, frames_tx, control_rx));
        Self { frames, control, reading: true }
    }

    /// Connects and reads the `welcome` frame.
    pub async fn connect_welcomed(url: &str) -> Self {
        let mut client = Self::connect(url).await;
        let welcome = client.next_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client
    }

    /// Stops reading the socket, as a suspended app or a phone without network: the TCP
    /// connection stays open, nothing is read, no ping is answered. Any later read resumes.
    pub async fn stop_reading(&mut self) {
        self.set_reading(false).await;
    }

    async fn set_reading(&mut self, on: bool) {
        if self.reading == on {
            return;
        }
        let (done, acknowledged) = tokio::sync::oneshot::channel();
        if self.control.send(Control::Reading(on, done)).is_ok() {
            let _ = acknowledged.await;
        }
        self.reading = on;
    }

    async fn receive(&mut self, deadline: tokio::time::Instant) -> Option<Received> {
        self.set_reading(true).await;
        tokio::time::timeout_at(deadline, self.frames.recv())
            .await
            .ok()
            .map(|frame| frame.unwrap_or(Received::Ended))
    }

    /// The next text frame as JSON; panics on a close or after 10 s.
    pub async fn next_json(&mut self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        match self.receive(deadline).await.expect("a frame within 10 s") {
            Received::Text(text) => serde_json::from_str(&text).expect("JSON frame"),
            Received::Close(frame) => panic!("expected a text frame, got a close {frame:?}"),
            Received::Other(other) => panic!("expected a text frame, got {other}"),
            Received::Ended => panic!("expected a text frame, the connection ended"),
        }
    }

    /// The next text frame as JSON, or `None` when none arrives within `wait`; panics on a
    /// close (the socket was expected to stay open).
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<serde_json::Value> {
        match self.receive(tokio::time::Instant::now() + wait).await? {
            Received::Text(text) => Some(serde_json::from_str(&text).expect("JSON frame")),
            Received::Close(frame) => panic!("expected a text frame, got a close {frame:?}"),
            Received::Other(other) => panic!("expected a text frame, got {other}"),
            Received::Ended => panic!("expected a text frame, the connection ended"),
        }
    }

    /// Reads until the close frame; returns its code and reason (1006 when the connection
    /// ended without one).
    pub async fn closed(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            match self.receive(deadline).await.expect("closed within 10 s") {
                Received::Close(Some(frame)) => return frame,
                Received::Close(None) | Received::Ended => return (1006, String::new()),
                Received::Text(_) | Received::Other(_) => continue,
            }
        }
    }

    /// Sends the command `kind` with `data` and reads until its answer (matched by `ref`),
    /// passing over the events that come first.
    pub async fn command(&mut self, kind: &str, data: serde_json::Value) -> serde_json::Value {
        let reference = uuid::Uuid::new_v4().to_string();
        self.send_json(serde_json::json!({"type": kind, "ref": reference, "data": data})).await;
        loop {
            let frame = self.next_json().await;
            if frame["ref"] == reference.as_str() {
                return frame;
            }
        }
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.send(tokio_tungstenite::tungstenite::Message::Text(text.into())).await;
    }

    async fn send(&mut self, message: tokio_tungstenite::tungstenite::Message) {
        let (done, sent) = tokio::sync::oneshot::channel();
        assert!(self.control.send(Control::Send(message, done)).is_ok(), "the socket's task ended");
        assert!(sent.await.unwrap_or(false), "send");
    }

    /// Closes with `code` and reason `test`; returns the server's answer as the client
    /// library records it (1006 when the connection ended without one).
    pub async fn close_with(&mut self, code: u16) -> (u16, String) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame { code: code.into(), reason: "test".into() };
        self.send(tokio_tungstenite::tungstenite::Message::Close(Some(frame))).await;
        self.closed().await
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send(tokio_tungstenite::tungstenite::Message::Binary(bytes.into())).await;
    }
}
