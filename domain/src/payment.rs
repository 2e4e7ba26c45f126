//! Payment sessions: what a customer pays before a chat or an extension.
//!
//! States: pending → confirmed → consumed | failed_pairing; pending → abandoned | expired.

use crate::store::Store;
use crate::store::StoreError;
pub use crate::store::payments::SweepCounts;

/// Closes payment sessions whose expiry passed (the 60 s sweep). Idempotent: a second run
/// over the same rows changes nothing.
#[tracing::instrument(skip_all)]
pub async fn sweep_expired(store: &Store) -> Result<SweepCounts, StoreError> {
    store.sweep_expired_payment_sessions().await
}
