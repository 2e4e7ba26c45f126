//! What the run reports: latency distributions, the p99 by second, the client's own stalls
//! and the timings file.

use super::*;

/// Late wake-ups of a 1 ms sleep, on the runtime and on a thread of its own, longer than
/// [`STALL`]: the client's own stalls, to tell them from the server's.
pub(super) const STALL: Duration = Duration::from_millis(5);

#[derive(Default)]
pub(super) struct Stalls {
    seen: Mutex<Vec<(&'static str, Instant, Duration)>>,
    stop: std::sync::atomic::AtomicBool,
}

impl Stalls {
    /// Ends the watch: the watchers stop at their next tick.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub(super) fn watch(self: &Arc<Self>) {
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
    pub(super) fn note(&self, timer: &'static str, before: Instant, tick: Duration) {
        let late = before.elapsed().saturating_sub(tick);
        if late > STALL {
            lock(&self.seen).push((timer, before + tick, late));
        }
    }

    /// The report line: how often and how long this client's own timers woke late.
    pub(super) fn line(&self) -> String {
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
pub(super) fn write_timings(
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

pub(super) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A distribution of one phase's messages: `latency` gives a record's latency when it counts.
pub(super) fn distribution(
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
pub(super) fn p99_by_second(records: &[&Record], start: Instant) -> Vec<(u64, f64)> {
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
pub(super) fn seconds_line(by_second: &[(u64, f64)]) -> String {
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

pub(super) fn delivery(record: &Record) -> Option<Duration> {
    Some(record.delivered?.saturating_duration_since(record.sent))
}

pub(super) fn ack(record: &Record) -> Option<Duration> {
    Some(record.acked?.saturating_duration_since(record.sent))
}

/// Error codes of `records` as `code × count, ...` (or `none`).
pub(super) fn error_codes(records: &[&Record]) -> String {
    let mut codes: HashMap<&str, u64> = HashMap::new();
    for record in records {
        if let Some(code) = &record.error {
            *codes.entry(code.as_str()).or_default() += 1;
        }
    }
    counts(codes.into_iter().map(|(code, count)| (code.to_owned(), count)))
}

pub(super) fn counts(items: impl Iterator<Item = (String, u64)>) -> String {
    let mut items: Vec<_> = items.collect();
    if items.is_empty() {
        return "none".to_owned();
    }
    items.sort();
    items.iter().map(|(what, count)| format!("`{what}` × {count}")).collect::<Vec<_>>().join(", ")
}
