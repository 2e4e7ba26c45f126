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

/// A message's number, from the `client_msg_id` this bench gave it (`m<n>`).
fn number_of(client_msg_id: &Value) -> Option<u64> {
    client_msg_id.as_str()?.strip_prefix('m')?.parse().ok()
}

/// Reads one socket until it ends: acks, errors and the other party's messages go to the
/// ledger, pairing events to `control`.
fn spawn_reader(
    side: Side,
    index: usize,
    mut stream: SplitStream<Socket>,
    ledger: Arc<Ledger>,
    control: mpsc::UnboundedSender<Control>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let how = loop {
            let message = match stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => break format!("read error: {error}"),
                None => break "ended without a close frame".to_owned(),
            };
            let at = Instant::now();
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    break frame.map_or("closed".to_owned(), |f| format!("closed {} {}", f.code, f.reason));
                }
                _ => continue,
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            let data = &frame["data"];
            match (frame["type"].as_str().unwrap_or_default(), side) {
                ("message_ack", _) => ledger.acked(frame["ref"].as_u64(), at),
                ("error", _) => ledger.error(&frame),
                ("chat_message", _) => {
                    let message = &data["message"];
                    // The sender's own sockets get its messages too.
                    if message["sender_role"].as_str() != Some(side.role()) {
                        ledger.delivered(number_of(&message["client_msg_id"]), at);
                    }
                }
                ("chat_request", Side::Mitra) => {
                    if let Some(request) = data["request_id"].as_str().and_then(|id| id.parse().ok()) {
                        let _ = control.send(Control::Offered { mitra: index, request });
                    }
                }
                ("paired", Side::Customer) => {
                    let session = data["chat_session"]["id"].as_str().and_then(|id| id.parse().ok());
                    let mitra = data["mitra"]["id"].as_str().and_then(|id| id.parse().ok());
                    if let (Some(session), Some(mitra)) = (session, mitra) {
                        let _ = control.send(Control::Paired { customer: index, session, mitra });
                    }
                }
                ("pairing_failed", Side::Customer) => {
                    let cause = data["cause_tag"].as_str().unwrap_or("?").to_owned();
                    let _ = control.send(Control::Failed { customer: index, cause });
                }
                (kind, _) => ledger.other(kind),
            }
        };
        lock(&ledger.closes).push(Closed { side, index, how, at: Instant::now() });
    })
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

impl Wire {
    /// Sends message `n` of `session` from `from` as a `send_message` command, recording it
    /// just before the frame is written.
    async fn send(
        &self,
        n: u64,
        session: Session,
        from: Side,
        phase: Phase,
        due: Option<Instant>,
        wake: Option<oneshot::Sender<()>>,
    ) {
        let sink = match from {
            Side::Customer => &self.customers[session.customer],
            Side::Mitra => &self.mitras[session.mitra],
        };
        let body = format!("Pesan bench nomor {n} dari {}: apa kabar hari ini?", from.role());
        let frame = json!({
            "type": "send_message",
            "ref": n,
            "data": {"session_id": session.id, "client_msg_id": format!("m{n}"), "body": body},
        })
        .to_string();
        let mut sink = sink.lock().await;
        let sent = Instant::now();
        let record =
            Record { phase, from, due, sent, acked: None, delivered: None, repeats: 0, error: None, wake };
        lock(&self.ledger.records).insert(n, record);
        if let Err(error) = sink.send(Message::Text(frame.into())).await {
            let mut records = lock(&self.ledger.records);
            if let Some(record) = records.get_mut(&n) {
                record.error = Some(format!("not written: {error}"));
                if let Some(wake) = record.wake.take() {
                    let _ = wake.send(());
                }
            }
        }
    }

    /// Opens a new socket (as an app would) for each socket that ended after the first `seen`
    /// closes; returns the new readers.
    async fn reopen(&self, cli: &Cli, seen: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let closed: Vec<(Side, usize)> = {
            let closes = lock(&self.ledger.closes);
            let mut closed: Vec<_> = closes.iter().skip(seen).map(|c| (c.side, c.index)).collect();
            closed.sort_by_key(|(side, index)| (*side == Side::Mitra, *index));
            closed.dedup();
            closed
        };
        // Nothing reads pairing events any more.
        let (control, _) = mpsc::unbounded_channel();
        let mut readers = Vec::new();
        for side in [Side::Customer, Side::Mitra] {
            let (sinks, tokens) = match side {
                Side::Customer => (&self.customers, &self.customer_tokens),
                Side::Mitra => (&self.mitras, &self.mitra_tokens),
            };
            let users: Vec<_> = closed
                .iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, index)| (Uuid::from_u128(*index as u128), tokens[*index].clone()))
                .collect();
            if users.is_empty() {
                continue;
            }
            for (index, socket) in open_all(cli, users).await {
                let index = usize::try_from(index.as_u128()).unwrap_or(usize::MAX);
                let Some(old) = sinks.get(index) else { continue };
                let (sink, stream) = socket.split();
                *old.lock().await = sink;
                readers.push(spawn_reader(side, index, stream, self.ledger.clone(), control.clone()));
            }
        }
        readers
    }

    /// Waits until every message of `phase` was acknowledged and delivered (or refused), until
    /// `deadline`, or until nothing more arrived for [`STALLED`]. Returns how many are still
    /// pending.
    async fn drain(&self, phase: Phase, deadline: Instant) -> usize {
        let (mut last_pending, mut progress) = (usize::MAX, Instant::now());
        loop {
            let pending = lock(&self.ledger.records)
                .values()
                .filter(|r| r.phase == phase && r.error.is_none())
                .filter(|r| r.acked.is_none() || r.delivered.is_none())
                .count();
            if pending < last_pending {
                (last_pending, progress) = (pending, Instant::now());
            }
            if pending == 0 || Instant::now() >= deadline || progress.elapsed() >= STALLED {
                return pending;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes everything the set-up left in Postgres' buffers and the kernel's page cache to disk.
///
/// The pairing set-up writes ~85 MB (1,000 blasts, each offered to every available mitra: over
/// 200,000 `chat_request_notifications` rows and their indexes). Left alone, the kernel writes
/// those pages back in one burst about 30 s later, in the middle of the fixed rate, and a WAL
/// `fdatasync` queued behind that burst takes 50–130 ms (measured with `--timings` and the
/// kernel's writeback trace): every message committed then waits for it. The set-up, 45
/// pairings a second each fanned out to hundreds of mitras, is no part of the chat load being
/// measured, so its writes go to disk first; the messages' own write-back stays in the run.
async fn checkpoint(store: &Store) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(store.pg_pool()).await.context("CHECKPOINT after the set-up")?;
    Ok(())
}

/// Signs `count` customers in (phones `+62813<base + n>`) and pays for each.
async fn sign_in_customers(api: &Api, count: usize) -> anyhow::Result<Vec<Customer>> {
    let base = Uuid::new_v4().as_u128() % (100_000_000 - count as u128);
    let customers: Vec<anyhow::Result<Customer>> = futures::stream::iter(0..count)
        .map(|n| async move {
            let phone = format!("+62813{:08}", base + n as u128);
            let session = sign_in_phone(api, &phone).await.context("signing a customer in")?;
            let token = session["access_token"].as_str().context("no access_token")?.to_owned();
            let payment = paid(api, &token).await.context("paying")?;
            Ok(Customer { token, payment })
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    customers.into_iter().collect()
}

/// Opens one socket per `(token)`; returns the write halves in order and spawns the readers.
/// Fails unless every socket opened.
async fn connect(
    cli: &Cli,
    side: Side,
    tokens: Vec<String>,
    ledger: &Arc<Ledger>,
    control: &mpsc::UnboundedSender<Control>,
) -> anyhow::Result<(Vec<Sink>, Vec<tokio::task::JoinHandle<()>>)> {
    let count = tokens.len();
    // The "user id" open_all hands back is the socket's index here.
    let users =
        tokens.into_iter().enumerate().map(|(n, token)| (Uuid::from_u128(n as u128), token)).collect();
    let sockets = open_all(cli, users).await;
    anyhow::ensure!(sockets.len() == count, "only {} of {count} {side:?} sockets opened", sockets.len());
    let mut sinks = Vec::with_capacity(count);
    let mut readers = Vec::with_capacity(count);
    for (n, socket) in sockets {
        let n = usize::try_from(n.as_u128()).unwrap_or(usize::MAX);
        let (sink, stream) = socket.split();
        sinks.push(Arc::new(tokio::sync::Mutex::new(sink)));
        readers.push(spawn_reader(side, n, stream, ledger.clone(), control.clone()));
    }
    Ok((sinks, readers))
}

/// One request's offers and the accept under way.
#[derive(Default)]
struct Offer {
    offered: Vec<usize>,
    tried: Vec<usize>,
    trying: bool,
    won: bool,
}

/// What a blast or accept task reports back.
enum Outcome {
    Blast { customer: usize, result: anyhow::Result<()> },
    Accept { request: Uuid, mitra: usize, result: anyhow::Result<()> },
}

/// Blasts for every customer ([`BLASTS_IN_FLIGHT`] at a time) and accepts every request
/// once; returns the sessions the customers were told about in `paired`.
async fn pair(
    api: &Arc<Api>,
    customers: &[Customer],
    mitras: &[Mitra],
    cap: usize,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Vec<Session> {
    let mitra_index: HashMap<Uuid, usize> = mitras.iter().enumerate().map(|(n, m)| (m.id, n)).collect();
    let (report, mut outcomes) = mpsc::unbounded_channel();
    let accepts = Arc::new(Semaphore::new(ACCEPTS_IN_FLIGHT));
    let mut next = 0;
    let mut waiting: HashMap<usize, Instant> = HashMap::new();
    let mut offers: HashMap<Uuid, Offer> = HashMap::new();
    let mut load = vec![0usize; mitras.len()];
    let mut sessions = Vec::with_capacity(customers.len());
    let (mut failed, mut refused_accepts) = (0usize, 0usize);
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    // Starts the accept of `request` by the first mitra offered it that was not tried yet and
    // has room under the cap.
    let try_accept = |request: Uuid, offer: &mut Offer, load: &mut [usize]| {
        if offer.won || offer.trying {
            return;
        }
        let Some(&mitra) = offer.offered.iter().find(|m| !offer.tried.contains(m) && load[**m] < cap) else {
            return;
        };
        offer.trying = true;
        offer.tried.push(mitra);
        load[mitra] += 1;
        let (api, accepts, report) = (api.clone(), accepts.clone(), report.clone());
        let token = mitras[mitra].token.clone();
        tokio::spawn(async move {
            let _permit = accepts.acquire().await;
            let path = format!("/api/mitra/chat-requests/{request}/accept");
            let result = api.call(&path, Some(&token), &json!({}), 200).await.map(drop);
            let _ = report.send(Outcome::Accept { request, mitra, result });
        });
    };

    while next < customers.len() || !waiting.is_empty() {
        while next < customers.len() && waiting.len() < BLASTS_IN_FLIGHT {
            let customer = next;
            next += 1;
            waiting.insert(customer, Instant::now());
            let (api, report) = (api.clone(), report.clone());
            let (token, payment) = (customers[customer].token.clone(), customers[customer].payment);
            tokio::spawn(async move {
                let body = json!({"payment_session_id": payment});
                let result = api.call("/api/client/chat-requests", Some(&token), &body, 201).await.map(drop);
                let _ = report.send(Outcome::Blast { customer, result });
            });
        }
        tokio::select! {
            Some(event) = control.recv() => match event {
                Control::Offered { mitra, request } => {
                    let offer = offers.entry(request).or_default();
                    if !offer.offered.contains(&mitra) {
                        offer.offered.push(mitra);
                    }
                    try_accept(request, offer, &mut load);
                }
                Control::Paired { customer, session, mitra } => {
                    if waiting.remove(&customer).is_some() {
                        match mitra_index.get(&mitra) {
                            Some(&mitra) => sessions.push(Session { id: session, customer, mitra }),
                            None => failed += 1,
                        }
                        if sessions.len() % 100 == 0 {
                            eprintln!("{} sessions paired", sessions.len());
                        }
                    }
                }
                Control::Failed { customer, cause } => {
                    if waiting.remove(&customer).is_some() {
                        failed += 1;
                        eprintln!("customer {customer}: pairing_failed ({cause})");
                    }
                }
            },
            Some(outcome) = outcomes.recv() => match outcome {
                Outcome::Blast { customer, result: Err(error) } => {
                    if waiting.remove(&customer).is_some() {
                        failed += 1;
                        eprintln!("customer {customer}: blast failed: {error:#}");
                    }
                }
                Outcome::Blast { result: Ok(()), .. } => {}
                Outcome::Accept { request, mitra, result } => {
                    let offer = offers.entry(request).or_default();
                    offer.trying = false;
                    match result {
                        Ok(()) => offer.won = true,
                        Err(error) => {
                            load[mitra] -= 1;
                            refused_accepts += 1;
                            if format!("{error:#}").contains("chat_request_taken") {
                                offer.won = true;
                            } else {
                                if refused_accepts <= 5 {
                                    eprintln!("accept of {request} by mitra {mitra} refused: {error:#}");
                                }
                                try_accept(request, offer, &mut load);
                            }
                        }
                    }
                }
            },
            _ = tick.tick() => {
                let late: Vec<usize> =
                    waiting.iter().filter(|(_, at)| at.elapsed() > PAIRED_WITHIN).map(|(c, _)| *c).collect();
                for customer in late {
                    waiting.remove(&customer);
                    failed += 1;
                    eprintln!("customer {customer}: no paired within {} s", PAIRED_WITHIN.as_secs());
                }
            }
        }
    }
    if failed > 0 || refused_accepts > 0 {
        eprintln!("{failed} customers not paired; {refused_accepts} accepts refused");
    }
    sessions
}

/// The fixed-rate phase: message `n` is due `n / rate` s after the start; the first
/// `rate × warmup` are the warm-up. Returns, once the last one was sent, their count and when
/// the warm-up started, the counted part started and the last one was sent.
async fn fixed_rate(
    wire: &Arc<Wire>,
    rate: u64,
    warmup_s: u64,
    seconds: u64,
) -> (u64, Instant, Instant, Instant) {
    let total = rate * (warmup_s + seconds);
    let warmup = rate * warmup_s;
    // Room for every record up front: growing the map mid-run rehashes it under the lock the
    // readers stamp through (measured: a 12–16 ms stall of this client at ~57k records).
    lock(&wire.ledger.records).reserve(usize::try_from(total).unwrap_or(usize::MAX));
    let start = Instant::now() + Duration::from_millis(50);
    let senders: Vec<_> = (0..SENDERS)
        .map(|p| {
            let wire = wire.clone();
            tokio::spawn(async move {
                let count = wire.sessions.len() as u64;
                let mut n = p;
                while n < total {
                    let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let session = wire.sessions[(n % count) as usize];
                    // Each session alternates: its customer on even rounds, its mitra on odd ones.
                    let from = if (n / count).is_multiple_of(2) { Side::Customer } else { Side::Mitra };
                    let phase = if n < warmup { Phase::Warmup } else { Phase::Fixed };
                    wire.send(n, session, from, phase, Some(due), None).await;
                    n += SENDERS;
                }
            })
        })
        .collect();
    futures::future::join_all(senders).await;
    (total, start, start + Duration::from_nanos(warmup * 1_000_000_000 / rate), Instant::now())
}

/// The ceiling phase: `in_flight` slots, each sending its next message once the previous
/// one was acknowledged (or refused, or [`WAIT`] passed), numbered from `first`.
async fn ceiling(wire: &Arc<Wire>, in_flight: usize, seconds: u64, first: u64) -> (Instant, Instant) {
    let counter = Arc::new(AtomicU64::new(first));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let slots: Vec<_> = (0..in_flight)
        .map(|slot| {
            let (wire, counter) = (wire.clone(), counter.clone());
            tokio::spawn(async move {
                let count = wire.sessions.len();
                let mut round = 0usize;
                while Instant::now() < end {
                    // Slots walk the sessions in strides, alternating sides.
                    let session = wire.sessions[(slot + round * in_flight) % count];
                    let from = if (slot + round).is_multiple_of(2) { Side::Customer } else { Side::Mitra };
                    round += 1;
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let (wake, woken) = oneshot::channel();
                    wire.send(n, session, from, Phase::Ceiling, None, Some(wake)).await;
                    let _ = tokio::time::timeout(WAIT, woken).await;
                }
            })
        })
        .collect();
    futures::future::join_all(slots).await;
    (start, end)
}

/// Late wake-ups of a 1 ms sleep, on the runtime and on a thread of its own, longer than
/// [`STALL`]: the client's own stalls, to tell them from the server's.
const STALL: Duration = Duration::from_millis(5);

#[derive(Default)]
struct Stalls {
    seen: Mutex<Vec<(&'static str, Instant, Duration)>>,
    stop: std::sync::atomic::AtomicBool,
}

impl Stalls {
    fn watch(self: &Arc<Self>) {
        let tick = Duration::from_millis(1);
        let stalls = self.clone();
        tokio::spawn(async move {
            while !stalls.stop.load(Ordering::Relaxed) {
                let before = Instant::now();
                tokio::time::sleep(tick).await;
                stalls.note("runtime", before, tick);
            }
        });
        let stalls = self.clone();
        std::thread::spawn(move || {
            while !stalls.stop.load(Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(tick);
                stalls.note("thread", before, tick);
            }
        });
    }

    /// Records `timer`'s sleep of `tick` from `before` when it woke more than [`STALL`] late.
    fn note(&self, timer: &'static str, before: Instant, tick: Duration) {
        let late = before.elapsed().saturating_sub(tick);
        if late > STALL {
            lock(&self.seen).push((timer, before + tick, late));
        }
    }

    /// The report line: how often and how long this client's own timers woke late.
    fn line(&self) -> String {
        let seen = lock(&self.seen);
        let worst = seen.iter().map(|(_, _, late)| late.as_secs_f64() * 1e3).fold(0.0, f64::max);
        format!(
            "Client stalls (a 1 ms sleep of the bench woke more than {} ms late, on its runtime or its own \
             thread) from the warm-up to the last delivery: {}{}.",
            STALL.as_millis(),
            seen.len(),
            if seen.is_empty() { String::new() } else { format!(", the longest {worst:.1} ms") }
        )
    }
}

/// Writes `records` and `stalls` as CSV, times in ms from `start` (negative: before it), and
/// `start` as Unix time on the first line. A `msg` row: the sender's side, when it was sent,
/// its ack and delivery latencies (empty when missing); a `stall` row: which timer (`runtime`
/// or `thread`), when it should have woken, how late it woke.
fn write_timings(
    path: &std::path::Path,
    records: &[&Record],
    stalls: &Stalls,
    start: Instant,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let unix = std::time::SystemTime::now()
        .checked_sub(start.elapsed())
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let at_ms = |at: Instant| match at.checked_duration_since(start) {
        Some(after) => ms(after),
        None => -ms(start.duration_since(at)),
    };
    let latency = |at: Option<Instant>, sent: Instant| {
        at.map_or(String::new(), |at| format!("{:.3}", ms(at.saturating_duration_since(sent))))
    };
    let mut out =
        format!("# start_unix_ms={}\nkind,who,at_ms,ack_or_late_ms,delivered_ms\n", unix.as_millis());
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.sent);
    for record in sorted {
        let _ = writeln!(
            out,
            "msg,{},{:.3},{},{}",
            record.from.role(),
            at_ms(record.sent),
            latency(record.acked, record.sent),
            latency(record.delivered, record.sent)
        );
    }
    for (timer, at, late) in lock(&stalls.seen).iter() {
        let _ = writeln!(out, "stall,{timer},{:.3},{:.3},", at_ms(*at), ms(*late));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A distribution of one phase's messages: `latency` gives a record's latency when it counts.
fn distribution(
    records: &[&Record],
    label: String,
    goal_ms: Option<f64>,
    latency: impl Fn(&Record) -> Option<Duration>,
) -> Distribution {
    let mut distribution = Distribution::new(label, goal_ms);
    distribution.expected = records.len() as u64;
    distribution.latencies_us =
        records.iter().filter_map(|r| latency(r)).filter(|l| *l <= WAIT).map(micros).collect();
    distribution
}

/// The delivery p99 of each whole second of `records` (by send time, from `start`), in ms:
/// a tail from a few slow seconds reads differently from one spread over the run.
fn p99_by_second(records: &[&Record], start: Instant) -> Vec<(u64, f64)> {
    let mut by_second: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for record in records {
        if let Some(latency) = delivery(record).filter(|latency| *latency <= WAIT) {
            let second = record.sent.saturating_duration_since(start).as_secs();
            by_second.entry(second).or_default().push(micros(latency));
        }
    }
    by_second
        .into_iter()
        .map(|(second, mut latencies)| {
            latencies.sort_unstable();
            (second, percentile(&latencies, 99.0))
        })
        .collect()
}

/// `p99_by_second` as one report line: the median second, how many seconds missed the goal,
/// and the worst five.
fn seconds_line(by_second: &[(u64, f64)]) -> String {
    if by_second.is_empty() {
        return "Delivery p99 by second of the fixed rate: no deliveries.".to_owned();
    }
    let mut p99s: Vec<f64> = by_second.iter().map(|(_, p99)| *p99).collect();
    p99s.sort_unstable_by(f64::total_cmp);
    let over = p99s.iter().filter(|p99| **p99 > DELIVERY_GOAL_MS).count();
    let mut worst = by_second.to_vec();
    worst.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let worst: Vec<String> =
        worst.iter().take(5).map(|(second, p99)| format!("s{second} {p99:.1} ms")).collect();
    format!(
        "Delivery p99 by second of the fixed rate (by send time): median second {:.1} ms, {over} of {} seconds \
         over {DELIVERY_GOAL_MS} ms; worst: {}.",
        p99s[p99s.len() / 2],
        p99s.len(),
        worst.join(", ")
    )
}

fn delivery(record: &Record) -> Option<Duration> {
    Some(record.delivered?.saturating_duration_since(record.sent))
}

fn ack(record: &Record) -> Option<Duration> {
    Some(record.acked?.saturating_duration_since(record.sent))
}

/// Error codes of `records` as `code × count, ...` (or `none`).
fn error_codes(records: &[&Record]) -> String {
    let mut codes: HashMap<&str, u64> = HashMap::new();
    for record in records {
        if let Some(code) = &record.error {
            *codes.entry(code.as_str()).or_default() += 1;
        }
    }
    counts(codes.into_iter().map(|(code, count)| (code.to_owned(), count)))
}

fn counts(items: impl Iterator<Item = (String, u64)>) -> String {
    let mut items: Vec<_> = items.collect();
    if items.is_empty() {
        return "none".to_owned();
    }
    items.sort();
    items.iter().map(|(what, count)| format!("`{what}` × {count}")).collect::<Vec<_>>().join(", ")
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
    stalls.stop.store(true, Ordering::Relaxed);
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
