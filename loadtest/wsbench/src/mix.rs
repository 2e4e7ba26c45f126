//! `wsbench mix`: a short, light load through every flow the Grafana dashboards show, for
//! the observability check (`scripts/observability-check`). Not a benchmark: it measures
//! nothing itself; Prometheus scrapes the server meanwhile.
//!
//! `--mitras` mitras are created in the server's Postgres, switched on over HTTP and hold one
//! socket each for the whole run. Their socket readers play the mitra app: the first mitra
//! declines every chat request and the others race to accept each (so one wins and the
//! others get `chat_request_taken`), a little later the higher their number; every customer
//! message is answered over the socket and marked read.
//!
//! `--customers` customers sign in with a one-time code (the server must run with
//! `otp_sender=dev`), register a push device (customer 0's token is refused by the fake
//! FCM as `denied-…`, customer 1's is `dead-…`, the others are delivered) and poll the
//! availability every second. Each then runs rounds until `--seconds` are over; a round
//! connects the socket (with `last_event_id` after the first: a resume), pays for the
//! one-minute tier (the first payment is the free trial) and
//!
//! - every fourth round blasts and cancels at once (`customer_cancelled`, unless a mitra was
//!   faster);
//! - every fourth round, once the customer has had a mitra, asks that mitra again (a
//!   returning chat, with its own payment);
//! - otherwise blasts, waits for `paired`, sends five messages over the socket (typing
//!   before some), waits for the mitra's answers, marks them read and reads the history over
//!   REST;
//! - every other paired round closes the socket and sends one more message over REST, so the
//!   mitra's answer reaches the customer by push, and the next round resumes;
//! - ends the session early (the check enables `early_end_customer_enabled`), so the grace
//!   timer and the completion follow.
//!
//! Customer 0 also leaves one payment unconfirmed (it expires: the check sets a one-minute
//! payment timeout) and customer 1 cancels one. The timers (window ends, session warnings,
//! time-ups, graces, payment expiries), the pushes and the repair sweep run in the server's
//! workers meanwhile. Prints a JSON summary; fails when no customer was paired, no message
//! acknowledged or no poll answered, so a check built on it cannot pass on an idle server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use domain::store::Store;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::pairing::{Api, Mitra, create_mitras, go_online, sign_in_phone, uuid_field, wait_available};
use crate::{Cli, Socket, open_all};

/// How long a customer waits for `paired` (or a failure) after asking.
const PAIRED_WITHIN: Duration = Duration::from_secs(15);
/// How long a round may take at most; no round starts later than this before the end.
const ROUND: Duration = Duration::from_secs(12);
/// How long a frame answering a command (ack, reply) may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Why the customers end their sessions early.
static EARLY_END: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"reason_code": "feeling_better"}));
/// Messages a customer sends per paired round.
const MESSAGES_PER_ROUND: u64 = 5;

pub struct Options {
    pub api: SocketAddr,
    pub seconds: u64,
    pub mitras: usize,
    pub customers: usize,
}

/// What the run did, printed at the end.
#[derive(Default)]
struct Counts {
    rounds: AtomicU64,
    paired: AtomicU64,
    pairing_failed: AtomicU64,
    cancelled: AtomicU64,
    returning: AtomicU64,
    messages_acked: AtomicU64,
    answers_read: AtomicU64,
    away_rounds: AtomicU64,
    resumes: AtomicU64,
    ended_early: AtomicU64,
    polls: AtomicU64,
    accepts_won: AtomicU64,
    accepts_lost: AtomicU64,
    declines: AtomicU64,
    server_errors: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn json(&self) -> Value {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "rounds": get(&self.rounds),
            "paired": get(&self.paired),
            "pairing_failed": get(&self.pairing_failed),
            "cancelled": get(&self.cancelled),
            "returning": get(&self.returning),
            "messages_acked": get(&self.messages_acked),
            "answers_read": get(&self.answers_read),
            "away_rounds": get(&self.away_rounds),
            "resumes": get(&self.resumes),
            "ended_early": get(&self.ended_early),
            "polls": get(&self.polls),
            "accepts_won": get(&self.accepts_won),
            "accepts_lost": get(&self.accepts_lost),
            "declines": get(&self.declines),
            "server_errors": get(&self.server_errors),
        })
    }
}

type Sink = Arc<tokio::sync::Mutex<SplitSink<Socket, Message>>>;

/// Sends one JSON command frame.
async fn command(sink: &Sink, frame: Value) -> anyhow::Result<()> {
    sink.lock().await.send(Message::Text(frame.to_string().into())).await.context("writing a frame")
}

/// Calls the api, counting 5xx answers; returns the status and body.
async fn call(
    api: &Api,
    counts: &Counts,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let (status, body) = api.request(method, path, Some(token), body).await?;
    if status >= 500 {
        Counts::add(&counts.server_errors);
        eprintln!("{path}: {status} {body}");
    }
    Ok((status, body))
}

/// Like [`call`], failing unless the status is `expected`.
async fn expect(
    api: &Api,
    counts: &Counts,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    expected: u16,
) -> anyhow::Result<Value> {
    let (status, answer) = call(api, counts, method, path, token, body).await?;
    anyhow::ensure!(status == expected, "{path}: {status} (expected {expected}): {answer}");
    Ok(answer)
}

/// The mitra app: declines (mitra 0) or accepts every chat request, answers every customer
/// message and marks it read.
fn spawn_mitra(
    index: usize,
    mitras: usize,
    mitra: &Mitra,
    socket: Socket,
    api: Arc<Api>,
    counts: Arc<Counts>,
) -> tokio::task::JoinHandle<()> {
    let token = mitra.token.clone();
    tokio::spawn(async move {
        let (sink, mut stream) = socket.split();
        let sink: Sink = Arc::new(tokio::sync::Mutex::new(sink));
        let mut answered = 0u64;
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            let data = &frame["data"];
            match frame["type"].as_str().unwrap_or_default() {
                "chat_request" => {
                    let Some(request) = data["request_id"].as_str().map(str::to_owned) else { continue };
                    let (api, counts, token) = (api.clone(), counts.clone(), token.clone());
                    let decline = index == 0 && mitras > 1;
                    tokio::spawn(async move {
                        // A human takes a moment; the mitras do not all answer at once.
                        tokio::time::sleep(Duration::from_millis(200 + 250 * index as u64)).await;
                        let verb = if decline { "decline" } else { "accept" };
                        let path = format!("/api/mitra/chat-requests/{request}/{verb}");
                        match call(&api, &counts, Method::POST, &path, &token, None).await {
                            Ok((200, _)) if decline => Counts::add(&counts.declines),
                            Ok((200, _)) => Counts::add(&counts.accepts_won),
                            Ok((409, _)) => Counts::add(&counts.accepts_lost),
                            Ok((status, body)) => eprintln!("{verb}: {status} {body}"),
                            Err(error) => eprintln!("{verb}: {error:#}"),
                        }
                    });
                }
                "chat_message" if data["message"]["sender_role"] == "customer" => {
                    let message = &data["message"];
                    answered += 1;
                    let reply = json!({
                        "type": "send_message",
                        "data": {
                            "session_id": message["session_id"],
                            "client_msg_id": format!("mitra-{index}-{answered}"),
                            "body": "Aku dengar kamu. Ceritakan lagi, pelan-pelan saja.",
                        },
                    });
                    let read = json!({
                        "type": "mark_read",
                        "data": {"session_id": message["session_id"], "up_to_seq": message["seq"]},
                    });
                    if command(&sink, reply).await.is_err() || command(&sink, read).await.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    })
}

/// A customer's socket: its write half, the frames it read, and the last event id seen.
struct CustomerSocket {
    sink: Sink,
    frames: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

impl CustomerSocket {
    /// Opens `/ws` (resuming after `last_event_id` when known) and reads it into a channel.
    async fn open(
        hub: SocketAddr,
        token: &str,
        last_event_id: &Arc<Mutex<Option<String>>>,
    ) -> anyhow::Result<Self> {
        let resume = last_event_id.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let url = match &resume {
            Some(id) => format!("ws://{hub}/ws?token={token}&last_event_id={id}"),
            None => format!("ws://{hub}/ws?token={token}"),
        };
        let stream = tokio::net::TcpStream::connect(hub).await.context("connecting to the hub")?;
        stream.set_nodelay(true)?;
        let (socket, _) = tokio_tungstenite::client_async(url, stream).await.context("customer socket")?;
        let (sink, mut stream) = socket.split();
        let (sender, frames) = mpsc::unbounded_channel();
        let last = last_event_id.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(id) = frame["id"].as_str() {
                    *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(id.to_owned());
                }
                if sender.send(frame).is_err() {
                    return;
                }
            }
        });
        Ok(Self { sink: Arc::new(tokio::sync::Mutex::new(sink)), frames, reader })
    }

    /// The next frame `pick` accepts (others are dropped), within `limit`.
    async fn wait<T>(&mut self, limit: Duration, mut pick: impl FnMut(&Value) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.frames.recv()).await.ok()??;
            if let Some(picked) = pick(&frame) {
                return Some(picked);
            }
        }
    }

    async fn close(self) {
        let _ = self.sink.lock().await.send(Message::Close(None)).await;
        self.reader.abort();
    }
}

/// What a customer knows between rounds.
struct CustomerState {
    index: usize,
    token: String,
    last_event_id: Arc<Mutex<Option<String>>>,
    last_mitra: Option<Uuid>,
}

/// How a pairing attempt ended.
enum Pairing {
    Paired {
        session: String,
        mitra: Uuid,
    },
    /// The failure event's type and cause, or that nothing came.
    Failed(String),
}

/// Waits for the customer's `paired`, or a failure event.
async fn paired(socket: &mut CustomerSocket) -> Pairing {
    let outcome = socket
        .wait(PAIRED_WITHIN, |frame| match frame["type"].as_str()? {
            "paired" => {
                let session = frame["data"]["chat_session"]["id"].as_str()?.to_owned();
                let mitra = frame["data"]["mitra"]["id"].as_str()?.parse().ok()?;
                Some(Pairing::Paired { session, mitra })
            }
            kind @ ("pairing_failed" | "returning_chat_rejected" | "returning_chat_timeout") => {
                Some(Pairing::Failed(format!(
                    "{kind} {}",
                    frame["data"]["cause_tag"].as_str().unwrap_or_default()
                )))
            }
            _ => None,
        })
        .await;
    outcome.unwrap_or_else(|| Pairing::Failed(format!("nothing within {} s", PAIRED_WITHIN.as_secs())))
}

/// A confirmed payment (the one-minute tier, or the free trial), optionally for a returning chat.
async fn pay(api: &Api, counts: &Counts, token: &str, mitra: Option<Uuid>) -> anyhow::Result<String> {
    let mut order = json!({"tier_id": "test-1m"});
    if let Some(mitra) = mitra {
        order["targeted_mitra_id"] = json!(mitra);
    }
    let payment =
        expect(api, counts, Method::POST, "/api/client/payment-sessions", token, Some(&order), 201).await?;
    let id = uuid_field(&payment, "/id")?.to_string();
    let confirm = format!("/api/client/payment-sessions/{id}/confirm");
    expect(api, counts, Method::POST, &confirm, token, Some(&json!({})), 200).await?;
    Ok(id)
}

/// One round of one customer.
async fn round(
    hub: SocketAddr,
    api: &Api,
    counts: &Counts,
    state: &mut CustomerState,
    number: u64,
) -> anyhow::Result<()> {
    Counts::add(&counts.rounds);
    let resuming = state.last_event_id.lock().unwrap_or_else(PoisonError::into_inner).is_some();
    let mut socket = CustomerSocket::open(hub, &state.token, &state.last_event_id).await?;
    anyhow::ensure!(
        socket.wait(ANSWER_WITHIN, |f| (f["type"] == "welcome").then_some(())).await.is_some(),
        "no welcome"
    );
    if resuming {
        // Replayed events come first, then `resumed` (or `resync_required`): take them all, so
        // the round only reads live frames.
        let resumed = socket
            .wait(ANSWER_WITHIN, |f| {
                matches!(f["type"].as_str(), Some("resumed" | "resync_required")).then_some(())
            })
            .await;
        if resumed.is_some() {
            Counts::add(&counts.resumes);
        }
    }
    let token = state.token.clone();
    let returning = number % 4 == 2 && state.last_mitra.is_some();
    let payment = pay(api, counts, &token, if returning { state.last_mitra } else { None }).await?;
    let start = if returning {
        Counts::add(&counts.returning);
        let body = json!({"payment_session_id": payment, "mitra_id": state.last_mitra});
        call(api, counts, Method::POST, "/api/client/chat-requests/returning", &token, Some(&body)).await?.0
    } else {
        let body = json!({"payment_session_id": payment});
        call(api, counts, Method::POST, "/api/client/chat-requests", &token, Some(&body)).await?.0
    };
    if start != 201 {
        Counts::add(&counts.pairing_failed);
        eprintln!("customer {}, round {number}: the request was refused ({start})", state.index);
        socket.close().await;
        return Ok(());
    }
    if number % 4 == 3 {
        let body = json!({"payment_session_id": payment});
        let (status, _) =
            call(api, counts, Method::POST, "/api/client/chat-requests/cancel", &token, Some(&body)).await?;
        if status == 200 {
            Counts::add(&counts.cancelled);
            socket.close().await;
            return Ok(());
        }
        // A mitra was faster: the chat goes on.
    }
    let (session, mitra) = match paired(&mut socket).await {
        Pairing::Paired { session, mitra } => (session, mitra),
        Pairing::Failed(why) => {
            Counts::add(&counts.pairing_failed);
            let kind = if returning { "returning chat" } else { "blast" };
            eprintln!("customer {}, round {number}: {kind} not paired: {why}", state.index);
            socket.close().await;
            return Ok(());
        }
    };
    Counts::add(&counts.paired);
    state.last_mitra = Some(mitra);

    // Chat over the socket: typing, a message, its ack and the mitra's answer, marked read.
    for n in 0..MESSAGES_PER_ROUND {
        if n.is_multiple_of(2) {
            command(&socket.sink, json!({"type": "typing", "data": {"session_id": session}})).await?;
        }
        let id = format!("c{}-{number}-{n}", state.index);
        let send = json!({"type": "send_message", "ref": n,
            "data": {"session_id": session, "client_msg_id": id, "body": "Hari ini berat sekali rasanya."}});
        command(&socket.sink, send).await?;
        let acked =
            socket.wait(ANSWER_WITHIN, |f| (f["type"] == "message_ack" && f["ref"] == n).then_some(())).await;
        if acked.is_some() {
            Counts::add(&counts.messages_acked);
        }
        let answer = socket
            .wait(ANSWER_WITHIN, |f| {
                let message = &f["data"]["message"];
                let ours = message["session_id"] == session.as_str() && message["sender_role"] == "mitra";
                (f["type"] == "chat_message" && ours).then(|| message["seq"].clone())
            })
            .await;
        if let Some(seq) = answer {
            Counts::add(&counts.answers_read);
            let read = json!({"type": "mark_read", "data": {"session_id": session, "up_to_seq": seq}});
            command(&socket.sink, read).await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let history = format!("/api/shared/chat-sessions/{session}/messages");
    call(api, counts, Method::GET, &history, &token, None).await?;

    if number.is_multiple_of(2) {
        // Away: the socket closes, one more message goes over REST, and the mitra's answer
        // reaches the customer by push; the next round resumes the events missed meanwhile.
        socket.close().await;
        Counts::add(&counts.away_rounds);
        // Let the server drop the route of the closed socket before the answer is published.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = json!({"client_msg_id": format!("c{}-{number}-away", state.index), "body": "Aku pergi sebentar."});
        call(api, counts, Method::POST, &history, &token, Some(&body)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let end = format!("/api/client/chat-sessions/{session}/end");
        if call(api, counts, Method::POST, &end, &token, Some(&EARLY_END)).await?.0 == 200 {
            Counts::add(&counts.ended_early);
        }
        return Ok(());
    }
    let end = format!("/api/client/chat-sessions/{session}/end");
    if call(api, counts, Method::POST, &end, &token, Some(&EARLY_END)).await?.0 == 200 {
        Counts::add(&counts.ended_early);
    }
    // The closing event reaches the open socket before it closes.
    socket.wait(Duration::from_secs(2), |f| (f["type"] == "session_closing").then_some(())).await;
    socket.close().await;
    Ok(())
}

/// One customer from sign-in to the end of the run.
async fn customer(
    index: usize,
    hub: SocketAddr,
    api: Arc<Api>,
    counts: Arc<Counts>,
    run: String,
    end: Instant,
) -> anyhow::Result<()> {
    let phone = format!("+62814{:08}", Uuid::new_v4().as_u128() % 100_000_000);
    let session = sign_in_phone(&api, &phone).await.context("signing a customer in")?;
    let token = session["access_token"].as_str().context("no access_token")?.to_owned();
    let kind = match index {
        0 => "denied",
        1 => "dead",
        _ => "ok",
    };
    let device = json!({"fcm_token": format!("{kind}-{run}-{index}"), "platform": "android"});
    expect(&api, &counts, Method::PUT, "/api/shared/devices", &token, Some(&device), 200).await?;

    let poller = {
        let (api, counts, token) = (api.clone(), counts.clone(), token.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            while Instant::now() < end {
                every.tick().await;
                let answer =
                    call(&api, &counts, Method::GET, "/api/client/mitra-availability", &token, None).await;
                if matches!(answer, Ok((200, _))) {
                    Counts::add(&counts.polls);
                }
            }
        })
    };
    // A payment left pending (it expires) and one abandoned.
    if index <= 1 {
        let order = json!({"tier_id": "test-1m"});
        let payment =
            expect(&api, &counts, Method::POST, "/api/client/payment-sessions", &token, Some(&order), 201)
                .await?;
        if index == 1 {
            let cancel = format!("/api/client/payment-sessions/{}/cancel", uuid_field(&payment, "/id")?);
            expect(&api, &counts, Method::POST, &cancel, &token, Some(&json!({})), 200).await?;
        }
    }
    let mut state = CustomerState { index, token, last_event_id: Arc::default(), last_mitra: None };
    let mut number = 0;
    while Instant::now() + ROUND < end {
        if let Err(error) = round(hub, &api, &counts, &mut state, number).await {
            eprintln!("customer {index}, round {number}: {error:#}");
        }
        number += 1;
    }
    poller.await.ok();
    Ok(())
}

pub async fn run(cli: &Cli, store: &Store, options: &Options) -> anyhow::Result<()> {
    let loopback = |addr: &SocketAddr| addr.ip().is_loopback();
    anyhow::ensure!(
        loopback(&options.api) && loopback(&cli.hub) && cli.sources.iter().all(|ip| ip.is_loopback()),
        "the mix only targets 127.0.0.0/8"
    );
    anyhow::ensure!(options.mitras >= 2, "--mitras must be at least 2 (one declines, the others accept)");
    anyhow::ensure!(options.customers >= 2, "--customers must be at least 2");
    let api = Arc::new(Api::new(options.api)?);
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let end = started + Duration::from_secs(options.seconds);

    let mitras = create_mitras(cli, store, options.mitras).await?;
    go_online(&api, &mitras).await?;
    let sockets = open_all(cli, mitras.iter().map(|mitra| (mitra.id, mitra.token.clone())).collect()).await;
    anyhow::ensure!(
        sockets.len() == mitras.len(),
        "only {} of {} mitra sockets opened",
        sockets.len(),
        mitras.len()
    );
    let readers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(index, (_, socket))| {
            spawn_mitra(index, mitras.len(), &mitras[index], socket, api.clone(), counts.clone())
        })
        .collect();
    wait_available(store, &mitras).await?;

    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let customers: Vec<_> = (0..options.customers)
        .map(|index| {
            let (api, counts, run) = (api.clone(), counts.clone(), run.clone());
            tokio::spawn(customer(index, cli.hub, api, counts, run, end))
        })
        .collect();
    for (index, joined) in futures::future::join_all(customers).await.into_iter().enumerate() {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("customer {index}: {error:#}"),
            Err(error) => eprintln!("customer {index}: {error}"),
        }
    }
    for reader in readers {
        reader.abort();
    }
    let summary = counts.json();
    println!(
        "{}",
        json!({"seconds": started.elapsed().as_secs(), "mitras": mitras.len(), "customers": options.customers, "counts": summary})
    );
    let count = |name: &str| summary[name].as_u64().unwrap_or(0);
    anyhow::ensure!(count("paired") > 0, "no customer was paired");
    anyhow::ensure!(count("messages_acked") > 0, "no message was acknowledged");
    anyhow::ensure!(count("polls") > 0, "no availability poll was answered");
    Ok(())
}
