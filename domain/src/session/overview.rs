//! The control center's front page: what is happening now, and what waits for an operator.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Store, StoreError};

/// Live counts. The mitra counts are Redis' presence sets (as the availability poll and
/// `bestie_mitras_online` read them); the rest is Postgres.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Mitras with the switch on and a live socket.
    #[schema(minimum = 0)]
    pub mitras_online: i64,
    /// Online and below `max_customers_per_mitra`: what the availability poll answers.
    #[schema(minimum = 0)]
    pub mitras_available: i64,
    /// Searches waiting for a mitra to accept.
    #[schema(minimum = 0)]
    pub searches: i64,
    /// Chats not yet completed (active, extending or closing).
    #[schema(minimum = 0)]
    pub active_sessions: i64,
    /// Failed pairings no operator has actioned yet.
    #[schema(minimum = 0)]
    pub open_failures: i64,
    /// Review flags not yet resolved.
    #[schema(minimum = 0)]
    pub open_review_flags: i64,
    /// The marketplace's time zone: what a date in the console's filters means.
    pub time_zone: String,
}

/// The counts, read now.
pub async fn overview(store: &Store) -> Result<Overview, StoreError> {
    let (online, available) = store.mitra_counts().await?;
    let (searches, active_sessions, open_failures, open_review_flags, time_zone) =
        store.overview_counts().await?;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(Overview {
        mitras_online: count(online),
        mitras_available: count(available),
        searches,
        active_sessions,
        open_failures,
        open_review_flags,
        time_zone,
    })
}
