//! The senders: a message written on its sender's socket, the fixed-rate schedule and the
//! ceiling's closed loop.

use super::*;

impl Wire {
    /// Sends message `n` of `session` from `from` as a `send_message` command, recording it
    /// just before the frame is written.
    pub(super) async fn send(
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
    pub(super) async fn reopen(&self, cli: &Cli, seen: usize) -> Vec<tokio::task::JoinHandle<()>> {
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
    pub(super) async fn drain(&self, phase: Phase, deadline: Instant) -> usize {
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

/// The fixed-rate phase: message `n` is due `n / rate` s after the start; the first
/// `rate × warmup` are the warm-up. Returns, once the last one was sent, their count and when
/// the warm-up started, the counted part started and the last one was sent.
pub(super) async fn fixed_rate(
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
pub(super) async fn ceiling(
    wire: &Arc<Wire>,
    in_flight: usize,
    seconds: u64,
    first: u64,
) -> (Instant, Instant) {
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
