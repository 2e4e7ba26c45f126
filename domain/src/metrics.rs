//! Every Prometheus metric the process exports, by name, in one place.
//!
//! Names follow Prometheus conventions: the `bestie_` prefix, base units (`_seconds`),
//! `_total` on counters, and labels with a small fixed set of values (never a user id), none
//! named `job` or `instance` (Prometheus sets those on every series it scrapes).
//! Each process (and each test app) owns its own [`Metrics`] and registry. A [`Metrics`] is
//! one `Arc` to the handles: cloning it (every request, socket and job does) is one atomic
//! increment, not one per metric family.
//!
//! Series whose label values are known up front (push outcomes, pairing causes, ...) are
//! created at zero when the process starts, so a rate or an alert over them has a series to
//! read before the first event happens (an absent series is not a zero to PromQL).
//!
//! Gauges read from the stores (`postgres_pool_*`, `redis_*`, `mitras_*`, `ready`,
//! `dependency_*`) are sampled every few seconds by `crate::sampler`; the mitra counts are
//! global (every process reports the same value), so dashboards take their `max`.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub const BUILD_INFO: &str = "bestie_build_info";
pub const HTTP_REQUESTS_TOTAL: &str = "bestie_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "bestie_http_request_duration_seconds";
pub const HUB_CONNECTIONS: &str = "bestie_hub_connections";
pub const HUB_CONNECTIONS_OPENED_TOTAL: &str = "bestie_hub_connections_opened_total";
pub const HUB_CONNECTIONS_CLOSED_TOTAL: &str = "bestie_hub_connections_closed_total";
pub const HUB_FRAMES_IN_TOTAL: &str = "bestie_hub_frames_in_total";
pub const HUB_FRAMES_OUT_TOTAL: &str = "bestie_hub_frames_out_total";
pub const HUB_DELIVERY_SECONDS: &str = "bestie_hub_delivery_seconds";
pub const HUB_STREAM_LAG_SECONDS: &str = "bestie_hub_stream_lag_seconds";
pub const HUB_RESUMES_TOTAL: &str = "bestie_hub_resumes_total";
pub const HUB_REPLAYED_EVENTS_TOTAL: &str = "bestie_hub_replayed_events_total";
pub const HUB_SLOW_CONSUMER_CLOSES_TOTAL: &str = "bestie_hub_slow_consumer_closes_total";
pub const JOBS_TOTAL: &str = "bestie_jobs_total";
pub const JOB_LATENESS_SECONDS: &str = "bestie_job_lateness_seconds";
pub const JOB_RETRIES_TOTAL: &str = "bestie_job_retries_total";
pub const JOB_QUEUE_DEPTH: &str = "bestie_job_queue_depth";
pub const JOB_QUEUE_OLDEST_SECONDS: &str = "bestie_job_queue_oldest_seconds";
pub const PUSHES_TOTAL: &str = "bestie_pushes_total";
pub const UNACKNOWLEDGED_CHECKS_TOTAL: &str = "bestie_unacknowledged_checks_total";
pub const PAYMENT_SESSIONS_SWEPT_TOTAL: &str = "bestie_payment_sessions_swept_total";
pub const PAIRING_OUTCOMES_TOTAL: &str = "bestie_pairing_outcomes_total";
pub const PAIRING_TIME_TO_ACCEPT_SECONDS: &str = "bestie_pairing_time_to_accept_seconds";
pub const PAYMENT_TRANSITIONS_TOTAL: &str = "bestie_payment_transitions_total";
pub const PAYMENT_PROVIDER_CALLS_TOTAL: &str = "bestie_payment_provider_calls_total";
pub const PAYMENT_PROVIDER_CALL_SECONDS: &str = "bestie_payment_provider_call_seconds";
pub const OTP_DELIVERIES_TOTAL: &str = "bestie_otp_deliveries_total";
pub const OTP_DELIVERY_SECONDS: &str = "bestie_otp_delivery_seconds";
pub const CHAT_MESSAGES_TOTAL: &str = "bestie_chat_messages_total";
pub const CHAT_SEND_DURATION_SECONDS: &str = "bestie_chat_send_duration_seconds";
pub const AVAILABILITY_POLLS_TOTAL: &str = "bestie_availability_polls_total";
pub const MITRAS_ONLINE: &str = "bestie_mitras_online";
pub const MITRAS_AVAILABLE: &str = "bestie_mitras_available";
pub const POSTGRES_POOL_CONNECTIONS: &str = "bestie_postgres_pool_connections";
pub const POSTGRES_POOL_MAX_CONNECTIONS: &str = "bestie_postgres_pool_max_connections";
pub const REDIS_POOL_CONNECTIONS: &str = "bestie_redis_pool_connections";
pub const REDIS_COMMANDS_QUEUED: &str = "bestie_redis_commands_queued";
pub const READY: &str = "bestie_ready";
pub const DEPENDENCY_UP: &str = "bestie_dependency_up";
pub const DEPENDENCY_CHECK_SECONDS: &str = "bestie_dependency_check_seconds";

/// Request latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Delivery buckets, in seconds: finer below 10 ms, where the hub's goals are (15 ms p99 for
/// a chat message, 50–100 ms for a blast).
const DELIVERY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Push outcomes (`pushes_total{outcome}`): `auth_failed` is FCM refusing our credentials
/// (the token exchange or the send), which every push fails on until someone fixes the key.
pub const PUSH_OUTCOMES: [&str; 4] = ["sent", "token_deleted", "failed", "auth_failed"];

/// Payment provider calls (`payment_provider_calls_total{outcome}`): `charged`, `declined`
/// (final), `unavailable` (unreachable, timed out or failed: retried with the same key).
pub const PAYMENT_PROVIDER_OUTCOMES: [&str; 3] = ["charged", "declined", "unavailable"];
/// The payment providers (`provider` label), as `PaymentProvider::name` answers.
pub const PAYMENT_PROVIDERS: [&str; 2] = ["mock", "http"];
/// One-time code deliveries (`otp_deliveries_total{outcome}`).
pub const OTP_OUTCOMES: [&str; 2] = ["sent", "failed"];

/// The metric handles of one process, shared: see [`MetricSet`] for the handles.
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// Every metric family of one process, and the registry that renders them.
pub struct MetricSet {
    registry: Registry,
    /// Requests by `listener` (public|internal), matched `route`, `method` and `status` class.
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    /// Open WebSocket connections on this process.
    pub hub_connections: IntGauge,
    pub hub_connections_opened: IntCounterVec,
    /// Closed connections by WebSocket close `code`.
    pub hub_connections_closed: IntCounterVec,
    /// Client frames by command `type` (known commands, `unknown`, `invalid`).
    pub hub_frames_in: IntCounterVec,
    /// Server frames by `type` (`event`, `welcome`, `pong`, `error`, ...).
    pub hub_frames_out: IntCounterVec,
    /// From publishing an event to writing it to a socket, by event `type`.
    pub hub_delivery_seconds: HistogramVec,
    /// From publishing an event to this hub's inbox reader taking it off the stream: how far
    /// the reader is behind.
    pub hub_stream_lag_seconds: Histogram,
    /// Sockets that came back with `last_event_id`, by `outcome` (replayed|resync_required|failed).
    pub hub_resumes: IntCounterVec,
    /// Events replayed from users' streams to resuming sockets.
    pub hub_replayed_events: IntCounter,
    /// Sockets asked to close (1013) because their send queue was full.
    pub hub_slow_consumer_closes: IntCounter,
    /// Job runs by `kind` (the job's name, or a timer's kind) and `outcome` (ok|error). Not
    /// `job`: Prometheus sets that label on every series it scrapes.
    pub jobs: IntCounterVec,
    /// How long after its due time a timer ran, by timer `kind`.
    pub job_lateness_seconds: HistogramVec,
    /// Job runs that were a retry (attempt > 1), by `kind`.
    pub job_retries: IntCounterVec,
    /// Jobs due and not started yet, by `queue` (fire_timer, charge_payment, ...).
    pub job_queue_depth: IntGaugeVec,
    /// How long the oldest job due and not started has been due, by `queue` (0 when none).
    pub job_queue_oldest_seconds: prometheus::GaugeVec,
    /// Push deliveries (one per device) by `outcome`, see [`PUSH_OUTCOMES`].
    pub pushes: IntCounterVec,
    /// Events routed to an open socket, checked after the delivery grace (`crate::delivery`),
    /// by `outcome`: `acknowledged` (a device read it) or `pushed` (nobody did).
    pub unacknowledged_checks: IntCounterVec,
    /// Payment sessions moved by the sweep, by final `status` (expired|failed_pairing).
    pub payment_sessions_swept: IntCounterVec,
    /// Pairing requests resolved, by `request_type` (general|returning) and `outcome`
    /// (`accepted` or the failure's cause tag).
    pub pairing_outcomes: IntCounterVec,
    /// From a pairing request's creation to its accept, by `request_type`.
    pub pairing_time_to_accept_seconds: HistogramVec,
    /// Payment sessions moving into a state, by `status`.
    pub payment_transitions: IntCounterVec,
    /// Charges asked of the payment provider, by `provider` and `outcome`
    /// ([`PAYMENT_PROVIDER_OUTCOMES`]).
    pub payment_provider_calls: IntCounterVec,
    /// How long the payment provider took to answer a charge, by `provider`.
    pub payment_provider_call_seconds: HistogramVec,
    /// One-time codes handed to the code sender, by `sender` (dev|log|webhook) and `outcome`
    /// ([`OTP_OUTCOMES`]).
    pub otp_deliveries: IntCounterVec,
    /// How long the code sender took, by `sender`.
    pub otp_delivery_seconds: HistogramVec,
    /// Chat messages stored, by the sender's `role`.
    pub chat_messages: IntCounterVec,
    /// A chat send from the command to the message stored and published to both parties:
    /// what the sender waits for its ack (the delivery to the other party follows, in
    /// `hub_delivery_seconds{type="chat_message"}`).
    pub chat_send_duration_seconds: Histogram,
    /// Availability polls answered, `availability_polls_total{answer="available"}` and
    /// `{answer="none"}`, looked up once: the poll is the hottest route (see
    /// [`MetricSet::availability_poll_answered`]).
    availability_poll_answers: [IntCounter; 2],
    /// Mitras online (switch on, a socket open), as Redis counts them.
    pub mitras_online: IntGauge,
    /// Mitras online and below the capacity cap: what the availability poll answers.
    pub mitras_available: IntGauge,
    /// This process's Postgres pool, by `state` (in_use|idle).
    pub postgres_pool_connections: IntGaugeVec,
    pub postgres_pool_max_connections: IntGauge,
    /// This process's Redis command connections, by `state` (connected|disconnected).
    pub redis_pool_connections: IntGaugeVec,
    /// Redis commands waiting to be written to a connection (back-pressure).
    pub redis_commands_queued: IntGauge,
    /// 1 when both stores answered the last check (what `/readyz` answers), else 0.
    pub ready: IntGauge,
    /// 1 when the `dependency` (postgres|redis) answered the last check.
    pub dependency_up: IntGaugeVec,
    /// How long the last check of the `dependency` took.
    pub dependency_check_seconds: prometheus::GaugeVec,
    pub build_info: IntGaugeVec,
}

/// Registers `collector` in `registry` and returns it. Names are constants of this module,
/// so a failure is a bug caught by every test that builds a [`Metrics`].
fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry.register(Box::new(collector.clone())).expect("metric names are unique and valid");
    collector
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, HistogramVec::new(opts, labels).expect("valid metric"))
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let single = |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid metric"));
        let single_counter =
            |name: &str, help: &str| register(&r, IntCounter::new(name, help).expect("valid metric"));
        let single_histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&r, Histogram::with_opts(opts).expect("valid metric"))
        };
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            register(&r, prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let availability_polls =
            counter(&r, AVAILABILITY_POLLS_TOTAL, "Availability polls answered, by answer.", &["answer"]);
        let metrics = MetricSet {
            http_requests: counter(
                &r,
                HTTP_REQUESTS_TOTAL,
                "HTTP requests answered.",
                &["listener", "route", "method", "status"],
            ),
            http_request_duration: histogram(
                &r,
                HTTP_REQUEST_DURATION_SECONDS,
                "HTTP request latency.",
                LATENCY_BUCKETS,
                &["listener", "route", "method"],
            ),
            hub_connections: single(HUB_CONNECTIONS, "Open WebSocket connections."),
            hub_connections_opened: counter(
                &r,
                HUB_CONNECTIONS_OPENED_TOTAL,
                "WebSocket connections opened.",
                &["role"],
            ),
            hub_connections_closed: counter(
                &r,
                HUB_CONNECTIONS_CLOSED_TOTAL,
                "WebSocket connections closed, by close code.",
                &["code"],
            ),
            hub_frames_in: counter(
                &r,
                HUB_FRAMES_IN_TOTAL,
                "WebSocket frames received, by command type.",
                &["type"],
            ),
            hub_frames_out: counter(&r, HUB_FRAMES_OUT_TOTAL, "WebSocket frames sent, by type.", &["type"]),
            hub_delivery_seconds: histogram(
                &r,
                HUB_DELIVERY_SECONDS,
                "Event delivery latency, publish to socket write, by event type.",
                DELIVERY_BUCKETS,
                &["type"],
            ),
            hub_stream_lag_seconds: single_histogram(
                HUB_STREAM_LAG_SECONDS,
                "From publishing an event to this hub's inbox reader taking it off the stream.",
                DELIVERY_BUCKETS,
            ),
            hub_resumes: counter(
                &r,
                HUB_RESUMES_TOTAL,
                "Sockets opened with last_event_id, by outcome.",
                &["outcome"],
            ),
            hub_replayed_events: single_counter(
                HUB_REPLAYED_EVENTS_TOTAL,
                "Events replayed from the users' streams to resuming sockets.",
            ),
            hub_slow_consumer_closes: single_counter(
                HUB_SLOW_CONSUMER_CLOSES_TOTAL,
                "Sockets asked to close because their send queue was full.",
            ),
            jobs: counter(&r, JOBS_TOTAL, "Job runs by kind and outcome.", &["kind", "outcome"]),
            job_lateness_seconds: histogram(
                &r,
                JOB_LATENESS_SECONDS,
                "Timer lateness: run time minus due time, by timer kind.",
                LATENCY_BUCKETS,
                &["kind"],
            ),
            job_retries: counter(&r, JOB_RETRIES_TOTAL, "Job runs that were retries, by kind.", &["kind"]),
            job_queue_depth: gauge(
                &r,
                JOB_QUEUE_DEPTH,
                "Jobs due and not started, by job queue.",
                &["queue"],
            ),
            job_queue_oldest_seconds: float_gauge(
                JOB_QUEUE_OLDEST_SECONDS,
                "How long the oldest job due and not started has been due, by job queue.",
                &["queue"],
            ),
            pushes: counter(&r, PUSHES_TOTAL, "Push deliveries (one per device) by outcome.", &["outcome"]),
            unacknowledged_checks: counter(
                &r,
                UNACKNOWLEDGED_CHECKS_TOTAL,
                "Events on an open socket checked after the delivery grace, by outcome (acknowledged|pushed).",
                &["outcome"],
            ),
            payment_sessions_swept: counter(
                &r,
                PAYMENT_SESSIONS_SWEPT_TOTAL,
                "Payment sessions closed by the expiry sweep.",
                &["status"],
            ),
            pairing_outcomes: counter(
                &r,
                PAIRING_OUTCOMES_TOTAL,
                "Pairing requests resolved, by type and outcome.",
                &["request_type", "outcome"],
            ),
            pairing_time_to_accept_seconds: histogram(
                &r,
                PAIRING_TIME_TO_ACCEPT_SECONDS,
                "From request to accept.",
                &[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0],
                &["request_type"],
            ),
            payment_transitions: counter(
                &r,
                PAYMENT_TRANSITIONS_TOTAL,
                "Payment sessions entering a state.",
                &["status"],
            ),
            payment_provider_calls: counter(
                &r,
                PAYMENT_PROVIDER_CALLS_TOTAL,
                "Charges asked of the payment provider, by provider and outcome.",
                &["provider", "outcome"],
            ),
            payment_provider_call_seconds: histogram(
                &r,
                PAYMENT_PROVIDER_CALL_SECONDS,
                "How long the payment provider took to answer a charge.",
                LATENCY_BUCKETS,
                &["provider"],
            ),
            otp_deliveries: counter(
                &r,
                OTP_DELIVERIES_TOTAL,
                "One-time codes handed to the code sender, by sender and outcome.",
                &["sender", "outcome"],
            ),
            otp_delivery_seconds: histogram(
                &r,
                OTP_DELIVERY_SECONDS,
                "How long the one-time code sender took.",
                LATENCY_BUCKETS,
                &["sender"],
            ),
            chat_messages: counter(
                &r,
                CHAT_MESSAGES_TOTAL,
                "Chat messages stored, by sender role.",
                &["role"],
            ),
            chat_send_duration_seconds: single_histogram(
                CHAT_SEND_DURATION_SECONDS,
                "Chat send: command to message stored and published.",
                DELIVERY_BUCKETS,
            ),
            availability_poll_answers: ["available", "none"]
                .map(|answer| availability_polls.with_label_values(&[answer])),
            mitras_online: single(MITRAS_ONLINE, "Mitras online: switch on and a socket open."),
            mitras_available: single(MITRAS_AVAILABLE, "Mitras online and below the capacity cap."),
            postgres_pool_connections: gauge(
                &r,
                POSTGRES_POOL_CONNECTIONS,
                "Connections of this process's Postgres pool, by state.",
                &["state"],
            ),
            postgres_pool_max_connections: single(
                POSTGRES_POOL_MAX_CONNECTIONS,
                "Size limit of this process's Postgres pool.",
            ),
            redis_pool_connections: gauge(
                &r,
                REDIS_POOL_CONNECTIONS,
                "Command connections of this process's Redis pool, by state.",
                &["state"],
            ),
            redis_commands_queued: single(
                REDIS_COMMANDS_QUEUED,
                "Redis commands sent on the pool's connections and not yet answered.",
            ),
            ready: single(READY, "1 when Postgres and Redis answered the last check, else 0."),
            dependency_up: gauge(
                &r,
                DEPENDENCY_UP,
                "1 when the dependency answered the last check, else 0.",
                &["dependency"],
            ),
            dependency_check_seconds: float_gauge(
                DEPENDENCY_CHECK_SECONDS,
                "How long the last check of the dependency took.",
                &["dependency"],
            ),
            build_info: gauge(&r, BUILD_INFO, "Always 1; the labels say which build runs.", &["version"]),
            registry: r.clone(),
        };
        metrics.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics.create_known_series();
        // The process's CPU, memory, threads and open files against its limit, under their
        // standard names (`process_resident_memory_bytes`, `process_open_fds`, ...), read
        // from /proc at each scrape.
        #[cfg(target_os = "linux")]
        if let Err(error) =
            metrics.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
        {
            tracing::warn!(%error, "process metrics unavailable");
        }
        Self(Arc::new(metrics))
    }
}

impl MetricSet {
    /// Counts one availability poll by its answer.
    pub fn availability_poll_answered(&self, available: bool) {
        self.availability_poll_answers[usize::from(!available)].inc();
    }

    /// Creates at zero the series whose label values are known up front.
    fn create_known_series(&self) {
        for outcome in PUSH_OUTCOMES {
            self.pushes.with_label_values(&[outcome]);
        }
        for outcome in ["acknowledged", "pushed"] {
            self.unacknowledged_checks.with_label_values(&[outcome]);
        }
        // Each request type's outcomes: `accepted`, and the causes it can end with.
        for &request_type in crate::pairing::store::RequestType::ALL {
            self.pairing_outcomes.with_label_values(&[request_type.as_str(), "accepted"]);
            for cause in crate::failures::FailureCause::of_request_type(request_type) {
                self.pairing_outcomes.with_label_values(&[request_type.as_str(), cause.as_str()]);
            }
        }
        for provider in PAYMENT_PROVIDERS {
            self.payment_provider_call_seconds.with_label_values(&[provider]);
            for outcome in PAYMENT_PROVIDER_OUTCOMES {
                self.payment_provider_calls.with_label_values(&[provider, outcome]);
            }
        }
        for sender in ["dev", "log", "webhook"] {
            self.otp_delivery_seconds.with_label_values(&[sender]);
            for outcome in OTP_OUTCOMES {
                self.otp_deliveries.with_label_values(&[sender, outcome]);
            }
        }
        use crate::payment::store::PaymentStatus;
        for status in [PaymentStatus::Expired, PaymentStatus::FailedPairing] {
            self.payment_sessions_swept.with_label_values(&[status.as_str()]);
        }
        for outcome in ["replayed", "resync_required", "failed"] {
            self.hub_resumes.with_label_values(&[outcome]);
        }
        for state in ["in_use", "idle"] {
            self.postgres_pool_connections.with_label_values(&[state]);
        }
        for state in ["connected", "disconnected"] {
            self.redis_pool_connections.with_label_values(&[state]);
        }
        for dependency in ["postgres", "redis"] {
            self.dependency_up.with_label_values(&[dependency]);
            self.dependency_check_seconds.with_label_values(&[dependency]);
        }
    }

    /// The registry in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn every_metric_registers_and_known_series_start_at_zero() {
        let rendered = Metrics::new().render();
        for line in [
            r#"bestie_pushes_total{outcome="auth_failed"} 0"#,
            r#"bestie_pairing_outcomes_total{outcome="no_mitra_available",request_type="general"} 0"#,
            r#"bestie_availability_polls_total{answer="none"} 0"#,
            "bestie_hub_slow_consumer_closes_total 0",
            "bestie_ready 0",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line} missing from:\n{rendered}");
        }
    }
}
