//! Every Prometheus metric the process exports, by name, in one place.
//!
//! Names follow Prometheus conventions: the `bestie_` prefix, base units (`_seconds`),
//! `_total` on counters, and labels with a small fixed set of values (never a user id).
//! Each process (and each test app) owns its own [`Metrics`] and registry.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
pub const JOBS_TOTAL: &str = "bestie_jobs_total";
pub const JOB_LATENESS_SECONDS: &str = "bestie_job_lateness_seconds";
pub const JOB_RETRIES_TOTAL: &str = "bestie_job_retries_total";
pub const JOB_QUEUE_DEPTH: &str = "bestie_job_queue_depth";
pub const PUSHES_TOTAL: &str = "bestie_pushes_total";
pub const PAYMENT_SESSIONS_SWEPT_TOTAL: &str = "bestie_payment_sessions_swept_total";
pub const PAIRING_OUTCOMES_TOTAL: &str = "bestie_pairing_outcomes_total";
pub const PAIRING_TIME_TO_ACCEPT_SECONDS: &str = "bestie_pairing_time_to_accept_seconds";
pub const PAYMENT_TRANSITIONS_TOTAL: &str = "bestie_payment_transitions_total";
pub const CHAT_MESSAGES_TOTAL: &str = "bestie_chat_messages_total";

/// Request latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The metric handles of one process.
#[derive(Clone)]
pub struct Metrics {
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
    /// From publishing an event to writing it to a socket.
    pub hub_delivery_seconds: Histogram,
    /// Job runs by `job` and `outcome` (ok|error).
    pub jobs: IntCounterVec,
    /// How long after its due time a timer ran, by timer `job` kind.
    pub job_lateness_seconds: HistogramVec,
    /// Job runs that were a retry (attempt > 1), by `job`.
    pub job_retries: IntCounterVec,
    /// Jobs waiting in the queue, by `job` type.
    pub job_queue_depth: IntGaugeVec,
    /// Push deliveries by `outcome` (sent|token_deleted|failed).
    pub pushes: IntCounterVec,
    /// Payment sessions moved by the sweep, by final `status` (expired|failed_pairing).
    pub payment_sessions_swept: IntCounterVec,
    /// Pairing requests resolved, by `request_type` (general|returning) and `outcome`
    /// (`accepted` or the failure's cause tag).
    pub pairing_outcomes: IntCounterVec,
    /// From a pairing request's creation to its accept, by `request_type`.
    pub pairing_time_to_accept_seconds: HistogramVec,
    /// Payment sessions moving into a state, by `status`.
    pub payment_transitions: IntCounterVec,
    /// Chat messages stored, by the sender's `role`.
    pub chat_messages: IntCounterVec,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new(HTTP_REQUESTS_TOTAL, "HTTP requests answered."),
                &["listener", "route", "method", "status"],
            )
            .expect("valid metric"),
            http_request_duration: HistogramVec::new(
                HistogramOpts::new(HTTP_REQUEST_DURATION_SECONDS, "HTTP request latency.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["listener", "route", "method"],
            )
            .expect("valid metric"),
            hub_connections: IntGauge::new(HUB_CONNECTIONS, "Open WebSocket connections.")
                .expect("valid metric"),
            hub_connections_opened: IntCounterVec::new(
                Opts::new(HUB_CONNECTIONS_OPENED_TOTAL, "WebSocket connections opened."),
                &["role"],
            )
            .expect("valid metric"),
            hub_connections_closed: IntCounterVec::new(
                Opts::new(HUB_CONNECTIONS_CLOSED_TOTAL, "WebSocket connections closed, by close code."),
                &["code"],
            )
            .expect("valid metric"),
            hub_frames_in: IntCounterVec::new(
                Opts::new(HUB_FRAMES_IN_TOTAL, "WebSocket frames received, by command type."),
                &["type"],
            )
            .expect("valid metric"),
            hub_frames_out: IntCounterVec::new(
                Opts::new(HUB_FRAMES_OUT_TOTAL, "WebSocket frames sent, by type."),
                &["type"],
            )
            .expect("valid metric"),
            hub_delivery_seconds: Histogram::with_opts(
                HistogramOpts::new(HUB_DELIVERY_SECONDS, "Event delivery latency, publish to socket write.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            jobs: IntCounterVec::new(Opts::new(JOBS_TOTAL, "Job runs by outcome."), &["job", "outcome"])
                .expect("valid metric"),
            job_lateness_seconds: HistogramVec::new(
                HistogramOpts::new(JOB_LATENESS_SECONDS, "Timer lateness: run time minus due time.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["job"],
            )
            .expect("valid metric"),
            job_retries: IntCounterVec::new(
                Opts::new(JOB_RETRIES_TOTAL, "Job runs that were retries."),
                &["job"],
            )
            .expect("valid metric"),
            job_queue_depth: IntGaugeVec::new(
                Opts::new(JOB_QUEUE_DEPTH, "Jobs waiting, by job type."),
                &["job"],
            )
            .expect("valid metric"),
            pushes: IntCounterVec::new(Opts::new(PUSHES_TOTAL, "Push deliveries by outcome."), &["outcome"])
                .expect("valid metric"),
            payment_sessions_swept: IntCounterVec::new(
                Opts::new(PAYMENT_SESSIONS_SWEPT_TOTAL, "Payment sessions closed by the expiry sweep."),
                &["status"],
            )
            .expect("valid metric"),
            pairing_outcomes: IntCounterVec::new(
                Opts::new(PAIRING_OUTCOMES_TOTAL, "Pairing requests resolved, by type and outcome."),
                &["request_type", "outcome"],
            )
            .expect("valid metric"),
            pairing_time_to_accept_seconds: HistogramVec::new(
                HistogramOpts::new(PAIRING_TIME_TO_ACCEPT_SECONDS, "From request to accept.")
                    .buckets(vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0]),
                &["request_type"],
            )
            .expect("valid metric"),
            payment_transitions: IntCounterVec::new(
                Opts::new(PAYMENT_TRANSITIONS_TOTAL, "Payment sessions entering a state."),
                &["status"],
            )
            .expect("valid metric"),
            chat_messages: IntCounterVec::new(
                Opts::new(CHAT_MESSAGES_TOTAL, "Chat messages stored, by sender role."),
                &["role"],
            )
            .expect("valid metric"),
            build_info: IntGaugeVec::new(
                Opts::new(BUILD_INFO, "Always 1; the labels say which build runs."),
                &["version"],
            )
            .expect("valid metric"),
            registry,
        };
        metrics.register_all();
        metrics.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 19] = [
            Box::new(self.chat_messages.clone()),
            Box::new(self.pairing_outcomes.clone()),
            Box::new(self.pairing_time_to_accept_seconds.clone()),
            Box::new(self.payment_transitions.clone()),
            Box::new(self.pushes.clone()),
            Box::new(self.job_lateness_seconds.clone()),
            Box::new(self.job_retries.clone()),
            Box::new(self.job_queue_depth.clone()),
            Box::new(self.hub_frames_in.clone()),
            Box::new(self.hub_frames_out.clone()),
            Box::new(self.hub_delivery_seconds.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.http_request_duration.clone()),
            Box::new(self.hub_connections.clone()),
            Box::new(self.hub_connections_opened.clone()),
            Box::new(self.hub_connections_closed.clone()),
            Box::new(self.jobs.clone()),
            Box::new(self.payment_sessions_swept.clone()),
            Box::new(self.build_info.clone()),
        ];
        for collector in collectors {
            self.registry.register(collector).expect("metric names are unique");
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
