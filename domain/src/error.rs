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
}

/// A failure of Postgres or Redis, seen from the domain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Connection-level failures that a retry can cure, as opposed to a bad query.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Postgres(sqlx::Error::Database(e)) => {
                // Class 08 (connection exception) and 57 (operator intervention: the server
                // is shutting down or not yet accepting connections).
                e.code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57"))
            }
            Self::Postgres(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            Self::Redis(e) => matches!(
                e.kind(),
                fred::error::ErrorKind::IO
                    | fred::error::ErrorKind::Timeout
                    | fred::error::ErrorKind::Canceled
                    | fred::error::ErrorKind::Backpressure
            ),
            Self::Migrate(_) => false,
        }
    }
}

impl DomainError for StoreError {
    fn code(&self) -> &'static str {
        if self.is_unavailable() {
            "store_unavailable"
        } else {
            "internal_error"
        }
    }

    fn kind(&self) -> ErrorKind {
        if self.is_unavailable() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Internal
        }
    }
}
