//! One socket's task: the welcome, the backlog of a resuming client, then live frames both
//! ways until the client leaves, the token expires, the server asks it to close, the client
//! goes silent, or the process shuts down.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use domain::accounts::CLOSE_ACCOUNT_DEACTIVATED;
use domain::auth::session::{CLOSE_LOGGED_OUT, CLOSE_SIGN_IN_REVOKED};
use domain::auth::{Principal, Role};
use domain::broker::StreamId;
use domain::broker::{Backlog, SocketRef};
use domain::clock::{now_ms, now_s};
use futures::{FutureExt, SinkExt, StreamExt};
use governor::{Quota, RateLimiter};
use serde_json::json;

use crate::commands::{self, Command, CommandState, Lanes};
use crate::protocol;
use crate::registry::{Close, OutboundFrame};
use crate::{
    CLOSE_HEARTBEAT_TIMEOUT, CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED, CLOSE_TOKEN_EXPIRED, Inner,
    MAX_RATE_LIMIT_STRIKES,
};

/// Runs one socket to its end and records how it closed.
pub(crate) async fn run(
    mut socket: WebSocket,
    inner: &Arc<Inner>,
    principal: Principal,
    last_event_id: Option<String>,
) {
    let metrics = &inner.metrics;
    metrics.hub_connections.inc();
    metrics.hub_connections_opened.with_label_values(&[principal.role.as_str()]).inc();
    let opened = tokio::time::Instant::now();
    let (user_id, role) = (principal.id, principal.role.as_str());
    tracing::info!(%user_id, role, resumed = last_event_id.is_some(), "socket opened");
    let code = serve(&mut socket, inner, &principal, last_event_id).await;
    if code.as_ref().is_some_and(|close| close.reason == CLIENT_CLOSED) {
        // The library queued the answer to the client's close (its own frame, echoed) when
        // it read it; a close of ours would be refused now. Flush the echo, so the client
        // records its own code rather than an abnormal end.
        let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, socket.flush()).await;
    } else if let Some(Close { code, reason }) = &code {
        let frame = CloseFrame { code: *code, reason: reason.as_str().into() };
        // A client that stopped reading would hold this send for ever: give it a second.
        let sent = tokio::time::timeout(CLOSE_SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
        // Closing handshake: wait (briefly) for the client's close before dropping the
        // connection, so a client still reading frames queued before the close (and
        // answering pings among them) reaches the close frame instead of a reset.
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, async {
                while let Some(Ok(message)) = socket.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    metrics.hub_connections.dec();
    let (code, reason) =
        code.as_ref().map_or((close_code::ABNORMAL, "connection lost"), |close| (close.code, &close.reason));
    let open_s = opened.elapsed().as_secs();
    tracing::info!(%user_id, role, code, reason, open_s, "socket closed");
    metrics.hub_connections_closed.with_label_values(&[close_label(code)]).inc();
}

/// The `code` label of a closed connection: the codes this server sends and the standard ones
/// a client may, each as itself; any other code `other`. A client chooses the code it closes
/// with, so it must not choose the series.
pub fn close_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1006 => "1006",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        1012 => "1012",
        1013 => "1013",
        CLOSE_TOKEN_EXPIRED => "4001",
        CLOSE_LOGGED_OUT => "4002",
        CLOSE_ACCOUNT_DEACTIVATED => "4003",
        CLOSE_SIGN_IN_REVOKED => "4004",
        CLOSE_HEARTBEAT_TIMEOUT => "4008",
        CLOSE_RATE_LIMITED => "4029",
        _ => "other",
    }
}

/// A mitra's last sign of life, recorded in Redis at most once a second per socket (the
/// extension safeguard reads it: `Store::last_heard_ms`). Customers' are not recorded.
#[derive(Default)]
struct Heard {
    recorded: Option<tokio::time::Instant>,
}

impl Heard {
    fn note(&mut self, inner: &Arc<Inner>, principal: &Principal, now: tokio::time::Instant) {
        if principal.role != Role::Mitra
            || self.recorded.is_some_and(|at| now.duration_since(at) < HEARD_EVERY)
        {
            return;
        }
        self.recorded = Some(now);
        let (store, user, at_ms) = (inner.store.clone(), principal.id, now_ms());
        tokio::spawn(async move {
            if let Err(error) = domain::delivery::record_heard(&store, user, at_ms).await {
                tracing::debug!(%error, "could not record that a mitra was heard from");
            }
        });
    }
}

const HEARD_EVERY: Duration = Duration::from_secs(1);

/// What the client acknowledged without a word: each ping carries a number, and a pong to a
/// ping written after some events proves the app read past them (one connection, in order).
/// The user's delivered watermark then moves (`Store::record_delivered`), and no push goes
/// out for those events (`domain::delivery`).
#[derive(Default)]
struct Acks {
    next_ping: u64,
    /// The newest durable event written to the socket.
    written: StreamId,
    /// Pings sent after new events, with the newest event written before each; a few at most.
    awaiting: std::collections::VecDeque<(u64, StreamId)>,
    acknowledged: StreamId,
}

/// Pings awaiting their pong that are remembered; older ones just acknowledge less.
const AWAITED_PINGS: usize = 4;

impl Acks {
    fn written(&mut self, id: StreamId) {
        self.written = self.written.max(id);
    }

    /// The next ping's payload; remembers it when events were written since the last one.
    fn ping(&mut self) -> [u8; 8] {
        let number = self.next_ping;
        self.next_ping += 1;
        let newest_awaited = self.awaiting.back().map_or(self.acknowledged, |&(_, id)| id);
        if self.written > newest_awaited {
            if self.awaiting.len() == AWAITED_PINGS {
                self.awaiting.pop_front();
            }
            self.awaiting.push_back((number, self.written));
        }
        number.to_be_bytes()
    }

    /// A pong's payload: the newly acknowledged event, if it moves the watermark.
    fn pong(&mut self, payload: &[u8]) -> Option<StreamId> {
        let number = u64::from_be_bytes(payload.try_into().ok()?);
        let mut newest = None;
        while let Some(&(awaited, id)) = self.awaiting.front() {
            if awaited > number {
                break;
            }
            self.awaiting.pop_front();
            if id > self.acknowledged {
                self.acknowledged = id;
                newest = Some(id);
            }
        }
        newest
    }
}

fn record_delivered(inner: &Arc<Inner>, principal: &Principal, delivered: StreamId) {
    let (store, user) = (inner.store.clone(), principal.id);
    let ttl_s = inner.settings.stream_ttl_s;
    tokio::spawn(async move {
        let id = format!("{}-{}", delivered.ms, delivered.seq);
        if let Err(error) = domain::delivery::record_delivered(&store, user, &id, ttl_s).await {
            tracing::debug!(%error, "could not record what a device acknowledged");
        }
    });
}

/// The reason recorded for a close the client started.
const CLIENT_CLOSED: &str = "client closed";

/// How long the closing frame may take to leave.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(1);

fn close(code: u16, reason: &str) -> Option<Close> {
    Some(Close { code, reason: reason.to_owned() })
}

/// The socket's life; returns the close to send (`None` when the connection is already gone).
async fn serve(
    socket: &mut WebSocket,
    inner: &Arc<Inner>,
    principal: &Principal,
    last_event_id: Option<String>,
) -> Option<Close> {
    let settings = &inner.settings;
    let registered = inner.registry.register(principal, settings.send_queue_frames);
    // Fused: a oneshot receiver must not be polled again once it has completed.
    let (mut outbound, mut close_request) = (registered.outbound, registered.close.fuse());
    if !registered.routed.await.unwrap_or(false) {
        return close(close_code::AGAIN, "presence_unavailable");
    }
    let connection_id = format!("{}-{}", inner.instance_id, registered.registration.id);
    let welcome = json!({
        "connection_id": connection_id,
        "user": {"id": principal.id, "role": principal.role},
        "heartbeat_s": settings.ping_interval_s,
        "idle_timeout_s": settings.idle_timeout_s,
    });
    send(socket, inner, "welcome", protocol::frame("welcome", welcome, None)).await.ok()?;

    // Replay what a resuming client missed; live events queue meanwhile. A live event at or
    // below the last replayed id was in the replay (or the client had it): it is skipped.
    // Live events above it are all delivered, even out of id order: two producers may
    // append to the user's stream in one order and reach this instance in the other.
    let mut replayed_up_to = StreamId::default();
    if let Some(last) = last_event_id {
        replayed_up_to = StreamId::parse(&last).unwrap_or_default();
        // Boxed: a task's future is as large as its largest await point, and this one (a
        // Redis script call, ~5.7 KB) runs once, while every idle socket would carry it.
        match Box::pin(domain::broker::backlog(&inner.store, settings, principal.id, &last)).await {
            Ok(Backlog::Events(events)) => {
                let count = events.len();
                inner.metrics.hub_resumes.with_label_values(&["replayed"]).inc();
                inner.metrics.hub_replayed_events.inc_by(count as u64);
                for (id, event) in events {
                    send(socket, inner, "event", protocol::event_frame(&event, Some(&id))).await.ok()?;
                    replayed_up_to = StreamId::parse(&id).unwrap_or(replayed_up_to);
                }
                let resumed = json!({ "count": count });
                send(socket, inner, "resumed", protocol::frame("resumed", resumed, None)).await.ok()?;
            }
            Ok(Backlog::ResyncRequired) => {
                inner.metrics.hub_resumes.with_label_values(&["resync_required"]).inc();
                // Whatever the client held, every live event from now on is new to it.
                replayed_up_to = StreamId::default();
                let data = json!({ "reason": "the events after last_event_id are no longer kept; refetch over REST" });
                send(socket, inner, "resync_required", protocol::frame("resync_required", data, None))
                    .await
                    .ok()?;
            }
            Err(error) => {
                inner.metrics.hub_resumes.with_label_values(&["failed"]).inc();
                tracing::warn!(%error, "backlog read failed");
                return close(close_code::AGAIN, "backlog_unavailable");
            }
        }
    }

    let token_expires =
        tokio::time::sleep(Duration::from_secs(u64::try_from(principal.expires_at_s - now_s()).unwrap_or(0)));
    tokio::pin!(token_expires);
    let mut pings = tokio::time::interval(Duration::from_secs(settings.ping_interval_s.max(1)));
    pings.reset();
    let idle_timeout = Duration::from_secs(settings.idle_timeout_s.max(1));
    let silence = tokio::time::sleep(idle_timeout);
    tokio::pin!(silence);
    let per_second = NonZeroU32::new(settings.commands_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(settings.command_burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst));
    let mut strikes = 0u32;
    let mut state = CommandState::default();
    let mut heard = Heard::default();
    let mut acks = Acks::default();
    acks.written(replayed_up_to);
    heard.note(inner, principal, tokio::time::Instant::now());
    let mut lanes =
        Lanes::new(SocketRef { instance: inner.instance_id.clone(), socket: registered.registration.id });

    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return close(close_code::RESTART, "server restarting"),
            () = &mut token_expires => return close(CLOSE_TOKEN_EXPIRED, "token_expired"),
            Ok(requested) = &mut close_request => return Some(requested),
            Some(queued) = outbound.recv() => {
                let OutboundFrame { id, ref frame, published_ms, kind, resync } = *queued;
                if resync {
                    // Events were lost: every live event from now on is new to the client, and
                    // a restarted Redis's ids need not follow the ones this socket sent.
                    replayed_up_to = StreamId::default();
                } else if id.is_some_and(|id| id <= replayed_up_to) {
                    continue;
                } else {
                    let latency_ms = now_ms().saturating_sub(published_ms);
                    inner.metrics.hub_delivery_seconds.with_label_values(&[kind]).observe(latency_ms as f64 / 1_000.0);
                }
                // A send blocks while the client does not read (suspended, or gone without
                // closing TCP) once the kernel's buffers fill: a close request (slow
                // consumer, kick), shutdown or the client's silence must still end it.
                let frame_kind = if resync { "resync_required" } else { "event" };
                tokio::select! {
                    sent = send(socket, inner, frame_kind, frame.to_string()) => sent.ok()?,
                    Ok(requested) = &mut close_request => return Some(requested),
                    () = inner.shutdown.cancelled() => return close(close_code::RESTART, "server restarting"),
                    () = &mut silence => return close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
                }
                if let Some(id) = id {
                    acks.written(id);
                }
            }
            () = &mut silence => return close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
            _ = pings.tick() => {
                let ping = acks.ping();
                tokio::select! {
                    sent = socket.send(Message::Ping(ping.to_vec().into())) => sent.ok()?,
                    () = &mut silence => return close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
                }
            }
            frame = socket.next(), if lanes.has_room() => {
                let now = tokio::time::Instant::now();
                silence.as_mut().reset(now + idle_timeout);
                heard.note(inner, principal, now);
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let error = protocol::error_frame("binary_not_supported", "send JSON text frames", None);
                        send(socket, inner, "error", error).await.ok()?;
                        continue;
                    }
                    Some(Ok(Message::Pong(payload))) => {
                        if let Some(delivered) = acks.pong(&payload) {
                            record_delivered(inner, principal, delivered);
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        return close(frame.map_or(close_code::NORMAL, |f| f.code), CLIENT_CLOSED);
                    }
                    Some(Err(error)) => {
                        return if is_too_big(error) { close(CLOSE_MESSAGE_TOO_BIG, "frame_too_large") } else { None };
                    }
                    None => return None,
                };
                // A socket's own rate, then (for commands that reach the store) its user's
                // budget, which REST writes and the user's other sockets spend too.
                let command = if limiter.check().is_ok() {
                    match commands::parse(&text, &inner.metrics, &mut state) {
                        Command::Work(work) if inner.services.budget.spend(principal.id).is_err() => Err(work.reference().cloned()),
                        command => Ok(command),
                    }
                } else {
                    Err(None)
                };
                match command {
                    Ok(Command::Answer((kind, frame))) => send(socket, inner, kind, frame).await.ok()?,
                    Ok(Command::Work(work)) => lanes.submit(work, inner, *principal),
                    Err(reference) => {
                        strikes += 1;
                        if strikes > MAX_RATE_LIMIT_STRIKES {
                            return close(CLOSE_RATE_LIMITED, "rate_limited");
                        }
                        let error = protocol::error_frame("rate_limited", "too many commands; slow down", reference.as_ref());
                        send(socket, inner, "error", error).await.ok()?;
                        continue;
                    }
                }
                strikes = 0;
            }
            (kind, frame) = lanes.next_answer(inner, *principal), if !lanes.is_idle() => {
                send(socket, inner, kind, frame).await.ok()?;
            }
        }
    }
}

async fn send(
    socket: &mut WebSocket,
    inner: &Inner,
    kind: &'static str,
    frame: String,
) -> Result<(), axum::Error> {
    inner.metrics.hub_frames_out.with_label_values(&[kind]).inc();
    socket.send(Message::Text(frame.into())).await
}

/// A frame over `hub.max_frame_bytes` (tungstenite's capacity error).
fn is_too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(error.into_inner().downcast_ref::<Error>(), Some(Error::Capacity(_)))
}

#[cfg(test)]
mod acks_tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    #[test]
    fn a_pong_acknowledges_what_was_written_before_its_ping_and_nothing_after() {
        let mut acks = Acks::default();
        let idle = acks.ping();
        assert_eq!(acks.pong(&idle), None, "nothing written, nothing acknowledged");
        acks.written(id(10));
        let first = acks.ping();
        acks.written(id(20));
        assert_eq!(acks.pong(&first), Some(id(10)), "the event written after the ping is not covered");
        let second = acks.ping();
        assert_eq!(acks.pong(&second), Some(id(20)));
        assert_eq!(acks.pong(&second), None, "a repeated pong moves nothing");
    }

    #[test]
    fn a_late_pong_covers_the_pings_before_it_and_junk_is_ignored() {
        let mut acks = Acks::default();
        let mut pings = Vec::new();
        for ms in 1..=6 {
            acks.written(id(ms));
            pings.push(acks.ping());
        }
        assert_eq!(acks.awaiting.len(), AWAITED_PINGS, "only a few are remembered");
        assert_eq!(acks.pong(&pings[5]), Some(id(6)));
        assert_eq!(acks.pong(b"not eight bytes"), None);
        assert_eq!(acks.pong(&[]), None);
    }
}
