//! The middleware every listener shares: a request id on every request and response
//! (`x-request-id`, taken from the client when it is a short token), a tracing span carrying
//! it, and the RED metrics per matched route; and the control center's CORS.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use domain::metrics::Metrics;
use futures::future::BoxFuture;
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
        Edge { inner, listener: self.listener, metrics: self.metrics.clone() }
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
        let method = method_label(request.method());
        let response = span.in_scope(|| self.inner.call(request));
        let (listener, metrics) = (self.listener, self.metrics.clone());
        Box::pin(async move {
            let Ok(mut response) = response.instrument(span).await;
            response.headers_mut().insert(REQUEST_ID, id);
            let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            let labels = [listener.as_str(), route, method];
            metrics.http_request_duration.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
            let status = status_class(response.status());
            metrics.http_requests.with_label_values(&[listener.as_str(), route, method, status]).inc();
            if response.status().is_server_error() {
                log_server_error(&mut response, listener, route, method, started);
            }
            Ok(response)
        })
    }
}

/// One line per 5xx answer, with what a person needs to find it: the request id the client
/// saw, the route, the status, the error's code and what went wrong (never returned). 503s
/// (a dependency down, retryable) are warnings, the rest errors.
fn log_server_error(
    response: &mut Response,
    listener: Listener,
    route: &str,
    method: &str,
    started: Instant,
) {
    let error = response.extensions_mut().remove::<ServerError>();
    let code = error.as_ref().map_or("internal_error", |e| e.code);
    let detail = error.and_then(|e| e.detail).unwrap_or_default();
    let request_id = response.headers().get(REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default();
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let listener = listener.as_str();
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(
            request_id,
            listener,
            method,
            route,
            status,
            code,
            error = detail,
            latency_ms,
            "request failed"
        );
    } else {
        tracing::error!(
            request_id,
            listener,
            method,
            route,
            status,
            code,
            error = detail,
            latency_ms,
            "request failed"
        );
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

/// The `method` label: the methods our routes and CORS answer, and `other` for any other
/// (the client writes the method, so it must not choose the series).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `status` label: the status class.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
