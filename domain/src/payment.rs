//! Payment sessions: what a customer pays before a chat or an extension.
//!
//! States: pending → confirmed → consumed | failed_pairing; pending → abandoned | expired.

use uuid::Uuid;

pub use crate::store::payments::SweepCounts;
use crate::store::{Store, StoreError};

/// Closes payment sessions whose expiry passed (the 60 s sweep). Idempotent: a second run
/// over the same rows changes nothing.
#[tracing::instrument(skip_all)]
pub async fn sweep_expired(store: &Store) -> Result<SweepCounts, StoreError> {
    store.expire_payment_sessions(None).await
}

/// Closes one payment session at its expiry (its own timer; the sweep is the backstop).
/// Does nothing when the session is not due, already closed, or still in use.
#[tracing::instrument(skip_all, fields(payment_session_id = %id))]
pub async fn expire(store: &Store, id: Uuid) -> Result<SweepCounts, StoreError> {
    store.expire_payment_sessions(Some(id)).await
}
