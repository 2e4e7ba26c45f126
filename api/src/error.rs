//! The one error body every non-2xx response carries:
//! `{"error": {"code": "snake_case_code", "message": "human text", ...}}`.
//!
//! Domain errors map here once, by [`ErrorKind`]. 5xx details are logged, never returned: the
//! response carries them to the edge ([`ServerError`]), which logs them with the request's id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::error::{DomainError, ErrorKind};
use serde_json::{Map, Value, json};

/// An error response: status, stable code, human message and optional extra fields.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields inside `error`, e.g. `reason` or `retry_after_s`.
    pub extra: Map<String, Value>,
    /// Fields beside `error`, where the seeds' apps read them (`reason`).
    top: Map<String, Value>,
    /// What went wrong on our side (5xx from a domain error): logged, never returned.
    detail: Option<String>,
}

/// A 5xx response's error, for the edge to log (`api::layers`) with the request's id, method
/// and route: the error's code and what went wrong on our side.
#[derive(Clone, Debug)]
pub struct ServerError {
    pub code: &'static str,
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new(), top: Map::new(), detail: None }
    }

    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(field.to_owned(), value.into());
        self
    }

    pub fn from_domain<E: DomainError>(error: &E) -> Self {
        let kind = error.kind();
        let status = status_of(kind);
        let (message, detail) = match kind {
            ErrorKind::Internal => ("something went wrong on our side".to_owned(), Some(error.to_string())),
            ErrorKind::Unavailable => {
                ("the service is temporarily unavailable; retry shortly".to_owned(), Some(error.to_string()))
            }
            _ => (error.to_string(), None),
        };
        let mut api_error = Self::new(status, error.code(), message);
        api_error.detail = detail;
        let top_level = error.top_level();
        for (field, value) in error.details() {
            if top_level.contains(&field) {
                api_error.top.insert(field.to_owned(), value.clone());
            }
            api_error = api_error.with(field, value);
        }
        if kind == ErrorKind::Unavailable { api_error.with("retryable", true) } else { api_error }
    }
}

fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl<E: DomainError> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::from_domain(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        // A 429 that says how long to wait says it in the standard header too.
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.extra.get("retry_after_s").and_then(Value::as_u64))
            .flatten()
            .and_then(|seconds| axum::http::HeaderValue::from_str(&seconds.to_string()).ok());
        error.extend(self.extra);
        let mut body = self.top;
        body.insert("error".into(), Value::Object(error));
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds);
        }
        if self.status.is_server_error() {
            response.extensions_mut().insert(ServerError { code: self.code, detail: self.detail });
        }
        response
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
