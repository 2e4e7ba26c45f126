//! Charging customers through a payment provider, at most once per idempotency key.
//!
//! A charge is first claimed in the ledger (`pending`, unique idempotency key), then sent to
//! the provider with that same key, then completed. A duplicate or retried charge finds the
//! row: completed → returned as it is, no provider call; still pending (a crash between the
//! call and the update, or a concurrent twin) → the provider is called again with the same
//! key, which providers answer with the original charge, and the row is completed once.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::error::{DomainError, ErrorKind};
use crate::store::charges::ChargeRow;
use crate::store::{Store, StoreError};

/// What the provider is asked to do.
#[derive(Clone, Debug)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub payment_session_id: Uuid,
    /// Whole rupiah.
    pub amount: i64,
}

/// A payment provider. Implementations must deduplicate by `idempotency_key`.
pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Charges, returning the provider's reference, or why it was declined.
    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the charge (card declined, ...): final.
    #[error("declined: {0}")]
    Declined(String),
    /// The provider could not be reached or failed: retry with the same key.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The provider of this phase: every charge succeeds. Deduplicates by key like a real one,
/// and counts the charges it really made.
#[derive(Default)]
pub struct MockProvider {
    calls: AtomicU64,
    made: AtomicU64,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl MockProvider {
    /// Charges made (a repeated key is not a new charge).
    pub fn charges_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Requests received, repeated keys included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl PaymentProvider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let new = self
                .seen
                .lock()
                .map(|mut seen| seen.insert(request.idempotency_key.clone()))
                .unwrap_or(false);
            if new {
                self.made.fetch_add(1, Ordering::Relaxed);
            }
            Ok(format!("mock_{}", request.idempotency_key))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error("the payment provider declined: {0}")]
    Declined(String),
    #[error("the payment provider is unavailable; the charge will be retried: {0}")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ChargeError {
    fn code(&self) -> &'static str {
        match self {
            Self::Declined(_) => "payment_declined",
            Self::ProviderUnavailable(_) => "payment_provider_unavailable",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Declined(_) => ErrorKind::Conflict,
            Self::ProviderUnavailable(_) => ErrorKind::Unavailable,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Charges `amount` for a payment session, once per `idempotency_key`.
#[tracing::instrument(skip_all, fields(payment_session_id = %request.payment_session_id))]
pub async fn charge(
    store: &Store,
    provider: &dyn PaymentProvider,
    request: &ChargeRequest,
) -> Result<ChargeRow, ChargeError> {
    let row = store
        .claim_charge(&request.idempotency_key, request.payment_session_id, request.amount, provider.name())
        .await?;
    match row.status.as_str() {
        "pending" => {}
        // The provider declined this key before: the answer stands (a new attempt needs a new key).
        "failed" => return Err(ChargeError::Declined("declined earlier under this idempotency key".into())),
        _ => return Ok(row),
    }
    match provider.charge(request).await {
        Ok(reference) => Ok(store.complete_charge(row.id, Ok(&reference)).await?),
        Err(ProviderError::Declined(reason)) => {
            store.complete_charge(row.id, Err(&reason)).await?;
            Err(ChargeError::Declined(reason))
        }
        // Left pending: the retry calls the provider again with the same key.
        Err(ProviderError::Unavailable(reason)) => Err(ChargeError::ProviderUnavailable(reason)),
    }
}
