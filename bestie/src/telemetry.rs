//! Logging: `tracing` to stdout, as JSON lines or human-readable text.
//!
//! JSON lines (production's default) carry each event's fields flattened and the fields of
//! the spans it happened in (`spans`): the request span's `request_id`, a flow's
//! `session_id` or `payment_session_id`, the socket's `user_id` (a debug span: `hub=debug`).
//! Nothing logs phone numbers,
//! one-time codes, tokens or message bodies (the development code senders excepted, which
//! production refuses); `tests/e2e/logs.rs` checks that on the real binary's output.

use domain::settings::{LogFormat, LogSettings, Mode};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides `log.filter` when set.
pub fn init(settings: &LogSettings, mode: Mode) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    // A subscriber already installed (a second init in the same process) is fine to keep.
    let _ = match settings.format_in(mode) {
        LogFormat::Json => builder.json().flatten_event(true).with_span_list(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
