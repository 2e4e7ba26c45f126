//! `wsbench pairing`: the general blast and the accept, measured on real mitra sockets.
//!
//! Creates `--mitras` mitras in the server's Postgres, turns each online over HTTP, opens one
//! socket per mitra and waits until the server counts every one as available. Each round then
//! signs a new customer in, pays (create + confirm: the free trial), and measures:
//!
//! 1. **blast**: from just before `POST /api/client/chat-requests` is sent to each mitra's
//!    socket receiving that request's `chat_request`;
//! 2. **accept**: from just before one mitra's `POST /api/mitra/chat-requests/{id}/accept` is
//!    sent to each other mitra's socket receiving `chat_request_taken` for it.
//!
//! Every timestamp is an [`Instant`] of this one process: the socket readers stamp a frame as
//! soon as it is read, before parsing it, and hand it to the rounds over a channel. Each wait
//! gives up after [`WAIT`] and counts the mitras that saw nothing as missing. The mitra that
//! accepts changes every round: one with 3 live sessions (the default cap) is no longer
//! available and would not be offered the next requests.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use domain::accounts::store::NewAccount;
use domain::auth::Role;
use domain::ids::UserId;
use domain::store::Store;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::{Cli, Socket, open_all, percentile, token_keys};

/// How long a round waits for every mitra's frame.
const WAIT: Duration = Duration::from_secs(10);
/// How long the mitras may take to count as available once their sockets are open.
const AVAILABLE_WITHIN: Duration = Duration::from_secs(30);
/// REST calls in flight at once while setting up (mitras created, switches turned on).
const SETUP_CONCURRENCY: usize = 32;
/// The p99 goals, in milliseconds.
const BLAST_GOAL_MS: f64 = 100.0;
const TAKEN_GOAL_MS: f64 = 50.0;

pub struct Options {
    pub mitras: usize,
    pub rounds: usize,
    pub api: SocketAddr,
    pub report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ChatRequest,
    Taken,
}

/// A frame one mitra's socket received, stamped when it was read.
struct Arrival {
    mitra: usize,
    kind: Kind,
    request: Uuid,
    at: Instant,
}

/// One mitra of the run.
pub(crate) struct Mitra {
    pub(crate) id: Uuid,
    pub(crate) token: String,
}

/// The api's public listener, over one keep-alive client.
pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        // No proxy: the bench must only ever talk to the address it was given.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("http client")?;
        Ok(Self { client, base: format!("http://{addr}") })
    }

    /// Builds a POST (so the caller can stamp the time just before sending it).
    pub(crate) fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<reqwest::Request> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.build().with_context(|| format!("building POST {path}"))
    }

    /// Sends `request`; fails unless the status is `expected`. Returns the JSON body.
    pub(crate) async fn send(&self, request: reqwest::Request, expected: u16) -> anyhow::Result<Value> {
        let path = request.url().path().to_owned();
        let response = self.client.execute(request).await.with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.with_context(|| format!("POST {path}: reading the body"))?;
        anyhow::ensure!(status == expected, "POST {path}: {status} (expected {expected}): {text}");
        serde_json::from_str(&text).with_context(|| format!("POST {path}: body is not JSON: {text}"))
    }

    pub(crate) async fn call(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        expected: u16,
    ) -> anyhow::Result<Value> {
        self.send(self.post(path, token, body)?, expected).await
    }

    /// Sends `method path` (with `body` as JSON when given); returns the status and the JSON
    /// body (`Null` when empty or not JSON), whatever the status.
    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.with_context(|| format!("{method} {path}: reading the body"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

pub(crate) fn uuid_field(body: &Value, pointer: &str) -> anyhow::Result<Uuid> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no uuid at {pointer} in {body}"))
}

/// A new customer signed in with a one-time code (the server must run with `otp_sender=dev`).
async fn sign_in_customer(api: &Api) -> anyhow::Result<String> {
    let phone = format!("+62813{:08}", Uuid::new_v4().as_u128() % 100_000_000);
    Ok(sign_in_phone(api, &phone).await?["access_token"].as_str().context("no access_token")?.to_owned())
}

/// Signs the customer of `phone` in with a one-time code; returns the session body
/// (`access_token`, `user.id`, ...).
pub(crate) async fn sign_in_phone(api: &Api, phone: &str) -> anyhow::Result<Value> {
    let sent = api.call("/api/auth/customer/otp", None, &json!({"phone": phone}), 202).await?;
    let code =
        sent["dev_code"].as_str().context("no dev_code: run the server with BESTIE__AUTH__OTP_SENDER=dev")?;
    let body = json!({"phone": phone, "code": code, "call_name": "Bench"});
    api.call("/api/auth/customer/verify", None, &body, 200).await
}

/// A confirmed 15-minute payment of `token`'s customer; returns its id.
pub(crate) async fn paid(api: &Api, token: &str) -> anyhow::Result<Uuid> {
    let payment =
        api.call("/api/client/payment-sessions", Some(token), &json!({"tier_id": "15m"}), 201).await?;
    let id = uuid_field(&payment, "/id")?;
    let path = format!("/api/client/payment-sessions/{id}/confirm");
    api.call(&path, Some(token), &json!({}), 200).await?;
    Ok(id)
}

/// Creates `count` mitras directly in Postgres (one password hash for all) with tokens.
pub(crate) async fn create_mitras(cli: &Cli, store: &Store, count: usize) -> anyhow::Result<Vec<Mitra>> {
    let hash = domain::password::hash("pairing-bench-1").await.context("hashing the password")?;
    let run = Uuid::new_v4().simple().to_string();
    let keys = token_keys(cli);
    let ids: Vec<anyhow::Result<Uuid>> = futures::stream::iter(0..count)
        .map(|n| {
            let (hash, run) = (&hash, &run);
            async move {
                let email = format!("bench-{}-{n}@bestie.bench", &run[..8]);
                let account = NewAccount { email: &email, display_name: "Bench", password_hash: hash };
                store
                    .insert_mitra_if_absent(account)
                    .await?
                    .with_context(|| format!("{email} exists already"))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    ids.into_iter()
        .map(|id| {
            let id = id.context("creating a mitra")?;
            Ok(Mitra { id, token: keys.issue(UserId(id), Role::Mitra)?.token })
        })
        .collect()
}

/// Turns every mitra's switch on over HTTP.
pub(crate) async fn go_online(api: &Api, mitras: &[Mitra]) -> anyhow::Result<()> {
    let on = json!({"online": true});
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(mitras)
        .map(|mitra| api.call("/api/mitra/status", Some(&mitra.token), &on, 200))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().try_for_each(|result| result.map(drop))
}

/// Reads `socket` until it closes, handing every `chat_request` and `chat_request_taken`
/// to `arrivals`; counts the socket in `closed` when it ends.
fn spawn_reader(
    mitra: usize,
    mut socket: Socket,
    arrivals: mpsc::UnboundedSender<Arrival>,
    closed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let at = Instant::now();
            let Message::Text(text) = message else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            let kind = match frame["type"].as_str() {
                Some("chat_request") => Kind::ChatRequest,
                Some("chat_request_taken") => Kind::Taken,
                _ => continue,
            };
            let Some(request) = frame["data"]["request_id"].as_str().and_then(|id| id.parse().ok()) else {
                continue;
            };
            if arrivals.send(Arrival { mitra, kind, request, at }).is_err() {
                return;
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
    })
}

/// What one wait collected.
struct Collected {
    /// Latencies in microseconds, one per mitra that received the frame in time.
    latencies_us: Vec<u64>,
    /// The mitras that received it.
    seen: HashSet<usize>,
    /// Frames for other requests or repeats (late frames of an earlier round).
    stray: u64,
}

/// Takes arrivals until every mitra in `expected` received `kind` for `request`, or until
/// [`WAIT`] after `sent`.
async fn collect(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    kind: Kind,
    request: Uuid,
    expected: &HashSet<usize>,
    sent: Instant,
) -> Collected {
    let deadline = tokio::time::Instant::from_std(sent + WAIT);
    let mut collected = Collected { latencies_us: Vec::new(), seen: HashSet::new(), stray: 0 };
    while collected.seen.len() < expected.len() {
        let Ok(Some(arrival)) = tokio::time::timeout_at(deadline, arrivals.recv()).await else {
            break;
        };
        if arrival.kind != kind
            || arrival.request != request
            || !expected.contains(&arrival.mitra)
            || !collected.seen.insert(arrival.mitra)
        {
            collected.stray += 1;
            continue;
        }
        let latency = arrival.at.saturating_duration_since(sent).as_micros();
        collected.latencies_us.push(u64::try_from(latency).unwrap_or(u64::MAX));
    }
    collected
}

/// One distribution of the report.
pub(crate) struct Distribution {
    pub(crate) label: String,
    pub(crate) expected: u64,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) goal_ms: Option<f64>,
}

impl Distribution {
    pub(crate) fn new(label: impl Into<String>, goal_ms: Option<f64>) -> Self {
        Self { label: label.into(), expected: 0, latencies_us: Vec::new(), goal_ms }
    }

    /// Records one HTTP answer time (always expected).
    fn push(&mut self, elapsed: Duration) {
        self.expected += 1;
        self.latencies_us.push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn row(&self) -> String {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let received = sorted.len() as u64;
        let missing = self.expected.saturating_sub(received);
        let ms = |p: f64| format!("{:.1} ms", percentile(&sorted, p));
        let p99 = percentile(&sorted, 99.0);
        let goal = match self.goal_ms {
            Some(goal) if missing == 0 && p99 <= goal => format!("p99 ≤ {goal} ms: met"),
            Some(goal) => format!("p99 ≤ {goal} ms: **not met**"),
            None => "–".to_owned(),
        };
        format!(
            "| {} | {received} | {missing} | {} | {} | {} | {} | {goal} |",
            self.label,
            ms(50.0),
            ms(90.0),
            ms(99.0),
            ms(100.0)
        )
    }
}

/// Waits until the server's availability set holds every mitra.
pub(crate) async fn wait_available(store: &Store, mitras: &[Mitra]) -> anyhow::Result<()> {
    let wanted: HashSet<Uuid> = mitras.iter().map(|mitra| mitra.id).collect();
    let started = Instant::now();
    loop {
        let available = store.available_mitras().await.context("reading the availability set")?;
        let count = available.iter().filter(|(id, _)| wanted.contains(&id.0)).count();
        if count == wanted.len() {
            eprintln!("{count} mitras available after {:.1} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < AVAILABLE_WITHIN,
            "only {count} of {} mitras available after {} s",
            wanted.len(),
            AVAILABLE_WITHIN.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(cli: &Cli, store: &Store, options: &Options) -> anyhow::Result<()> {
    let loopback = |addr: &SocketAddr| addr.ip().is_loopback();
    anyhow::ensure!(
        loopback(&options.api) && loopback(&cli.hub) && cli.sources.iter().all(|ip| ip.is_loopback()),
        "the pairing bench only targets 127.0.0.0/8"
    );
    anyhow::ensure!(options.mitras >= 2, "--mitras must be at least 2 (one accepts, the others watch)");
    let cap = domain::app_config::get(store, domain::app_config::MAX_CUSTOMERS_PER_MITRA)
        .await
        .context("capacity cap")?;
    let accepts_each = options.rounds.div_ceil(options.mitras);
    anyhow::ensure!(
        i64::try_from(accepts_each).unwrap_or(i64::MAX) < cap,
        "{} rounds over {} mitras give a mitra {accepts_each} sessions, reaching the cap of {cap}: \
         use more mitras or fewer rounds",
        options.rounds,
        options.mitras
    );
    let api = Api::new(options.api)?;

    let started = Instant::now();
    let mitras = create_mitras(cli, store, options.mitras).await?;
    eprintln!("created {} mitras in {:.1} s", mitras.len(), started.elapsed().as_secs_f64());
    let started = Instant::now();
    go_online(&api, &mitras).await?;
    eprintln!("turned {} mitras online in {:.1} s", mitras.len(), started.elapsed().as_secs_f64());
    let sockets = open_all(cli, mitras.iter().map(|mitra| (mitra.id, mitra.token.clone())).collect()).await;
    anyhow::ensure!(
        sockets.len() == mitras.len(),
        "only {} of {} sockets opened",
        sockets.len(),
        mitras.len()
    );
    let index: HashMap<Uuid, usize> = mitras.iter().enumerate().map(|(n, mitra)| (mitra.id, n)).collect();
    let (sender, mut arrivals) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = sockets
        .into_iter()
        .filter_map(|(id, socket)| {
            Some(spawn_reader(*index.get(&id)?, socket, sender.clone(), closed.clone()))
        })
        .collect();
    drop(sender);
    wait_available(store, &mitras).await?;

    let everyone: HashSet<usize> = (0..mitras.len()).collect();
    let mut blast = Distribution::new(
        format!("blast → `chat_request` ({} mitras × {} rounds)", mitras.len(), options.rounds),
        Some(BLAST_GOAL_MS),
    );
    let mut taken =
        Distribution::new("accept → `chat_request_taken` (every other mitra)", Some(TAKEN_GOAL_MS));
    let mut blast_http = Distribution::new("`POST /api/client/chat-requests` answered", None);
    let mut accept_http = Distribution::new("`POST /api/mitra/chat-requests/{id}/accept` answered", None);
    let mut stray = 0;
    for round in 0..options.rounds {
        let customer = sign_in_customer(&api).await.context("signing a customer in")?;
        let payment = paid(&api, &customer).await.context("paying")?;

        let request =
            api.post("/api/client/chat-requests", Some(&customer), &json!({"payment_session_id": payment}))?;
        let sent = Instant::now();
        let created = api.send(request, 201).await.context("starting the blast")?;
        blast_http.push(sent.elapsed());
        let request_id = uuid_field(&created, "/id")?;
        let offered = collect(&mut arrivals, Kind::ChatRequest, request_id, &everyone, sent).await;
        blast.expected += everyone.len() as u64;
        let blast_missing = everyone.len() - offered.seen.len();

        // The next mitra in turn that was offered the request accepts it.
        let acceptor = (0..mitras.len())
            .map(|k| (round + k) % mitras.len())
            .find(|n| offered.seen.contains(n))
            .context("no mitra received the chat request")?;
        let path = format!("/api/mitra/chat-requests/{request_id}/accept");
        let request = api.post(&path, Some(&mitras[acceptor].token), &json!({}))?;
        let sent = Instant::now();
        api.send(request, 200).await.context("accepting")?;
        accept_http.push(sent.elapsed());
        let others: HashSet<usize> = everyone.iter().copied().filter(|n| *n != acceptor).collect();
        let told = collect(&mut arrivals, Kind::Taken, request_id, &others, sent).await;
        taken.expected += others.len() as u64;
        stray += offered.stray + told.stray;
        eprintln!(
            "round {}: chat_request to {} of {} (p99 {:.1} ms), chat_request_taken to {} of {} (p99 {:.1} ms)",
            round + 1,
            offered.seen.len(),
            everyone.len(),
            p99_ms(&offered.latencies_us),
            told.seen.len(),
            others.len(),
            p99_ms(&told.latencies_us),
        );
        if blast_missing > 0 {
            eprintln!("round {}: {blast_missing} mitras missed the chat request", round + 1);
        }
        blast.latencies_us.extend(offered.latencies_us);
        taken.latencies_us.extend(told.latencies_us);
    }
    for reader in &readers {
        reader.abort();
    }

    let table = [
        "| measured | events | missing | p50 | p90 | p99 | max | goal |".to_owned(),
        "|---|---|---|---|---|---|---|---|".to_owned(),
        blast.row(),
        taken.row(),
        blast_http.row(),
        accept_http.row(),
        String::new(),
        format!(
            "Events: frames received within {} s of the request being sent. Sockets closed during the run: {}; \
             stray frames (late, repeated or for another request): {stray}.",
            WAIT.as_secs(),
            closed.load(Ordering::Relaxed)
        ),
    ]
    .join("\n");
    println!("{table}");
    if let Some(path) = &options.report {
        std::fs::write(path, format!("{table}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn p99_ms(latencies_us: &[u64]) -> f64 {
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, 99.0)
}
