//! `wsbench chat`: end-to-end chat message latency on real sockets, and the ceiling of
//! stored messages per second.
//!
//! The sessions come from the real flows. `--mitras` mitras are created in the server's
//! Postgres, turned online over HTTP and hold one socket each; `--sessions` customers sign in
//! with a one-time code, open one socket each, pay (create + confirm: the free trial) and
//! blast, [`BLASTS_IN_FLIGHT`] at a time. The mitra side answers every `chat_request` it
//! reads with one accept per request (the first mitra offered it that still has room under
//! the capacity cap; another one if that accept is refused), and the customer's `paired`
//! names the chat session. Then two phases, every message a `send_message` command on the
//! sender's socket (the mitra's one socket carries all of that mitra's sessions):
//!
//! 1. **fixed rate**: `--rate` messages/s spread evenly over all sessions, each session
//!    alternating customer → mitra and mitra → customer, for `--warmup-seconds` (not counted)
//!    and then `--seconds`;
//! 2. **ceiling**: closed loop, `--in-flight` sends outstanding, each slot sending its next
//!    message as soon as the previous one was acknowledged, for `--ceiling-seconds`.
//!
//! Between the two the bench waits until the server has worked through what it still had
//! queued (an overloaded fixed rate leaves a backlog), and opens a new socket for each one
//! the server closed, as an app would, so the ceiling starts on an idle server.
//!
//! Every timestamp is an [`Instant`] of this one process: a message's clock starts just
//! before its frame is written (after the socket's write lock is taken) and the readers stamp
//! a frame as soon as it is read, before parsing it. Measured: send → the sender's socket
//! reads `message_ack` (stored), and send → the other party's socket reads the
//! `chat_message` with that `client_msg_id` (the sender's own sockets get it too: ignored).
//! A message not acknowledged or delivered within [`WAIT`] counts as missing; an `error`
//! frame answering it is counted with its code.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use domain::store::Store;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::pairing::{
    Api, Distribution, Mitra, create_mitras, go_online, paid, sign_in_phone, wait_available,
};
use crate::{Cli, Socket, open_all, percentile};

mod reader;
mod report;
mod send;
mod setup;

use reader::*;
use report::*;
use send::*;
use setup::*;

/// How long a message may take to be acknowledged and delivered before it counts as missing.
const WAIT: Duration = Duration::from_secs(5);
/// How long after the fixed rate's last send the ceiling waits for the server to work through
/// what is still queued (so the ceiling starts on an idle server), and how long it keeps
/// waiting while nothing more arrives.
const SETTLE: Duration = Duration::from_secs(120);
const STALLED: Duration = Duration::from_secs(10);
/// How long a customer's blast may take to end in `paired` before the customer is given up.
const PAIRED_WITHIN: Duration = Duration::from_secs(90);
/// Customers signing in and paying at once.
const SETUP_CONCURRENCY: usize = 32;
/// Blasts (each waiting for its `paired`) and accepts in flight at once.
const BLASTS_IN_FLIGHT: usize = 20;
const ACCEPTS_IN_FLIGHT: usize = 20;
/// Tasks sharing the fixed-rate schedule (message `n` is sent by task `n % SENDERS`).
const SENDERS: u64 = 16;
/// The p99 goal of send → delivered at the fixed rate, in milliseconds.
const DELIVERY_GOAL_MS: f64 = 15.0;

pub struct Options {
    pub sessions: usize,
    pub mitras: usize,
    pub rate: u64,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub ceiling_seconds: u64,
    pub in_flight: usize,
    /// Leave the set-up's writes to the kernel instead of a `CHECKPOINT` before the fixed rate.
    pub skip_checkpoint: bool,
    pub api: SocketAddr,
    pub report: Option<PathBuf>,
    pub timings: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Customer,
    Mitra,
}

impl Side {
    fn role(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Mitra => "mitra",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Fixed,
    Ceiling,
}

/// One message sent, and what came back for it.
struct Record {
    phase: Phase,
    from: Side,
    /// When the fixed-rate schedule wanted it sent.
    due: Option<Instant>,
    sent: Instant,
    acked: Option<Instant>,
    delivered: Option<Instant>,
    /// `chat_message` frames for it read by the other party after the first.
    repeats: u64,
    /// The code of an `error` frame answering it.
    error: Option<String>,
    /// Woken by the ack or the error (the ceiling's slots wait on it).
    wake: Option<oneshot::Sender<()>>,
}

/// Everything the socket readers record, shared with the senders.
#[derive(Default)]
struct Ledger {
    records: Mutex<HashMap<u64, Record>>,
    /// `error` frames that answer no message of ours (no `ref`), by code.
    unmatched_errors: Mutex<HashMap<String, u64>>,
    /// Acks and deliveries naming a message this run did not send.
    unknown: AtomicU64,
    /// Sockets that ended during the run.
    closes: Mutex<Vec<Closed>>,
    /// Other server frames read, by type (session warnings and the like).
    other_frames: Mutex<HashMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    fn acked(&self, number: Option<u64>, at: Instant) {
        let mut records = lock(&self.records);
        match number.and_then(|n| records.get_mut(&n)) {
            Some(record) => {
                record.acked.get_or_insert(at);
                if let Some(wake) = record.wake.take() {
                    let _ = wake.send(());
                }
            }
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn delivered(&self, number: Option<u64>, at: Instant) {
        let mut records = lock(&self.records);
        match number.and_then(|n| records.get_mut(&n)) {
            Some(record) if record.delivered.is_some() => record.repeats += 1,
            Some(record) => record.delivered = Some(at),
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn error(&self, frame: &Value) {
        let code = frame["data"]["code"].as_str().unwrap_or("?").to_owned();
        let mut records = lock(&self.records);
        match frame["ref"].as_u64().and_then(|n| records.get_mut(&n)) {
            Some(record) => {
                record.error.get_or_insert(code);
                if let Some(wake) = record.wake.take() {
                    let _ = wake.send(());
                }
            }
            None => {
                drop(records);
                *lock(&self.unmatched_errors).entry(code).or_default() += 1;
            }
        }
    }

    fn other(&self, kind: &str) {
        *lock(&self.other_frames).entry(kind.to_owned()).or_default() += 1;
    }
}

/// A socket that ended, how and when.
struct Closed {
    side: Side,
    index: usize,
    how: String,
    at: Instant,
}

/// What the readers hand to the pairing step.
enum Control {
    /// A mitra's socket read a `chat_request`.
    Offered { mitra: usize, request: Uuid },
    /// A customer's socket read `paired`.
    Paired { customer: usize, session: Uuid, mitra: Uuid },
    /// A customer's socket read `pairing_failed`.
    Failed { customer: usize, cause: String },
}

type Sink = Arc<tokio::sync::Mutex<SplitSink<Socket, Message>>>;

/// A customer of the run: signed in, paid, connected.
struct Customer {
    token: String,
    payment: Uuid,
}

/// One chat session: its customer and mitra by index.
#[derive(Clone, Copy)]
struct Session {
    id: Uuid,
    customer: usize,
    mitra: usize,
}

/// The sockets' write halves (with the tokens to open them again) and the ledger, shared by
/// the senders.
struct Wire {
    customers: Vec<Sink>,
    mitras: Vec<Sink>,
    customer_tokens: Vec<String>,
    mitra_tokens: Vec<String>,
    sessions: Vec<Session>,
    ledger: Arc<Ledger>,
}

pub async fn run(cli: &Cli, store: &Store, options: &Options) -> anyhow::Result<()> {
    let loopback = |addr: &SocketAddr| addr.ip().is_loopback();
    anyhow::ensure!(
        loopback(&options.api) && loopback(&cli.hub) && cli.sources.iter().all(|ip| ip.is_loopback()),
        "the chat bench only targets 127.0.0.0/8"
    );
    anyhow::ensure!(options.sessions > 0 && options.mitras > 0, "--sessions and --mitras must be positive");
    anyhow::ensure!(options.rate > 0 && options.seconds > 0, "--rate and --seconds must be positive");
    // The cap the accept enforces (a stored value that fails validation counts as the default).
    let cap = domain::app_config::get(store, domain::app_config::MAX_CUSTOMERS_PER_MITRA)
        .await
        .context("capacity cap")?;
    let stored = store.app_config_value("max_customers_per_mitra").await.context("capacity cap")?;
    let cap = usize::try_from(cap).unwrap_or_default();
    anyhow::ensure!(
        cap * options.mitras >= options.sessions,
        "{} sessions need a capacity cap of {} over {} mitras, but the server enforces {cap} \
         (app_config holds {stored:?}): raise max_customers_per_mitra (at most 20) or use more mitras",
        options.sessions,
        options.sessions.div_ceil(options.mitras),
        options.mitras,
    );
    let api = Arc::new(Api::new(options.api)?);
    let ledger = Arc::new(Ledger::default());
    let (control_sender, mut control) = mpsc::unbounded_channel();

    let started = Instant::now();
    let mitras = create_mitras(cli, store, options.mitras).await?;
    go_online(&api, &mitras).await?;
    let tokens = mitras.iter().map(|m| m.token.clone()).collect();
    let (mitra_sinks, mut readers) = connect(cli, Side::Mitra, tokens, &ledger, &control_sender).await?;
    wait_available(store, &mitras).await?;
    eprintln!("{} mitras online and connected in {:.1} s", mitras.len(), started.elapsed().as_secs_f64());

    let started = Instant::now();
    let customers = sign_in_customers(&api, options.sessions).await?;
    let signed_in_s = started.elapsed().as_secs_f64();
    eprintln!("{} customers signed in and paid in {signed_in_s:.1} s", customers.len());
    let tokens = customers.iter().map(|c| c.token.clone()).collect();
    let (customer_sinks, customer_readers) =
        connect(cli, Side::Customer, tokens, &ledger, &control_sender).await?;
    readers.extend(customer_readers);
    drop(control_sender);

    let started = Instant::now();
    let sessions = pair(&api, &customers, &mitras, cap, &mut control).await;
    let paired_s = started.elapsed().as_secs_f64();
    eprintln!("{} of {} sessions paired in {paired_s:.1} s", sessions.len(), customers.len());
    anyhow::ensure!(!sessions.is_empty(), "no session was paired");
    // Later chat_request frames (none expected) are not needed any more.
    tokio::spawn(async move { while control.recv().await.is_some() {} });
    let checkpoint_line = if options.skip_checkpoint {
        "Set-up writes: left to the kernel (`--skip-checkpoint`); its write-back of them lands in the \
         fixed rate."
            .to_owned()
    } else {
        let started = Instant::now();
        checkpoint(store).await?;
        let checkpoint_s = started.elapsed().as_secs_f64();
        eprintln!("checkpoint after the set-up in {checkpoint_s:.1} s");
        format!("Set-up writes: on disk before the fixed rate (`CHECKPOINT`, {checkpoint_s:.1} s).")
    };
    let per_mitra = {
        let mut per_mitra = vec![0usize; mitras.len()];
        sessions.iter().for_each(|s| per_mitra[s.mitra] += 1);
        (per_mitra.iter().min().copied().unwrap_or(0), per_mitra.iter().max().copied().unwrap_or(0))
    };

    let wire = Arc::new(Wire {
        customers: customer_sinks,
        mitras: mitra_sinks,
        customer_tokens: customers.iter().map(|c| c.token.clone()).collect(),
        mitra_tokens: mitras.iter().map(|m| m.token.clone()).collect(),
        sessions,
        ledger: ledger.clone(),
    });
    eprintln!(
        "fixed rate: {} messages/s for {} s warm-up + {} s",
        options.rate, options.warmup_seconds, options.seconds
    );
    let closed_before = lock(&ledger.closes).len();
    let stalls = Arc::new(Stalls::default());
    stalls.watch();
    let (sent, rate_start, fixed_start, fixed_end) =
        fixed_rate(&wire, options.rate, options.warmup_seconds, options.seconds).await;
    let fixed_pending = wire.drain(Phase::Fixed, fixed_end + SETTLE).await;
    stalls.stop();
    let settled_s = fixed_end.elapsed().as_secs_f64();
    if fixed_pending > 0 {
        eprintln!(
            "{fixed_pending} fixed-rate messages still not acknowledged or delivered after {settled_s:.0} s"
        );
    }
    // Sockets the server closed meanwhile are opened again, as the apps would.
    let new_readers = wire.reopen(cli, closed_before).await;
    if !new_readers.is_empty() {
        eprintln!("opened {} sockets again before the ceiling", new_readers.len());
    }
    let reopened = new_readers.len();
    readers.extend(new_readers);
    eprintln!("ceiling: {} in flight for {} s", options.in_flight, options.ceiling_seconds);
    let (ceiling_start, ceiling_end) = ceiling(&wire, options.in_flight, options.ceiling_seconds, sent).await;
    wire.drain(Phase::Ceiling, Instant::now() + WAIT).await;
    for reader in &readers {
        reader.abort();
    }

    let records = lock(&ledger.records);
    let of = |phase: Phase| records.values().filter(|r| r.phase == phase).collect::<Vec<_>>();
    let (fixed, ceiling) = (of(Phase::Fixed), of(Phase::Ceiling));
    let from = |side: Side| fixed.iter().copied().filter(|r| r.from == side).collect::<Vec<_>>();
    let fixed_label =
        format!("{} messages/s × {} s, {} sessions", options.rate, options.seconds, wire.sessions.len());
    let ceiling_label = format!("ceiling: {} in flight × {} s", options.in_flight, options.ceiling_seconds);
    let rows = [
        distribution(
            &fixed,
            format!("{fixed_label}: send → other party's `chat_message`"),
            Some(DELIVERY_GOAL_MS),
            delivery,
        ),
        distribution(&from(Side::Customer), "… customer → mitra".to_owned(), None, delivery),
        distribution(&from(Side::Mitra), "… mitra → customer".to_owned(), None, delivery),
        distribution(&fixed, format!("{fixed_label}: send → `message_ack`"), None, ack),
        distribution(&ceiling, format!("{ceiling_label}: send → `message_ack`"), None, ack),
        distribution(
            &ceiling,
            format!("{ceiling_label}: send → other party's `chat_message`"),
            None,
            delivery,
        ),
    ];
    let fixed_seconds = fixed_end.saturating_duration_since(fixed_start).as_secs_f64();
    let mut lag: Vec<u64> =
        fixed.iter().filter_map(|r| Some(micros(r.sent.saturating_duration_since(r.due?)))).collect();
    lag.sort_unstable();
    let ceiling_seconds = ceiling_end.saturating_duration_since(ceiling_start).as_secs_f64();
    let stored = ceiling.iter().filter(|r| r.acked.is_some_and(|at| at <= ceiling_end)).count();
    let repeats: u64 = records.values().map(|r| r.repeats).sum();
    let late = |latency: fn(&Record) -> Option<Duration>| {
        fixed.iter().filter(|r| latency(r).is_some_and(|l| l > WAIT)).count()
    };
    let (late_acks, late_deliveries) = (late(ack), late(delivery));
    let never = |latency: fn(&Record) -> Option<Duration>| {
        fixed.iter().filter(|r| r.error.is_none() && latency(r).is_none()).count()
    };
    let (never_acks, never_deliveries) = (never(ack), never(delivery));
    let closes = lock(&ledger.closes);
    let closes_by_how = counts(
        closes
            .iter()
            .fold(HashMap::<String, u64>::new(), |mut by, c| {
                *by.entry(format!("{} {}", c.side.role(), c.how)).or_default() += 1;
                by
            })
            .into_iter(),
    );
    // When, in seconds from the start of the fixed rate's warm-up (negative: before it).
    let since_rate = |at: Instant| match at.checked_duration_since(rate_start) {
        Some(after) => after.as_secs_f64(),
        None => -rate_start.duration_since(at).as_secs_f64(),
    };
    let first_close = closes.iter().map(|c| since_rate(c.at)).fold(f64::INFINITY, f64::min);
    let last_close = closes.iter().map(|c| since_rate(c.at)).fold(f64::NEG_INFINITY, f64::max);
    let closes_line = if closes.is_empty() {
        "Sockets closed during the run: none.".to_owned()
    } else {
        format!(
            "Sockets closed during the run: {} ({closes_by_how}), from {first_close:+.1} s to {last_close:+.1} s \
             after the fixed rate's warm-up began; {reopened} opened again before the ceiling.",
            closes.len()
        )
    };
    let mut lines = vec![
        "| measured | events | missing | p50 | p90 | p99 | max | goal |".to_owned(),
        "|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    lines.extend(rows.iter().map(Distribution::row));
    lines.extend([
        String::new(),
        seconds_line(&p99_by_second(&fixed, fixed_start)),
        String::new(),
        format!(
            "**Ceiling: {:.0} stored messages/s** ({stored} acknowledged within the {:.0} s window, {} in flight).",
            stored as f64 / ceiling_seconds,
            ceiling_seconds,
            options.in_flight
        ),
        String::new(),
        format!(
            "Sessions: {} paired of {} customers over {} mitras (capacity cap {cap}; {}–{} sessions per mitra), \
             customers signed in and paid in {signed_in_s:.0} s, blasts and accepts in {paired_s:.0} s.",
            wire.sessions.len(),
            customers.len(),
            mitras.len(),
            per_mitra.0,
            per_mitra.1
        ),
        checkpoint_line,
        stalls.line(),
        format!(
            "Fixed rate: {} messages sent in {fixed_seconds:.1} s ({:.0}/s; the {} s warm-up before it not counted), \
             each session one message per side every {:.1} s; sends left p50 {:.1} ms / p99 {:.1} ms / max {:.1} ms \
             after their scheduled time (client-side lag, not in the latencies).",
            fixed.len(),
            fixed.len() as f64 / fixed_seconds,
            options.warmup_seconds,
            2.0 * wire.sessions.len() as f64 / options.rate as f64,
            percentile(&lag, 50.0),
            percentile(&lag, 99.0),
            percentile(&lag, 100.0)
        ),
        format!(
            "Fixed rate, arrived after {} s: {late_acks} acks, {late_deliveries} deliveries; never: {never_acks} \
             acks, {never_deliveries} deliveries. The ceiling started {settled_s:.1} s after the fixed rate's last \
             send, {fixed_pending} messages then still pending (it waits for the server to work through its \
             queue: up to {} s, or until nothing arrived for {} s).",
            WAIT.as_secs(),
            SETTLE.as_secs(),
            STALLED.as_secs()
        ),
        format!(
            "Missing: not acknowledged (ack rows) or not delivered (delivery rows) within {} s. Sends answered \
             by an `error` frame or not written: fixed {}; ceiling {}. Error frames without `ref`: {}. Acks and \
             deliveries of unknown messages: {}; repeated deliveries: {repeats}.",
            WAIT.as_secs(),
            error_codes(&fixed),
            error_codes(&ceiling),
            counts(lock(&ledger.unmatched_errors).clone().into_iter()),
            ledger.unknown.load(Ordering::Relaxed),
        ),
        closes_line,
        format!("Other frames read: {}.", counts(lock(&ledger.other_frames).clone().into_iter())),
    ]);
    if let Some(path) = &options.timings {
        write_timings(path, &fixed, &stalls, fixed_start)?;
    }
    let table = lines.join("\n");
    println!("{table}");
    if let Some(path) = &options.report {
        std::fs::write(path, format!("{table}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
