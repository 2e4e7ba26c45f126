//! Logging: `tracing` to stdout, as JSON lines or human-readable text.
//!
//! JSON lines (production's default) carry each event's fields flattened and the fields of
//! the spans it happened in (`spans`): a flow's `session_id` or `payment_session_id`; the
//! request's `request_id` (a debug span: `api=debug`), the socket's `user_id` (a debug span:
//! `hub=debug`). A 5xx answer is logged once by the edge with its `request_id` at any filter.
//! Nothing logs phone numbers,
//! one-time codes, tokens or message bodies (the development code senders excepted, which
//! production refuses); `tests/e2e/logs.rs` checks that on the real binary's output.
//!
//! Span fields are formatted when the span opens, on the hot path when it is a request's: in
//! JSON mode by [`SpanFields`], which writes them as a JSON object straight into the span's
//! buffer. (tracing-subscriber's own `JsonFields` builds a map of `serde_json::Value`s first,
//! and took a tenth of a poll's CPU: docs/BENCHMARKS.md, "The hot path".)

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use domain::settings::{LogFormat, LogSettings, Mode};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// Keeps the log writer's thread running; dropping it writes out the lines still pending.
/// Hold it until the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<std::thread::JoinHandle<()>>, Arc<Batch>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        *lock(&self.1.stopped) = true;
        self.1.stop.notify_all();
        if let Some(writer) = self.0.take() {
            let _ = writer.join();
        }
        self.1.write_out();
    }
}

/// How often the writer thread writes out the lines logged since its last write.
const WRITE_EVERY: Duration = Duration::from_millis(10);

/// Pending bytes at which the thread that logs writes them out itself rather than wait for
/// the writer thread (so the buffer stays bounded and no line is dropped).
const PENDING_LIMIT: usize = 1 << 20;

/// Installs the global subscriber. `RUST_LOG` overrides `log.filter` when set.
///
/// A line is formatted where it is logged and appended to one buffer, which a thread of its
/// own writes to stdout every [`WRITE_EVERY`]: a request costs neither a `write(2)` nor a
/// wake-up of another thread (the access line of every request, written or handed to a
/// woken writer one by one, cost the poll a quarter of its throughput: docs/BENCHMARKS.md,
/// "The hot path"). Nothing is dropped: past [`PENDING_LIMIT`] the logging thread writes
/// the buffer out itself, as a direct write would.
pub fn init(settings: &LogSettings, mode: Mode) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // Colours only for a person at a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let out: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(stdout) => Box::new(std::fs::File::from(stdout)),
        Err(_) => Box::new(std::io::stdout()),
    };
    let (lines, guard) = Batch::start(out);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(lines);
    // A subscriber already installed (a second init in the same process) is fine to keep.
    let _ = match settings.format_in(mode) {
        LogFormat::Json => builder.event_format(JsonLines).fmt_fields(SpanFields).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    guard
}

/// Log lines on their way to stdout.
struct Batch {
    /// Locked before `pending` by whoever writes, so batches reach stdout in order.
    out: Mutex<Box<dyn std::io::Write + Send>>,
    pending: Mutex<Vec<u8>>,
    stopped: Mutex<bool>,
    stop: Condvar,
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batch {
    /// The subscriber's writer into a new batch to `out`, and the guard of its writer thread.
    fn start(out: Box<dyn std::io::Write + Send>) -> (Lines, LogGuard) {
        let batch = Arc::new(Batch {
            out: Mutex::new(out),
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            stopped: Mutex::new(false),
            stop: Condvar::new(),
        });
        let writer = {
            let batch = batch.clone();
            std::thread::Builder::new().name("log-writer".into()).spawn(move || batch.run()).ok()
        };
        (Lines(batch.clone()), LogGuard(writer, batch))
    }

    /// The writer thread: every [`WRITE_EVERY`] until stopped.
    fn run(&self) {
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            stopped = self.stop.wait_timeout(stopped, WRITE_EVERY).unwrap_or_else(PoisonError::into_inner).0;
            drop(stopped);
            self.write_out();
            stopped = lock(&self.stopped);
        }
    }

    /// Writes what is pending to stdout.
    fn write_out(&self) {
        let mut out = lock(&self.out);
        let mut pending = lock(&self.pending);
        if pending.is_empty() {
            return;
        }
        let capacity = pending.capacity();
        let lines = std::mem::replace(&mut *pending, Vec::with_capacity(capacity));
        drop(pending);
        // Nowhere to report a failed write of the log itself.
        let _ = out.write_all(&lines).and_then(|()| out.flush());
    }

    fn append(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        pending.extend_from_slice(line);
        if pending.len() >= PENDING_LIMIT {
            drop(pending);
            self.write_out();
        }
    }
}

/// The subscriber's writer: each formatted line is appended to the batch in one piece.
struct Lines(Arc<Batch>);

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

struct LineWriter<'a>(&'a Batch);

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Formats an event as one JSON line, as tracing-subscriber's JSON format with
/// `flatten_event(true)` and `with_span_list(true)` does: `timestamp`, `level`, the event's
/// fields (`message` among them), `target`, then `span` (the innermost span) and `spans`
/// (root first), each span its fields and `name`. Written straight into the line's buffer:
/// tracing-subscriber's serializer took two thirds of an access line's cost, and with it a
/// tenth of a poll's CPU (docs/BENCHMARKS.md, "The hot path").
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = JsonObject { writer: &mut writer, empty: false, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        let current = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        if let Some(leaf) = current {
            writer.write_str(",\"span\":")?;
            write_span::<S, N>(&mut writer, &leaf)?;
            writer.write_str(",\"spans\":[")?;
            for (at, span) in leaf.scope().from_root().enumerate() {
                if at > 0 {
                    writer.write_char(',')?;
                }
                write_span::<S, N>(&mut writer, &span)?;
            }
            writer.write_char(']')?;
        }
        writer.write_str("}\n")
    }
}

/// A span as a JSON object: its fields as [`SpanFields`] wrote them, then its `name`.
fn write_span<S, N>(writer: &mut Writer<'_>, span: &SpanRef<'_, S>) -> fmt::Result
where
    S: for<'a> LookupSpan<'a>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    let extensions = span.extensions();
    let fields = extensions.get::<FormattedFields<N>>().map_or("", |fields| fields.fields.as_str());
    // `{...}` from SpanFields; `{}` or nothing when the span has no fields.
    let members = fields.strip_prefix('{').and_then(|f| f.strip_suffix('}')).unwrap_or("");
    writer.write_char('{')?;
    writer.write_str(members)?;
    if !members.is_empty() {
        writer.write_char(',')?;
    }
    writer.write_str("\"name\":")?;
    write_json_str(writer, span.metadata().name())?;
    writer.write_char('}')
}

/// Formats a span's fields as one JSON object (`{"listener":"public","request_id":"…"}`),
/// what the JSON event formatter reads back into each line's `spans`. Strings and
/// `Debug`/`Display` values become JSON strings, numbers and booleans stay themselves, and a
/// float that JSON cannot hold becomes `null`, as with tracing-subscriber's `JsonFields`.
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut object = JsonObject { writer: &mut writer, empty: true, result: Ok(()) };
        fields.record(&mut object);
        object.result?;
        writer.write_char('}')
    }

    /// Fields recorded after the span opened join its object.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        if current.fields.pop() != Some('}') {
            return Err(fmt::Error);
        }
        let empty = current.fields == "{";
        let mut writer = current.as_writer();
        let mut object = JsonObject { writer: &mut writer, empty, result: Ok(()) };
        fields.record(&mut object);
        object.result?;
        writer.write_char('}')
    }
}

/// Writes fields as the members of a JSON object.
struct JsonObject<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl JsonObject<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.empty { "" } else { "," };
        self.empty = false;
        self.result = (|| {
            self.writer.write_str(separator)?;
            write_json_str(self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl Visit for JsonObject<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |w| if value.is_finite() { write!(w, "{value}") } else { w.write_str("null") });
    }
}

fn write_json_str(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(writer).write_str(value)?;
    writer.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Every character escaped is ASCII, so the text is cut at byte positions that are
        // character boundaries.
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                byte if byte < b' ' => {
                    self.0.write_str(&text[plain..at])?;
                    write!(self.0, "\\u{:04x}", byte)?;
                    plain = at + 1;
                    continue;
                }
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            self.0.write_str(escape)?;
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

/// The time now as tracing-subscriber's `SystemTime` writes it (`2026-12-04T18:22:01.123456Z`,
/// UTC), with the part up to the second formatted once a second by each thread.
fn write_timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != now.as_secs() {
            *second = now.as_secs();
            prefix.clear();
            write_second(prefix, now.as_secs())?;
        }
        writer.write_str(prefix)?;
        let micros = now.subsec_micros();
        let mut digits = *b".000000Z";
        let mut rest = micros;
        for at in (1..7).rev() {
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        writer.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    })
}

/// `YYYY-MM-DDTHH:MM:SS` of a unix second (UTC), by the civil calendar's days-to-date
/// conversion (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn write_second(out: &mut String, unix_s: u64) -> fmt::Result {
    let days = i64::try_from(unix_s / 86_400).map_err(|_| fmt::Error)?;
    let of_day = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;

    use super::{JsonLines, SpanFields};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// The `spans` of one line logged inside a span with awkward field values, formatted by
    /// `SpanFields`, then by tracing-subscriber's own `JsonFields`: the same JSON.
    #[test]
    fn span_fields_read_back_as_the_json_fields_of_tracing_subscriber() {
        let log = |fast: bool| {
            let buffer = Buffer::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(buffer.clone())
                .json()
                .flatten_event(true)
                .with_span_list(true);
            let emit = || {
                let text = "quote \" backslash \\ newline \n tab \t bell \u{7} é 😀";
                let span = tracing::info_span!(
                    "request",
                    listener = "public",
                    method = %"GET",
                    uri = %text,
                    debug = ?Some(text),
                    count = 3_u64,
                    delta = -4_i64,
                    ok = true,
                    ratio = 0.5_f64,
                    nan = f64::NAN,
                    later = tracing::field::Empty,
                );
                span.record("later", "recorded after the span opened");
                let _entered = span.enter();
                tracing::info!("inside");
            };
            if fast {
                tracing::subscriber::with_default(builder.fmt_fields(SpanFields).finish(), emit);
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
            let bytes = buffer.0.lock().expect("buffer").clone();
            let line: Value = serde_json::from_slice(&bytes).expect("one JSON line");
            line["spans"].clone()
        };
        let fast = log(true);
        assert_eq!(fast, log(false));
        assert_eq!(fast[0]["count"], json!(3));
        assert_eq!(fast[0]["nan"], Value::Null);
        assert_eq!(fast[0]["later"], "recorded after the span opened");
        assert!(fast[0]["uri"].as_str().is_some_and(|uri| uri.contains('😀') && uri.contains('\u{7}')));
    }

    /// Lines logged with no span, inside one span and inside two, by [`JsonLines`] and by
    /// tracing-subscriber's JSON format as we used to configure it: the same JSON objects, but
    /// for the time they were written at.
    #[test]
    fn json_lines_read_back_as_tracing_subscribers_json_format() {
        let log = |ours: bool| {
            let buffer = Buffer::default();
            let builder = tracing_subscriber::fmt().with_writer(buffer.clone()).with_target(true);
            let emit = || {
                let text = "quote \" backslash \\ newline \n é 😀";
                tracing::warn!(target: "access", status = 200_u64, latency_ms = 0.25_f64, route = "poll", "served");
                let outer = tracing::info_span!("request", request_id = "r-1", method = %"GET");
                let _outer = outer.enter();
                tracing::info!(text, ok = true, delta = -3_i64, debug = ?Some(text), "inside {}", 1);
                let inner = tracing::info_span!("empty");
                let _inner = inner.enter();
                tracing::error!(nan = f64::NAN, "innermost");
            };
            if ours {
                let subscriber = builder.event_format(JsonLines).fmt_fields(SpanFields).finish();
                tracing::subscriber::with_default(subscriber, emit);
            } else {
                let subscriber =
                    builder.json().flatten_event(true).with_span_list(true).fmt_fields(SpanFields).finish();
                tracing::subscriber::with_default(subscriber, emit);
            }
            let bytes = buffer.0.lock().expect("buffer").clone();
            let text = String::from_utf8(bytes).expect("utf-8");
            let lines: Vec<Value> = text
                .lines()
                .map(|line| {
                    let mut line: Value = serde_json::from_str(line).expect("a JSON line");
                    let time = line.as_object_mut().and_then(|o| o.remove("timestamp"));
                    assert!(time.and_then(|t| t.as_str().map(|t| t.ends_with('Z'))).unwrap_or(false));
                    line
                })
                .collect();
            lines
        };
        let ours = log(true);
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, log(false));
        assert_eq!(ours[0]["target"], "access");
        assert_eq!(ours[1]["message"], "inside 1");
        assert_eq!(ours[2]["spans"][1], json!({"name": "empty"}));
    }

    /// The second's text against chrono's, over four centuries of days (leap years, the
    /// century rule, 2000) and times of day.
    #[test]
    fn seconds_are_written_as_chrono_writes_them() {
        let mut second: u64 = 0;
        while second < 13_000_000_000 {
            let mut ours = String::new();
            super::write_second(&mut ours, second).expect("format");
            let theirs = chrono::DateTime::from_timestamp(i64::try_from(second).expect("i64"), 0)
                .expect("in range")
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            assert_eq!(ours, theirs, "second {second}");
            second += 86_400 * 7 + 3_661;
        }
    }

    /// A timestamp has tracing-subscriber's shape and agrees with its clock.
    #[test]
    fn timestamps_read_as_tracing_subscribers_system_time() {
        let mut ours = String::new();
        super::write_timestamp(&mut Writer::new(&mut ours)).expect("format");
        let mut theirs = String::new();
        SystemTime.format_time(&mut Writer::new(&mut theirs)).expect("format");
        assert_eq!((ours.len(), &ours[19..20], &ours[26..]), (theirs.len(), ".", "Z"), "{ours} / {theirs}");
        let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        let apart = parse(&theirs) - parse(&ours);
        assert!((0..1_000).contains(&apart.num_milliseconds()), "{ours} then {theirs}");
    }

    /// Lines from two threads, far more than the pending limit: after the guard is dropped
    /// every line is out, whole, and each thread's in the order it wrote them.
    #[test]
    fn the_batch_keeps_every_line_whole_and_in_order() {
        use std::io::Write as _;
        let buffer = Buffer::default();
        let (lines, guard) = super::Batch::start(Box::new(buffer.clone()));
        let per_thread = 30_000;
        std::thread::scope(|scope| {
            for thread in 0..2 {
                let lines = &lines;
                scope.spawn(move || {
                    for n in 0..per_thread {
                        let line = format!("{thread} {n:06} {}\n", "x".repeat(60));
                        lines.make_writer().write_all(line.as_bytes()).expect("append");
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let mut next = [0; 2];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let thread: usize = parts.next().and_then(|t| t.parse().ok()).expect("thread");
            let n: usize = parts.next().and_then(|n| n.parse().ok()).expect("number");
            assert_eq!((n, parts.next().map(str::len)), (next[thread], Some(60)), "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [per_thread; 2]);
    }
}
