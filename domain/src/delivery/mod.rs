//! Pushes for events that reached a socket nobody read. An event that needs the person
//! (one published with a push: a chat message, `chat_request`, `paired`, an extension
//! request) and was routed to an open socket is checked again `hub.delivery_grace_ms` later:
//! when no device of the user acknowledged it by then, the push goes out after all.
//!
//! A device acknowledges without any command of its own: the hub pings every socket every
//! few seconds, and a pong to a ping written after an event proves the app read past it
//! (one connection, in order). The hub raises the user's delivered watermark in Redis
//! ([`record_delivered`]); here the watermark is compared with the event's stream id.
//!
//! The checks wait in this process's memory: one that dies within the grace loses those
//! pushes (the events themselves are in the user's stream and replayed on resume).

pub mod store;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::Role;
use crate::broker::StreamId;
use crate::ids::UserId;
use crate::jobs::Push;
use crate::push::PushMessage;
use crate::services::Services;
use crate::store::{Store, StoreError};

/// A device of `user` read every event of their stream up to `id` (it answered a ping
/// written after them): raises their delivered watermark, kept `ttl_s`. Only moves forward.
pub async fn record_delivered(store: &Store, user: UserId, id: &str, ttl_s: u64) -> Result<(), StoreError> {
    store.record_delivered(user, id, ttl_s).await
}

/// `user`'s app was heard from at `at_ms` (unix ms): a frame or a pong on any socket.
pub async fn record_heard(store: &Store, user: UserId, at_ms: u64) -> Result<(), StoreError> {
    store.record_heard(user, at_ms).await
}

/// One event routed to an open socket, with the push it gets unless acknowledged.
struct Pending {
    due: Instant,
    role: Role,
    user: UserId,
    event: StreamId,
    message: PushMessage,
}

/// The checks waiting for their time, oldest first (every check waits the same grace).
#[derive(Default)]
pub struct DeferredPushes {
    queue: Mutex<VecDeque<Pending>>,
}

impl DeferredPushes {
    /// Checks `event` of `user` again after `grace`; pushes `message` unless acknowledged.
    pub fn defer(&self, grace: Duration, role: Role, user: UserId, event: &str, message: PushMessage) {
        let Some(event) = StreamId::parse(event) else { return };
        let pending = Pending { due: Instant::now() + grace, role, user, event, message };
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(pending);
    }

    fn take_due(&self, now: Instant) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let due = queue.iter().take_while(|pending| pending.due <= now).count();
        queue.drain(..due).collect()
    }
}

/// How often the due checks run.
const TICK: Duration = Duration::from_millis(250);

/// Runs the due checks until `shutdown`.
pub async fn run(services: Arc<Services>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = services.deferred_pushes.take_due(Instant::now());
        if !due.is_empty() {
            check(&services, due).await;
        }
    }
}

/// Pushes each due event no device acknowledged; one push per user and notification
/// (`collapse_key`) in a batch, as the device would show only the last anyway.
async fn check(services: &Services, due: Vec<Pending>) {
    let mut seen = std::collections::HashSet::new();
    let mut unacknowledged = Vec::new();
    // Newest first, so the push kept for a collapse key is the latest message's.
    for pending in due.into_iter().rev() {
        if seen.insert((pending.user, pending.message.collapse_key.clone())) {
            unacknowledged.push(pending);
        }
    }
    let users: Vec<UserId> = unacknowledged.iter().map(|pending| pending.user).collect();
    // Unknown (Redis unreadable): a push too many rather than a message nobody notices.
    let delivered = services.store.delivered_up_to_many(&users).await.unwrap_or_default();
    for (n, pending) in unacknowledged.into_iter().enumerate() {
        let up_to = delivered.get(n).cloned().flatten();
        let acknowledged =
            up_to.as_deref().and_then(StreamId::parse).is_some_and(|up_to| up_to >= pending.event);
        let outcome = if acknowledged { "acknowledged" } else { "pushed" };
        services.metrics.unacknowledged_checks.with_label_values(&[outcome]).inc();
        if acknowledged {
            continue;
        }
        let push = Push { role: pending.role, account: pending.user.0, message: pending.message };
        if let Err(error) = services.jobs.push(push).await {
            tracing::warn!(%error, user = %pending.user, "could not queue a push for an unacknowledged event");
        }
    }
}
