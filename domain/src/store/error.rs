//! Failures of Postgres or Redis, seen from the domain.

use crate::error::{DomainError, ErrorKind};

/// A failure of Postgres or Redis, seen from the domain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("encoding: {0}")]
    Encode(String),
    /// A server that does not accept connections: its address and what the system said.
    #[error("{0}")]
    Unreachable(String),
    /// Connecting at start failed: which server, where, and the setting that names it.
    #[error("cannot connect to {server} at {url} (set by {setting}): {cause}")]
    Connect { server: &'static str, url: String, setting: &'static str, cause: Box<StoreError> },
}

impl StoreError {
    /// `self`, as a failure to connect to Postgres at `url` (`BESTIE__DATABASE__URL`).
    pub(crate) fn connecting_to_postgres(self, url: &crate::settings::ConnectionUrl) -> Self {
        Self::Connect {
            server: "PostgreSQL",
            url: url.redacted(),
            setting: "BESTIE__DATABASE__URL",
            cause: Box::new(self),
        }
    }

    /// `self`, as a failure to connect to Redis at `url` (`BESTIE__REDIS__URL`).
    pub(crate) fn connecting_to_redis(self, url: &crate::settings::ConnectionUrl) -> Self {
        Self::Connect {
            server: "Redis",
            url: url.redacted(),
            setting: "BESTIE__REDIS__URL",
            cause: Box::new(self),
        }
    }
}

impl StoreError {
    /// Connection-level failures that a retry can cure, as opposed to a bad query.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Postgres(sqlx::Error::Database(e)) => {
                // Class 08 (connection exception) and 57 (operator intervention: the server
                // is shutting down or not yet accepting connections).
                e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57"))
            }
            Self::Postgres(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_cluster_error()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::MasterDown
                                | redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::ReadOnly
                        )
                    )
            }
            Self::Connect { cause, .. } => cause.is_unavailable(),
            Self::Unreachable(_) => true,
            Self::Migrate(_) | Self::Encode(_) => false,
        }
    }
}

impl DomainError for StoreError {
    fn code(&self) -> &'static str {
        if self.is_unavailable() { "store_unavailable" } else { "internal_error" }
    }

    fn kind(&self) -> ErrorKind {
        if self.is_unavailable() { ErrorKind::Unavailable } else { ErrorKind::Internal }
    }
}

/// Lets an area's error (with a `Store(StoreError)` variant) take the drivers' errors too, so
/// the store code of that area answers the area's error directly: one vocabulary from the
/// statement to the route, and no refusal nested inside a store result to unwrap twice.
macro_rules! takes_driver_errors {
    ($($area:ty),+ $(,)?) => {
        $(
            impl From<sqlx::Error> for $area {
                fn from(e: sqlx::Error) -> Self {
                    Self::Store(e.into())
                }
            }

            impl From<redis::RedisError> for $area {
                fn from(e: redis::RedisError) -> Self {
                    Self::Store(e.into())
                }
            }
        )+
    };
}

takes_driver_errors!(
    crate::accounts::AccountError,
    crate::auth::AuthError,
    crate::chat::ChatError,
    crate::extension::ExtensionError,
    crate::failures::FailureError,
    crate::pairing::PairingError,
    crate::payment::PaymentError,
    crate::session::SessionError,
);
