//! The broker: delivers events to users, wherever their sockets are.
//!
//! Durable events get an id in the user's stream and can be resumed; ephemeral ones
//! (typing) reach only the sockets open right now. See `broker::store` for the keys.

pub mod store;

pub use crate::broker::store::{Backlog, InboxEntry, InboxReader, SocketRef};
use std::time::Duration;

use crate::event::Event;
use crate::ids::UserId;
use crate::settings::HubSettings;
pub use crate::store::{Received, Subscription};
use crate::store::{Store, StoreError};

/// A published event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its id in the user's stream.
    pub id: String,
    /// The hub instances the user's route named (holding a socket of theirs, unless the
    /// instance died and is not reaped yet). With none alive, the event waits in the stream
    /// for the app's next resume, and a push may be due.
    pub routed_to: Vec<String>,
}

/// Publishes `event` for `user`.
pub async fn publish(
    store: &Store,
    settings: &HubSettings,
    user: UserId,
    event: &Event,
) -> Result<Published, StoreError> {
    publish_except(store, settings, user, event, None).await
}

/// Publishes `event` for `user`, except to the socket `except` (the one whose command
/// caused it, when the command's answer carries it already). The event is still in the
/// user's stream, so that socket gets it if it resumes from before it.
pub async fn publish_except(
    store: &Store,
    settings: &HubSettings,
    user: UserId,
    event: &Event,
    except: Option<&SocketRef>,
) -> Result<Published, StoreError> {
    let encoded = event.encode()?;
    let ttl_ms = settings.stream_ttl_s.saturating_mul(1_000);
    match store.publish_event(user, &encoded, settings.stream_maxlen, ttl_ms, except).await {
        Ok((id, routed_to)) => Ok(Published { id, routed_to }),
        Err(error) => {
            announce_unpublished(store, vec![user]);
            Err(error)
        }
    }
}

/// Publishes the same `event` to every user of `users` (a blast): one stream entry per
/// user, one inbox entry per hub instance.
pub async fn publish_to_many(
    store: &Store,
    settings: &HubSettings,
    users: &[UserId],
    event: &Event,
) -> Result<Vec<(UserId, Published)>, StoreError> {
    let encoded = event.encode()?;
    let ttl_ms = settings.stream_ttl_s.saturating_mul(1_000);
    let (published, failed) =
        match store.publish_event_to_many(users, &encoded, settings.stream_maxlen, ttl_ms).await {
            Ok(fanout) => fanout,
            Err(error) => {
                announce_unpublished(store, users.to_vec());
                return Err(error);
            }
        };
    announce_unpublished(store, failed);
    Ok(published.into_iter().map(|(user, id, routed_to)| (user, Published { id, routed_to })).collect())
}

/// How long a process keeps trying to tell the hubs about events it could not publish.
const ANNOUNCE_FOR: Duration = Duration::from_secs(60);

/// Tells every hub that an event for each of `users` could not be published (their stream,
/// or the inbox of a hub holding them, was unreachable: a Redis Cluster failover, a restart,
/// a cut connection), so each of their open sockets gets `resync_required` and the app
/// refetches over REST. Runs in the background and retries until Redis takes the message:
/// what lost the event usually delays this too. A process that dies meanwhile loses the
/// announcement (ARCHITECTURE.md, "Redis Cluster failover").
pub fn announce_unpublished(store: &Store, users: Vec<UserId>) {
    if users.is_empty() {
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        let message = serde_json::json!({"kind": "resync_users", "user_ids": users}).to_string();
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match store.publish_hub_control(&message).await {
                Ok(()) => {
                    tracing::warn!(
                        users = users.len(),
                        "events could not be published: their users were told to resync"
                    );
                    return;
                }
                Err(error) if started.elapsed() >= ANNOUNCE_FOR => {
                    tracing::error!(%error, users = users.len(), "could not tell the hubs about unpublished events");
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    });
}

/// Sends `event` to the user's open sockets only; it is never stored.
pub async fn publish_ephemeral(store: &Store, user: UserId, event: &Event) -> Result<(), StoreError> {
    store.publish_ephemeral(user, &event.encode()?).await
}

/// What a client that reconnects with `last_event_id` missed.
pub async fn backlog(
    store: &Store,
    settings: &HubSettings,
    user: UserId,
    last_event_id: &str,
) -> Result<Backlog, StoreError> {
    store.read_backlog(user, last_event_id, settings.stream_maxlen.saturating_mul(2)).await
}

// The hub's side: each hub instance has an inbox (a stream it reads with blocking reads)
// and a lease; a user's route names the instances holding their sockets.

/// Opens the inbox of hub instance `instance`, kept for `keep_ms` past each heartbeat;
/// returns the opening entry's id (everything forwarded later comes after it).
pub async fn open_inbox(store: &Store, instance: &str, keep_ms: u64) -> Result<String, StoreError> {
    store.open_inbox(instance, keep_ms).await
}

/// Opens the inbox again if Redis lost it; the opening entry's id when it was gone.
pub async fn reopen_inbox(store: &Store, instance: &str, keep_ms: u64) -> Result<Option<String>, StoreError> {
    store.reopen_inbox(instance, keep_ms).await
}

/// A reader of inboxes on a Redis connection of its own (its blocking reads would stall
/// the shared pool).
pub async fn inbox_reader(store: &Store) -> Result<InboxReader, StoreError> {
    store.dedicated_redis().await
}

/// Renews hub instance `instance`'s lease (and keeps its inbox and user index alive).
pub async fn heartbeat(store: &Store, instance: &str, lease_ms: u64) -> Result<(), StoreError> {
    store.instance_heartbeat(instance, lease_ms).await
}

/// Takes hub instance `instance` out at once (a graceful shutdown), as a dead one would be.
pub async fn retire(store: &Store, instance: &str) -> Result<(), StoreError> {
    store.retire_instance(instance).await
}

/// `user` has a socket on hub instance `instance`: their events are forwarded there.
pub async fn add_route(store: &Store, user: UserId, instance: &str) -> Result<(), StoreError> {
    store.add_route(user, instance).await
}

/// `user` has no socket left on hub instance `instance`.
pub async fn remove_route(store: &Store, user: UserId, instance: &str) -> Result<(), StoreError> {
    store.remove_route(user, instance).await
}

/// The control messages to every hub (close a signed-out token's sockets, …), on a
/// connection of its own that resubscribes after a reconnect.
pub async fn hub_control(store: &Store) -> Result<Subscription, StoreError> {
    store.subscribe_hub_control().await
}

/// A stream id `<ms>-<seq>`, parsed for ordering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::StreamId;

    #[test]
    fn stream_ids_parse_and_order_numerically() {
        let a = StreamId::parse("1700000000000-9").expect("valid");
        let b = StreamId::parse("1700000000000-10").expect("valid");
        let c = StreamId::parse("1700000000001-0").expect("valid");
        assert!(a < b && b < c);
        for bad in ["", "1", "1-", "-1", "a-1", "1-1-1", "1 -1", "99999999999999999999999-0"] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }
}
