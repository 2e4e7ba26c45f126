//! The one error body every non-2xx response carries:
//! `{"error": {"code": "snake_case_code", "message": "human text", ...}}`.
//!
//! Domain errors map here once, by [`ErrorKind`]. 5xx details are logged, never returned.

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
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new() }
    }

    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(field.to_owned(), value.into());
        self
    }

    pub fn from_domain<E: DomainError>(error: &E) -> Self {
        let kind = error.kind();
        let status = status_of(kind);
        let message = match kind {
            ErrorKind::Internal => {
                tracing::error!(error = %error, code = error.code(), "internal error");
                "something went wrong on our side".to_owned()
            }
            ErrorKind::Unavailable => {
                tracing::warn!(error = %error, code = error.code(), "dependency unavailable");
                "the service is temporarily unavailable; retry shortly".to_owned()
            }
            _ => error.to_string(),
        };
        let mut api_error = Self::new(status, error.code(), message);
        for (field, value) in error.details() {
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
        error.extend(self.extra);
        (self.status, Json(json!({ "error": error }))).into_response()
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
