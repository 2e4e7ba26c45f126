//! Presence: who is connected, and which mitras can take a chat.
//!
//! A mitra is **online** when their own switch is on (`POST /api/mitra/status`) and at least
//! one of their sockets is open on a live hub instance; **available** when online and below
//! `max_customers_per_mitra` active sessions. The counters live in Redis and change in one
//! script per transition (`presence::store`); the availability poll reads one SCARD.
//! A hub instance renews a lease every `presence.heartbeat_ms`; every process reaps
//! instances whose lease is older than `presence.lease_ms`, so a crashed hub's users go
//! offline within lease + reap interval (10 s + 2 s by default).
//!
//! Redis keeps nothing on disk. When it comes back empty, the two halves of presence come
//! back from where they are recorded: the sockets from the hubs (each notices its inbox is
//! gone and announces its users again, `hub::instance`), the switches, session counts and
//! cap from Postgres (the reaper notices the `seeded` marker is gone, and one process copies
//! them back: [`restore_from_record`]).

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app_config;
use crate::auth::Principal;
use crate::capacity::{self, Change, default_cap};
use crate::ids::{MitraId, UserId};
pub use crate::presence::store::MitraPresence;
use crate::presence::store::Seeding;
use crate::services::Services;
use crate::settings::PresenceSettings;
use crate::store::{Store, StoreError};

/// The mitra's own switch: stored in Postgres (it survives a Redis restart) and applied to
/// the counters. A mitra who becomes available is offered the open requests.
#[tracing::instrument(skip_all, fields(mitra_id = %mitra.id, online))]
pub async fn set_mitra_status(
    services: &Services,
    mitra: &Principal,
    online: bool,
) -> Result<MitraPresence, StoreError> {
    services.store.set_mitra_status_online(mitra.mitra_id(), online).await?;
    let changed = capacity::changed(services, mitra.mitra_id(), Change::Switched { online }).await?;
    Ok(changed.offer(services).await)
}

/// The mitra's presence as the counters see it.
pub async fn mitra_presence(store: &Store, mitra: &Principal) -> Result<MitraPresence, StoreError> {
    store.mitra_presence(mitra.mitra_id(), default_cap()).await
}

/// Copies the capacity cap from `app_config` into Redis and recomputes availability.
pub async fn sync_capacity_cap(store: &Store) -> Result<(), StoreError> {
    // The validated value, as every accept reads it: the two copies never disagree.
    let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
    store.set_capacity_cap(cap).await
}

/// How long a process may hold the claim to copy the record into Redis before another may
/// take it over (it renews the claim while it retries).
const RESTORE_CLAIM_MS: u64 = 5_000;
/// Mitras per restore script: a script blocks Redis while it runs.
const RESTORE_BATCH: usize = 500;

/// Reaps dead hub instances every `reap_interval_ms` until `shutdown`. Runs in every process,
/// so presence heals even when every hub is gone. The same step notices a Redis that lost its
/// data (the `seeded` marker is gone), and one process copies the record back
/// ([`restore_from_record`]).
pub async fn run_reaper(services: Arc<Services>, shutdown: CancellationToken) {
    let (store, settings) = (&services.store, &services.presence);
    let mut every = tokio::time::interval(Duration::from_millis(settings.reap_interval_ms.max(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let claimant = uuid::Uuid::new_v4().simple().to_string();
    let mut cap_synced = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if !cap_synced {
            match sync_capacity_cap(store).await {
                Ok(()) => cap_synced = true,
                Err(error) => tracing::warn!(%error, "could not copy the capacity cap to Redis"),
            }
        }
        let reaped = store.reap_dead_instances(settings.lease_ms, default_cap(), &claimant, RESTORE_CLAIM_MS);
        match reaped.await {
            Ok(reaped) => {
                if !reaped.dead.is_empty() {
                    tracing::warn!(dead = ?reaped.dead, "reaped hub instances whose lease ran out");
                }
                if reaped.seeding == Seeding::Claimed {
                    let started = std::time::Instant::now();
                    // On failure the claim stays ours for a while: the next tick tries again.
                    match restore_from_record(&services, &claimant).await {
                        // Nothing to copy is a first start (or an empty marketplace): no
                        // warning. Mitras to copy mean Redis had lost what it held.
                        Ok(Some(0)) => tracing::info!(
                            "presence counters set up in Redis (nothing to copy from Postgres)"
                        ),
                        Ok(Some(mitras)) => tracing::warn!(
                            mitras,
                            took_ms = started.elapsed().as_millis() as u64,
                            "presence counters copied from Postgres into Redis (it had lost them)"
                        ),
                        Ok(None) => {
                            tracing::warn!("presence copy lost its claim (Redis lost its data again?)")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not copy presence from Postgres into Redis")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "presence reap failed"),
        }
    }
}

/// Copies what Postgres records of Redis's state into Redis: the revocation list, the
/// capacity cap, and each mitra's switch and count of sessions not completed. Run when Redis
/// lost its data (and on a deployment's first start); the hubs announce their sockets again
/// by themselves. The copy is idempotent, and a switch set since Redis came back is kept (it
/// is newer than the record). Mitras who become available are offered the open requests. Returns how many
/// mitras were copied, or `None` when `claimant`'s claim was gone by the end (the copy is
/// not recorded as done, and is made again).
pub async fn restore_from_record(
    services: &Arc<Services>,
    claimant: &str,
) -> Result<Option<usize>, StoreError> {
    let store = &services.store;
    sync_capacity_cap(store).await?;
    let cap = app_config::get(store, app_config::MAX_CUSTOMERS_PER_MITRA).await?;
    let records = store.mitra_records().await?;
    // Access tokens revoked before the loss (logouts, deactivated mitras) are refused again.
    let revocations = store.restore_revocations().await?;
    tracing::info!(revocations, "revocations copied from Postgres into Redis");
    let mut freed = Vec::new();
    for batch in records.chunks(RESTORE_BATCH) {
        freed.extend(store.restore_mitras(batch, cap).await?);
    }
    if !store.mark_presence_seeded(claimant).await? {
        return Ok(None);
    }
    if !freed.is_empty() {
        let services = services.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            futures::stream::iter(freed)
                .for_each_concurrent(16, |(mitra, active)| {
                    let services = &services;
                    async move {
                        capacity::Changed::restored(MitraId(mitra), active).offer(services).await;
                    }
                })
                .await;
        });
    }
    Ok(Some(records.len()))
}

/// Whether any socket of the user is open on a live hub instance (a push is sent only when
/// none is).
pub async fn user_connected(
    store: &Store,
    settings: &PresenceSettings,
    user: UserId,
) -> Result<bool, StoreError> {
    store.user_connected(user, settings.lease_ms).await
}

/// Mitras online and below the cap, from the process's view when it is fresh, else from
/// Redis.
pub async fn available_mitras(store: &Store, view: &AvailabilityView) -> Result<u64, StoreError> {
    match view.count() {
        Some(count) => Ok(count),
        None => store.available_mitra_count().await,
    }
}

/// The available-mitra count held in memory, kept fresh by Redis: every change publishes
/// `<epoch> <version> <count>` from the script that made it, and a refresh every second is
/// the backstop for a lost message. A value is only replaced by a newer version of the same
/// epoch, so a slow refresh cannot undo a newer message; a new epoch (Redis lost its data
/// and started counting again) replaces it. When Redis cannot be read for a few seconds the
/// view says it does not know, and the poll asks Redis (and fails like Redis does).
#[derive(Clone, Default)]
pub struct AvailabilityView {
    /// The count plus one; 0 while unknown. Read without a lock on every poll.
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The `(epoch, version)` of the count held.
    seen: std::sync::Arc<std::sync::Mutex<(u64, u64)>>,
}

impl AvailabilityView {
    pub fn count(&self) -> Option<u64> {
        self.count.load(std::sync::atomic::Ordering::Acquire).checked_sub(1)
    }

    /// Takes `count` unless the view holds a newer version of the same epoch.
    fn offer(&self, epoch: u64, version: u64, count: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = self.count().is_some();
        if !known || epoch != seen.0 || version >= seen.1 {
            *seen = (epoch, version);
            self.count.store(count.saturating_add(1), std::sync::atomic::Ordering::Release);
        }
    }

    fn forget(&self) {
        self.count.store(0, std::sync::atomic::Ordering::Release);
    }
}

/// Keeps `view` fresh until `shutdown`.
pub async fn run_availability_view(store: Store, view: AvailabilityView, shutdown: CancellationToken) {
    let follower = AvailabilityFollower { store: store.clone(), view };
    store.follow(store.availability_channel(), Duration::from_secs(1), &follower, shutdown).await;
}

struct AvailabilityFollower {
    store: Store,
    view: AvailabilityView,
}

impl crate::store::Follower for AvailabilityFollower {
    fn apply(&self, message: &str) {
        if let Some((epoch, version, count)) = parse_count(message) {
            self.view.offer(epoch, version, count);
        }
    }

    fn reload(&self, _subscribed: bool) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (epoch, version, count) = self.store.available_count_versioned().await?;
            self.view.offer(epoch, version, count);
            Ok(())
        })
    }

    fn failing(&self, failures: u32) {
        if failures >= 3 {
            self.view.forget();
        }
    }
}

fn parse_count(message: &str) -> Option<(u64, u64, u64)> {
    let mut parts = message.split(' ').map(|part| part.parse().ok());
    let parsed = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::AvailabilityView;

    #[test]
    fn the_view_keeps_the_newest_version_of_its_epoch() {
        let view = AvailabilityView::default();
        assert_eq!(view.count(), None);
        view.offer(7, 0, 0);
        assert_eq!(view.count(), Some(0));
        view.offer(7, 5, 3);
        view.offer(7, 4, 9);
        assert_eq!(view.count(), Some(3), "an older version does not replace a newer one");
        view.offer(7, 6, 0);
        assert_eq!(view.count(), Some(0));
        // Redis lost its data: a new epoch starts counting from 1 again.
        view.offer(8, 1, 2);
        assert_eq!(view.count(), Some(2));
        view.forget();
        assert_eq!(view.count(), None);
        view.offer(8, 0, 1);
        assert_eq!(view.count(), Some(1), "a forgotten view takes the next answer");
        assert_eq!(super::parse_count("3 12 4"), Some((3, 12, 4)));
        assert_eq!(super::parse_count("12 4"), None);
        assert_eq!(super::parse_count("3 x 4"), None);
    }
}
