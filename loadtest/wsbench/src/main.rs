//! `wsbench`: drives the hub with real sockets.
//!
//! - `idle`: opens N authenticated sockets (spread over several 127.0.0.x source addresses,
//!   since one address pair has ~28k ephemeral ports), waits for every `welcome`, holds
//!   them, and reports how many held.
//! - `latency`: opens one socket per user, then publishes events through Redis Streams at a
//!   fixed rate (as the api and workers do) and measures publish-to-receive latency on the
//!   client (same machine, same clock).
//! - `pairing`: creates mitras, turns them online and connects them, then runs rounds of a
//!   customer's general blast and one mitra's accept over the REST api, and measures when
//!   every mitra's socket receives `chat_request` and `chat_request_taken` (see `pairing`).
//! - `chat`: pairs customers with mitras through the real flows, then sends chat messages
//!   over the sockets at a fixed rate and in a closed loop, and measures send → stored
//!   (`message_ack`) and send → delivered to the other party's socket (see `chat`).
//! - `ceiling`: a bare axum handler, the ceiling `loadtest/hot-path` measures `bestie` against.
//! - `mix`: a short, light load through every flow the Grafana dashboards show (see `mix`);
//!   `fake-fcm` stands in for FCM meanwhile (see `fcm`), and `panels` then evaluates every
//!   dashboard query through Prometheus (see `panels`): the observability check.
//!
//! Tokens are signed with the development JWT key unless `--jwt-secret` says otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use domain::auth::Role;
use domain::auth::tokens::TokenKeys;
use domain::event::{ChatMessageData, Event};
use domain::ids::UserId;
use domain::settings::{AuthSettings, ConnectionUrl, HubSettings, Secret, Settings};
use futures::StreamExt;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod ceiling;
mod chat;
mod fcm;
mod mix;
mod pairing;
mod panels;

#[derive(Parser)]
struct Cli {
    /// The hub's public address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    hub: SocketAddr,
    /// Source addresses to connect from, round-robin (127.0.0.2,127.0.0.3,...).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5")]
    sources: Vec<IpAddr>,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    #[arg(long, default_value = domain::settings::DEV_JWT_SECRET)]
    jwt_secret: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print an access token for a new user of `role` (customer or mitra).
    Token {
        #[arg(long, default_value = "customer")]
        role: String,
    },
    /// Open and hold idle sockets.
    Idle {
        #[arg(long)]
        connections: usize,
        /// How long to hold them once all are open.
        #[arg(long, default_value_t = 20)]
        hold_s: u64,
        /// A file created once every socket is open (for the runner to measure the hub).
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
    },
    /// Publish events at a fixed rate to connected users and measure delivery latency.
    Latency {
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Events per second, spread over the users.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        duration_s: u64,
        /// Redis and key prefix of the hub under test.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long)]
        redis_prefix: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/bestie_bench")]
        database_url: String,
    },
    /// Blast chat requests to connected mitras, accept each, and measure both deliveries.
    Pairing {
        /// Mitras created, turned online and connected.
        #[arg(long, default_value_t = 1_000)]
        mitras: usize,
        /// Blast + accept rounds, each by a new customer.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// The api's public address (the same listener as the hub when one process runs all roles).
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
        /// Where to write the results as a Markdown table (they are printed either way).
        #[arg(long)]
        report: Option<std::path::PathBuf>,
        /// Redis, key prefix and Postgres of the server under test (the mitras are created there).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long)]
        redis_prefix: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/bestie_bench")]
        database_url: String,
    },
    /// Pair customers with mitras, then send chat messages over the sockets and measure
    /// send → stored and send → delivered to the other party.
    Chat {
        /// Chat sessions (one new customer each).
        #[arg(long, default_value_t = 1_000)]
        sessions: usize,
        /// Mitras sharing them (the capacity cap times this must cover `--sessions`).
        #[arg(long, default_value_t = 334)]
        mitras: usize,
        /// Messages per second in the fixed-rate phase, over all sessions.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Length of the fixed-rate phase (after the warm-up).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Fixed-rate warm-up, not counted.
        #[arg(long, default_value_t = 3)]
        warmup_seconds: u64,
        /// Length of the closed-loop ceiling phase.
        #[arg(long, default_value_t = 15)]
        ceiling_seconds: u64,
        /// Sends outstanding at once in the ceiling phase.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        /// The api's public address (the same listener as the hub when one process runs all roles).
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
        /// Where to write the results as a Markdown table (they are printed either way).
        #[arg(long)]
        report: Option<std::path::PathBuf>,
        /// Where to write every fixed-rate message's timings and the client's own stalls (CSV).
        #[arg(long)]
        timings: Option<std::path::PathBuf>,
        /// Do not `CHECKPOINT` between the pairing set-up and the fixed rate: the kernel then
        /// writes the set-up's pages back during the fixed rate, as it did before the step.
        #[arg(long)]
        skip_checkpoint: bool,
        /// Redis, key prefix and Postgres of the server under test (the mitras are created there).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long)]
        redis_prefix: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/bestie_bench")]
        database_url: String,
    },
    /// A short load through every flow the dashboards show (the observability check).
    Mix {
        /// How long the customers keep going.
        #[arg(long, default_value_t = 70)]
        seconds: u64,
        #[arg(long, default_value_t = 4)]
        mitras: usize,
        #[arg(long, default_value_t = 6)]
        customers: usize,
        /// The api's public address (the same listener as the hub when one process runs all roles).
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
        /// Redis, key prefix and Postgres of the server under test (the mitras are created there).
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long)]
        redis_prefix: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/bestie_bench")]
        database_url: String,
    },
    /// A bare axum handler (`GET /healthz`, no middleware): the ceiling `loadtest/hot-path`
    /// measures `bestie` against. Stops by itself.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:18790")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
    /// A stand-in for FCM and its OAuth endpoint on 127.0.0.1 that stops by itself.
    FakeFcm {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Where to write the service-account file the server reads.
        #[arg(long)]
        account_out: std::path::PathBuf,
        /// The RSA private key (PEM) to put in it.
        #[arg(long, default_value = "tests/e2e/fixtures/fcm-test-key.pem")]
        key: std::path::PathBuf,
    },
    /// Evaluate every Grafana dashboard query through Prometheus; fail on errors and empty results.
    Panels {
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        prometheus: String,
        #[arg(long, default_value = "grafana/dashboards")]
        dashboards: std::path::PathBuf,
        /// What `$__rate_interval`, `$__interval` and `$__range` stand for.
        #[arg(long, default_value = "3m")]
        window: String,
        /// Wait for a scrape at or after this unix time first.
        #[arg(long)]
        fresh_after: Option<u64>,
        /// Evaluate as of this unix time (default: now).
        #[arg(long)]
        at: Option<u64>,
        /// Also fail on rules Prometheus could not evaluate.
        #[arg(long)]
        rules: bool,
    },
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens one socket for `user` from `source` and reads its welcome.
async fn open(hub: SocketAddr, source: IpAddr, token: &str) -> anyhow::Result<Socket> {
    let tcp = TcpSocket::new_v4()?;
    tcp.bind(SocketAddr::new(source, 0))?;
    let stream = tcp.connect(hub).await?;
    // No Nagle on the client side: a command leaves when it is written instead of waiting
    // for the previous segment's ACK, so a latency measured from the write is the server's.
    stream.set_nodelay(true)?;
    let url = format!("ws://{hub}/ws?token={token}");
    // Small buffers on the client side too: tens of thousands of sockets share this process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096);
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => Ok(socket),
        other => anyhow::bail!("no welcome: {other:?}"),
    }
}

/// The token keys of the server under test (`--jwt-secret`), issuing day-long tokens.
fn token_keys(cli: &Cli) -> TokenKeys {
    TokenKeys::new(&AuthSettings {
        jwt_secret: Secret::new(cli.jwt_secret.clone()),
        access_token_ttl_s: 24 * 3600,
        ..AuthSettings::default()
    })
}

/// The server's stores, as its `BESTIE__REDIS__*` and `BESTIE__DATABASE__URL` settings say.
async fn connect_store(
    redis_url: &str,
    redis_prefix: &str,
    database_url: &str,
) -> anyhow::Result<domain::store::Store> {
    let mut settings = Settings::default();
    settings.redis.url = ConnectionUrl::new(redis_url);
    settings.redis.prefix = redis_prefix.to_owned();
    settings.redis.pool_size = 8;
    settings.database.url = ConnectionUrl::new(database_url);
    domain::store::Store::connect(&settings.database, &settings.redis).await.context("stores")
}

/// Opens `count` sockets for new users; returns them with their user ids.
async fn open_many(cli: &Cli, count: usize, role: Role) -> Vec<(uuid::Uuid, Socket)> {
    let keys = token_keys(cli);
    let users = (0..count)
        .filter_map(|_| {
            let user = uuid::Uuid::new_v4();
            Some((user, keys.issue(UserId(user), role).ok()?.token))
        })
        .collect();
    open_all(cli, users).await
}

/// Opens one socket per `(user, token)`, spread over `--sources`, `--concurrency` handshakes
/// at a time, each read up to its welcome; returns those that opened, in order.
async fn open_all(cli: &Cli, users: Vec<(uuid::Uuid, String)>) -> Vec<(uuid::Uuid, Socket)> {
    let count = users.len();
    let gate = Arc::new(Semaphore::new(cli.concurrency.max(1)));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = users.into_iter().enumerate().map(|(n, (user, token))| {
        let (gate, failed) = (gate.clone(), failed.clone());
        let source = cli.sources[n % cli.sources.len()];
        let hub = cli.hub;
        tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            match open(hub, source, &token).await {
                Ok(socket) => Some((user, socket)),
                Err(error) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("connect failed: {error:#}");
                    }
                    None
                }
            }
        })
    });
    let sockets: Vec<_> =
        futures::future::join_all(tasks).await.into_iter().filter_map(|t| t.ok().flatten()).collect();
    eprintln!(
        "opened {} of {count} sockets in {:.1} s ({} failed)",
        sockets.len(),
        started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    sockets
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1_000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Token { role } => {
            let role: Role = role.parse().ok().context("role must be customer, mitra or cc")?;
            println!("{}", token_keys(&cli).issue(UserId(uuid::Uuid::new_v4()), role)?.token);
        }
        Command::Idle { connections, hold_s, ready_file } => {
            let mut sockets = open_many(&cli, *connections, Role::Customer).await;
            if let Some(file) = ready_file {
                std::fs::write(file, sockets.len().to_string())?;
            }
            // Hold: read whatever comes (pings are answered by the library).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(*hold_s);
            let closed = Arc::new(AtomicU64::new(0));
            let readers = sockets.drain(..).map(|(_, mut socket)| {
                let closed = closed.clone();
                tokio::spawn(async move {
                    loop {
                        match tokio::time::timeout_at(deadline, socket.next()).await {
                            Err(_) => return,
                            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {
                                closed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Ok(Some(Ok(_))) => {}
                        }
                    }
                })
            });
            let held = readers.len();
            futures::future::join_all(readers.collect::<Vec<_>>()).await;
            println!("{{\"opened\": {held}, \"closed_during_hold\": {}}}", closed.load(Ordering::Relaxed));
        }
        Command::Latency { users, rate, duration_s, redis_url, redis_prefix, database_url } => {
            let store = connect_store(redis_url, redis_prefix, database_url).await?;
            let sockets = open_many(&cli, *users, Role::Customer).await;
            anyhow::ensure!(!sockets.is_empty(), "no socket opened");
            let user_ids: Vec<uuid::Uuid> = sockets.iter().map(|(user, _)| *user).collect();
            let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
            let received = Arc::new(AtomicU64::new(0));
            let readers: Vec<_> = sockets
                .into_iter()
                .map(|(_, mut socket)| {
                    let (latencies, received) = (latencies.clone(), received.clone());
                    tokio::spawn(async move {
                        while let Some(Ok(message)) = socket.next().await {
                            let Message::Text(text) = message else { continue };
                            let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                                continue;
                            };
                            // The message's body is when it was published, in microseconds.
                            let body = frame["data"]["message"]["body"].as_str();
                            if let Some(sent) = body.and_then(|body| body.parse::<u64>().ok()) {
                                let latency = now_us().saturating_sub(sent);
                                latencies.lock().map(|mut l| l.push(latency)).ok();
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();

            // Publishers: each sends its share of the rate on its own tick.
            let publishers = 16u64;
            let per_publisher = (*rate / publishers).max(1);
            let hub_settings = HubSettings::default();
            let published = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let tasks: Vec<_> = (0..publishers)
                .map(|p| {
                    let (store, hub_settings, users, published) =
                        (store.clone(), hub_settings.clone(), user_ids.clone(), published.clone());
                    let duration = Duration::from_secs(*duration_s);
                    tokio::spawn(async move {
                        let mut tick =
                            tokio::time::interval(Duration::from_micros(1_000_000 / per_publisher));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        let mut n = p as usize;
                        while started.elapsed() < duration {
                            tick.tick().await;
                            let user = users[n % users.len()];
                            n += publishers as usize;
                            let event = timed_message(now_us());
                            if domain::broker::publish(&store, &hub_settings, UserId(user), &event)
                                .await
                                .is_ok()
                            {
                                published.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            futures::future::join_all(tasks).await;
            let elapsed = started.elapsed().as_secs_f64();
            // Let the last events land.
            let sent = published.load(Ordering::Relaxed);
            let drain_deadline = Instant::now() + Duration::from_secs(5);
            while received.load(Ordering::Relaxed) < sent && Instant::now() < drain_deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for reader in readers {
                reader.abort();
            }
            let mut sorted = latencies.lock().map(|l| l.clone()).unwrap_or_default();
            sorted.sort_unstable();
            println!(
                "{}",
                serde_json::json!({
                    "users": user_ids.len(),
                    "published": sent,
                    "received": received.load(Ordering::Relaxed),
                    "rate_achieved_per_s": (sent as f64 / elapsed).round(),
                    "latency_ms": {
                        "p50": percentile(&sorted, 50.0),
                        "p90": percentile(&sorted, 90.0),
                        "p99": percentile(&sorted, 99.0),
                        "max": percentile(&sorted, 100.0),
                    }
                })
            );
        }
        Command::Pairing { mitras, rounds, api, report, redis_url, redis_prefix, database_url } => {
            let store = connect_store(redis_url, redis_prefix, database_url).await?;
            let options =
                pairing::Options { mitras: *mitras, rounds: *rounds, api: *api, report: report.clone() };
            pairing::run(&cli, &store, &options).await?;
        }
        Command::Chat {
            sessions,
            mitras,
            rate,
            seconds,
            warmup_seconds,
            ceiling_seconds,
            in_flight,
            api,
            report,
            timings,
            skip_checkpoint,
            redis_url,
            redis_prefix,
            database_url,
        } => {
            let store = connect_store(redis_url, redis_prefix, database_url).await?;
            let options = chat::Options {
                timings: timings.clone(),
                skip_checkpoint: *skip_checkpoint,
                sessions: *sessions,
                mitras: *mitras,
                rate: *rate,
                seconds: *seconds,
                warmup_seconds: *warmup_seconds,
                ceiling_seconds: *ceiling_seconds,
                in_flight: *in_flight,
                api: *api,
                report: report.clone(),
            };
            chat::run(&cli, &store, &options).await?;
        }
        Command::Mix { seconds, mitras, customers, api, redis_url, redis_prefix, database_url } => {
            let store = connect_store(redis_url, redis_prefix, database_url).await?;
            let options =
                mix::Options { api: *api, seconds: *seconds, mitras: *mitras, customers: *customers };
            mix::run(&cli, &store, &options).await?;
        }
        Command::Ceiling { addr, seconds } => ceiling::run(*addr, *seconds).await?,
        Command::FakeFcm { addr, seconds, account_out, key } => {
            let options = fcm::Options {
                addr: *addr,
                seconds: *seconds,
                account_out: account_out.clone(),
                key: key.clone(),
            };
            fcm::run(&options).await?;
        }
        Command::Panels { prometheus, dashboards, window, fresh_after, at, rules } => {
            let options = panels::Options {
                prometheus: prometheus.clone(),
                dashboards: dashboards.clone(),
                window: window.clone(),
                fresh_after: *fresh_after,
                at: *at,
                rules: *rules,
            };
            panels::run(&options).await?;
        }
    }
    Ok(())
}

/// A `chat_message` event whose body is `sent_us`, when it was published.
fn timed_message(sent_us: u64) -> Event {
    let message = domain::chat::MessageView {
        id: uuid::Uuid::new_v4(),
        session_id: uuid::Uuid::nil(),
        seq: 1,
        sender_role: domain::auth::Role::Customer,
        client_msg_id: "bench".into(),
        body: sent_us.to_string(),
        created_at: chrono::Utc::now(),
    };
    Event::ChatMessage(ChatMessageData { message })
}
