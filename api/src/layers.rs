//! The middleware every listener shares: a request id on every request and response
//! (`x-request-id`, taken from the client when present), a tracing span carrying it, and
//! the RED metrics per matched route.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use domain::metrics::Metrics;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::Listener;

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

pub fn wrap(router: Router, listener: Listener, metrics: Metrics) -> Router {
    let record = move |request: Request, next: Next| {
        let metrics = metrics.clone();
        async move { record_metrics(listener, metrics, request, next).await }
    };
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(move |request: &Request| {
                let request_id = request
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|id| id.header_value().to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    listener = listener.as_str(),
                    method = %request.method(),
                    uri = %request.uri().path(),
                    request_id,
                )
            }))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(middleware::from_fn(record)),
    )
}

async fn record_metrics(listener: Listener, metrics: Metrics, request: Request, next: Next) -> Response {
    // The matched route pattern keeps the label set small; unmatched paths share one label.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    let labels = [listener.as_str(), route.as_str(), method.as_str()];
    metrics.http_request_duration.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[listener.as_str(), route.as_str(), method.as_str(), status.as_str()])
        .inc();
    response
}
