//! What a flow needs besides its input: the stores, the job queue, the payment provider, the
//! event settings and the metrics. Built once per process and shared by the api, the hub
//! and the jobs, so each flow is one function that every edge calls the same way.

use std::sync::Arc;

use crate::auth::Role;
use crate::broker::store::SocketRef;
use crate::charges::PaymentProvider;
use crate::event::Event;
use crate::ids::UserId;
use crate::jobs::{Jobs, Push};
use crate::metrics::Metrics;
use crate::push::PushMessage;
use crate::settings::{HubSettings, PresenceSettings};
use crate::store::Store;

/// Built once per process and shared as an `Arc<Services>`: the hub takes a clone per event it
/// routes, the workers one per job, and each is one atomic increment.
pub struct Services {
    pub store: Store,
    pub jobs: Arc<dyn Jobs>,
    pub payments: Arc<dyn PaymentProvider>,
    /// How long events are kept for resuming.
    pub hub: HubSettings,
    /// When a hub instance counts as dead (a push is due when only dead ones hold a user).
    pub presence: PresenceSettings,
    pub metrics: Metrics,
    /// The hub instances' heartbeats as last read.
    pub live: LiveCache,
    /// Each app user's budget of writes, shared by REST and socket commands.
    pub budget: crate::budget::UserBudget,
    /// Pushes waiting to see whether an open socket's device acknowledged the event.
    pub deferred_pushes: crate::delivery::DeferredPushes,
}

impl Services {
    /// Publishes one `event` to many users (a blast) and queues `push` for each user who
    /// had no socket to deliver it to. Returns those users. Failures are logged, never
    /// returned: the flow's state is committed already, and apps re-read it on resume.
    pub async fn notify_all<U: Copy + Into<UserId>>(
        &self,
        role: Role,
        users: &[U],
        event: &Event,
        push: Option<&PushMessage>,
    ) -> Vec<UserId> {
        if users.is_empty() {
            return Vec::new();
        }
        let users: Vec<UserId> = users.iter().map(|&user| user.into()).collect();
        let published = match crate::broker::publish_to_many(&self.store, &self.hub, &users, event).await {
            Ok(published) => published,
            Err(error) => {
                tracing::warn!(%error, kind = event.kind().as_str(), users = users.len(), "fan-out failed");
                return Vec::new();
            }
        };
        let Some(message) = push else { return Vec::new() };
        let candidates = published
            .into_iter()
            .map(|(user, published)| Candidate { role, user, published, message: message.clone() })
            .collect();
        self.push_unreached(candidates).await
    }
}

/// A published event that comes with a push.
struct Candidate {
    role: Role,
    user: UserId,
    published: crate::broker::Published,
    message: PushMessage,
}

/// An event for one user, with the push to send when none of their sockets is open (or
/// none of them acknowledges it within the delivery grace).
pub struct Notice {
    pub role: Role,
    pub user: crate::ids::UserId,
    pub event: Event,
    pub push: Option<PushMessage>,
}

impl Services {
    /// Publishes each notice's event (concurrently) and queues its push when the user had
    /// no socket to deliver it to. Returns the users reached only by push.
    /// A failure to publish one notice is logged and does not stop the others: the flow's
    /// state is already committed, and apps re-read it on resume.
    pub async fn notify(&self, notices: Vec<Notice>) -> Vec<UserId> {
        self.notify_from(None, notices).await
    }

    /// As [`notify`](Self::notify), for notices caused by a command that came in on the
    /// socket `origin`: that socket gets none of them (the command's answer carries what it
    /// needs); the user's other sockets do.
    pub async fn notify_from(&self, origin: Option<&SocketRef>, notices: Vec<Notice>) -> Vec<UserId> {
        use futures::StreamExt;
        let published = futures::stream::iter(notices)
            .map(|notice| async move {
                let routed =
                    crate::broker::publish_except(&self.store, &self.hub, notice.user, &notice.event, origin)
                        .await;
                (notice, routed)
            })
            .buffer_unordered(256)
            .collect::<Vec<_>>()
            .await;
        let mut candidates = Vec::new();
        for (notice, routed) in published {
            match routed {
                Ok(published) => {
                    if let Some(message) = notice.push {
                        candidates.push(Candidate {
                            role: notice.role,
                            user: notice.user,
                            published,
                            message,
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, user = %notice.user, kind = notice.event.kind().as_str(), "publish failed")
                }
            }
        }
        self.push_unreached(candidates).await
    }

    /// Queues each candidate's push unless a live hub instance holds a socket of theirs;
    /// then the push waits for the delivery grace, and goes out only when no device
    /// acknowledged the event by then ([`crate::delivery`]). Returns the users pushed now.
    async fn push_unreached(&self, candidates: Vec<Candidate>) -> Vec<UserId> {
        let mut reading = Reading::Cached;
        let mut pushed = Vec::new();
        let grace = std::time::Duration::from_millis(self.hub.delivery_grace_ms);
        for Candidate { role, user, published, message } in candidates {
            if self.reached(&published.routed_to, &mut reading).await {
                self.deferred_pushes.defer(grace, role, user, &published.id, message);
                continue;
            }
            match self.jobs.push(Push { role, account: user.0, message }).await {
                Ok(()) => pushed.push(user),
                Err(error) => tracing::warn!(%error, %user, "could not queue a push"),
            }
        }
        pushed
    }

    /// Whether a live hub instance holds one of `routed_to` (the instances with a socket of
    /// the user). The cached heartbeats answer when they show one alive; otherwise they are
    /// read again, once per `reading`, as an instance may have started or renewed its lease
    /// since. When Redis cannot say, the user counts as reached (no push rather than a push
    /// per event on a hiccup).
    async fn reached(&self, routed_to: &[String], reading: &mut Reading) -> bool {
        let lease_ms = self.presence.lease_ms;
        if routed_to.is_empty() {
            return false;
        }
        if *reading == Reading::Failed {
            return true;
        }
        if self.live.any_alive(routed_to, lease_ms) {
            return true;
        }
        if *reading == Reading::Fresh {
            return false;
        }
        match self.store.instance_heartbeats().await {
            Ok(heartbeats) => {
                *reading = Reading::Fresh;
                self.live.replace(heartbeats);
                self.live.any_alive(routed_to, lease_ms)
            }
            Err(error) => {
                tracing::warn!(%error, "could not read live hub instances");
                *reading = Reading::Failed;
                true
            }
        }
    }
}

/// Where the live-instance answers of one fan-out come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The cache as it was: not read from Redis yet.
    Cached,
    /// Read from Redis during this fan-out.
    Fresh,
    /// Redis could not be read.
    Failed,
}

/// The hub instances' last heartbeats (unix ms), as last read from Redis. An instance is
/// alive while its heartbeat is younger than `presence.lease_ms`, the rule Redis' own list
/// applies, so an answer "alive" from here is the answer Redis would give; only an instance
/// not seen alive here sends the reader back to Redis. Every stored chat message asks this
/// question of its recipient; most are answered without a round trip.
#[derive(Default)]
pub struct LiveCache {
    heartbeats: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl LiveCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.heartbeats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn any_alive(&self, instances: &[String], lease_ms: u64) -> bool {
        let since = crate::clock::now_ms().saturating_sub(lease_ms);
        let heartbeats = self.lock();
        instances.iter().any(|instance| heartbeats.get(instance).is_some_and(|beat| *beat >= since))
    }

    fn replace(&self, heartbeats: Vec<(String, u64)>) {
        *self.lock() = heartbeats.into_iter().collect();
    }
}
