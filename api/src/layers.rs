//! The middleware every listener shares: a request id on every request and response
//! (`x-request-id`, taken from the client when it is a short token), a tracing span carrying
//! it, and the RED metrics per matched route; and the control center's CORS.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use domain::metrics::Metrics;
use futures::future::BoxFuture;
use prometheus::{Histogram, IntCounter};
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::Listener;
use crate::error::ServerError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// CORS for the control center's web app on the internal listener: its origins, every
/// method its pages use (GET, POST, PUT, PATCH, DELETE), JSON bodies and bearer tokens.
/// An origin that does not parse is skipped with a warning.
pub fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| match HeaderValue::from_str(origin.trim_end_matches('/')) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(origin, "ignoring a control-center origin that is not a header value");
                None
            }
        })
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([REQUEST_ID])
        .max_age(std::time::Duration::from_secs(600))
}

/// Wraps every route of `router` (and its fallbacks) in the [`Edge`].
pub fn wrap(router: Router, listener: Listener, metrics: Metrics) -> Router {
    router.layer(EdgeLayer { listener, metrics })
}

/// Makes [`Edge`] services.
#[derive(Clone)]
pub struct EdgeLayer {
    listener: Listener,
    metrics: Metrics,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        let handles = Arc::new(RouteHandles::default());
        Edge { inner, listener: self.listener, metrics: self.metrics.clone(), handles }
    }
}

/// The `method` labels, in [`method_index`]'s order; `other` is last.
const METHOD_LABELS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"];
/// The `status` labels (status classes), in [`status_index`]'s order.
const STATUS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The RED metric handles of one route (the layer wraps each route and the fallback apart),
/// by method, looked up in the metric families once: a request then updates them without
/// hashing its labels or taking the families' lock.
#[derive(Default)]
struct RouteHandles {
    by_method: [OnceLock<MethodHandles>; METHOD_LABELS.len()],
}

struct MethodHandles {
    /// The `route` label these were made for (a mismatch takes the slow path).
    route: String,
    duration: Histogram,
    /// Made at a status class's first answer, so no series waits at zero for a class the
    /// route never answers with.
    by_status: [OnceLock<IntCounter>; STATUS_LABELS.len()],
}

impl RouteHandles {
    fn record(
        &self,
        metrics: &Metrics,
        listener: Listener,
        route: &str,
        method: usize,
        status: usize,
        seconds: f64,
    ) {
        let labels = Labels { listener: listener.as_str(), route, method: METHOD_LABELS[method] };
        let handles = self.by_method[method].get_or_init(|| MethodHandles {
            route: route.to_owned(),
            duration: labels.duration(metrics),
            by_status: Default::default(),
        });
        if handles.route == route {
            handles.duration.observe(seconds);
            handles.by_status[status].get_or_init(|| labels.requests(metrics, status)).inc();
        } else {
            labels.duration(metrics).observe(seconds);
            labels.requests(metrics, status).inc();
        }
    }
}

/// A request's RED labels, and the series they name.
struct Labels<'a> {
    listener: &'static str,
    route: &'a str,
    method: &'static str,
}

impl Labels<'_> {
    fn duration(&self, metrics: &Metrics) -> Histogram {
        metrics.http_request_duration.with_label_values(&[self.listener, self.route, self.method])
    }

    fn requests(&self, metrics: &Metrics, status: usize) -> IntCounter {
        let status = STATUS_LABELS[status];
        metrics.http_requests.with_label_values(&[self.listener, self.route, self.method, status])
    }
}

/// What every request passes on its way in and out, in one service: its id (`x-request-id`,
/// the client's own when it is a short token, a new UUID otherwise, on the response too),
/// the `request` span its logs carry, and the RED metrics of its matched route.
///
/// One service rather than four layers (request id, trace, id propagation, a `from_fn`
/// metrics middleware): the hot path then costs one boxed future and one span, not a clone
/// of the inner service and a boxed future per layer (loadtest/hot-path measures it).
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    listener: Listener,
    metrics: Metrics,
    handles: Arc<RouteHandles>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(request.headers());
        // A debug span: at the default filter (info) it costs nothing, and a server error is
        // logged below with the request's id anyway. `api=debug` (or `debug`) turns it on, and
        // every line logged while the request is served then carries it.
        let span = tracing::debug_span!(
            "request",
            listener = self.listener.as_str(),
            method = %request.method(),
            uri = %request.uri().path(),
            request_id = id.to_str().unwrap_or_default(),
        );
        // The matched route pattern keeps the label set small; unmatched paths share one label.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_index(request.method());
        let response = span.in_scope(|| self.inner.call(request));
        let (listener, metrics, handles) = (self.listener, self.metrics.clone(), self.handles.clone());
        Box::pin(async move {
            let Ok(mut response) = response.instrument(span).await;
            response.headers_mut().insert(REQUEST_ID, id);
            let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            let seconds = started.elapsed().as_secs_f64();
            handles.record(&metrics, listener, route, method, status_index(response.status()), seconds);
            log_answer(&mut response, listener, route, METHOD_LABELS[method], seconds * 1_000.0);
            Ok(response)
        })
    }
}

/// Routes asked on a timer: the probes (orchestrators, Prometheus, every few seconds) and the
/// apps' availability poll (every open customer app, every 5 s). Their successful answers'
/// access lines are debug: at a hundred thousand open apps the poll alone would write twenty
/// thousand lines a second that say nothing the metrics don't (`bestie_http_requests_total`,
/// `bestie_availability_polls_total`), and writing them cost the poll a fifth of its
/// throughput (docs/BENCHMARKS.md, "The hot path"). A refusal (4xx) of these routes is
/// logged at info like any other.
const QUIET_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/client/mitra-availability"];

/// The answer's one log line, each with the request id the client saw, the listener, the
/// method as its metric label (the client writes the method), the matched route (never the
/// path or query: ids, tokens in `/ws?token=`), the status and the latency:
///
/// - a 5xx: `request failed`, with the error's code and what went wrong (never returned), at
///   any filter; 503s (a dependency down, retryable) are warnings, the rest errors;
/// - any other: the access line `served`, target `access`, at info (`BESTIE__LOG__FILTER=
///   info,access=off` drops it), at debug for an answer below 400 of [`QUIET_ROUTES`]
///   (`info,access=debug` shows them).
fn log_answer(response: &mut Response, listener: Listener, route: &str, method: &str, latency_ms: f64) {
    let status = response.status().as_u16();
    let listener = listener.as_str();
    let error =
        response.status().is_server_error().then(|| response.extensions_mut().remove::<ServerError>());
    let request_id = response.headers().get(REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default();
    let Some(error) = error else {
        if status < 400 && QUIET_ROUTES.contains(&route) {
            tracing::debug!(target: "access", request_id, listener, method, route, status, latency_ms, "served");
        } else {
            tracing::info!(target: "access", request_id, listener, method, route, status, latency_ms, "served");
        }
        return;
    };
    let code = error.as_ref().map_or("internal_error", |e| e.code);
    let detail = error.and_then(|e| e.detail).unwrap_or_default();
    // One call site per level (tracing's levels are part of a call site's static metadata).
    macro_rules! failed {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id,
                listener,
                method,
                route,
                status,
                code,
                error = detail,
                latency_ms,
                "request failed"
            )
        };
    }
    if status == StatusCode::SERVICE_UNAVAILABLE.as_u16() {
        failed!(tracing::Level::WARN);
    } else {
        failed!(tracing::Level::ERROR);
    }
}

/// Longest client-chosen request id kept; a longer one (or one with other characters than
/// letters, digits, `-`, `_`, `.`) is replaced, so what a client writes into our logs stays small.
const MAX_CLIENT_REQUEST_ID: usize = 64;

/// The client's `x-request-id` when it is a short token, else a new UUID.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(REQUEST_ID) {
        let bytes = given.as_bytes();
        let token = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if (1..=MAX_CLIENT_REQUEST_ID).contains(&bytes.len()) && bytes.iter().all(token) {
            return given.clone();
        }
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The `route` label of a request no route matched (whatever its path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method's place in [`METHOD_LABELS`]: the methods our routes and CORS answer have a
/// label of their own, any other is `other` (the client writes the method, so it must not
/// choose the series).
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The status class's place in [`STATUS_LABELS`].
fn status_index(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}
