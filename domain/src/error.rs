//! How domain errors tell the edges what went wrong.
//!
//! Each area has its own `thiserror` enum; every one implements [`DomainError`], giving a
//! stable snake_case `code` that apps switch on and a [`ErrorKind`] that the api maps to an
//! HTTP status once. No HTTP type appears here.

/// The class of failure, which decides the HTTP status (or the WebSocket error frame) at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or out of range (400).
    Invalid,
    /// No valid credentials (401).
    Unauthenticated,
    /// Valid credentials, not allowed (403).
    Forbidden,
    /// The thing does not exist, or is not the caller's to see (404).
    NotFound,
    /// The request is valid but the state of the world refuses it (409).
    Conflict,
    /// Too many requests (429).
    RateLimited,
    /// A dependency (Postgres, Redis) is unreachable; retrying later may succeed (503).
    Unavailable,
    /// A bug or an unexpected failure; the detail is logged, never returned (500).
    Internal,
}

/// Implemented by every domain error enum.
pub trait DomainError: std::error::Error {
    /// Stable machine-readable code, documented in `docs/ERRORS.md`.
    fn code(&self) -> &'static str;
    fn kind(&self) -> ErrorKind;
    /// Extra machine-readable fields for the error body, e.g. `retry_after_s`.
    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
    /// Which of the [`details`](Self::details) also go at the top level of the body, beside
    /// `error`, where the apps built for the old backend read them (`reason`).
    fn top_level(&self) -> &'static [&'static str] {
        &[]
    }
}
