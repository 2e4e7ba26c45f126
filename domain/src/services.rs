//! What a flow needs besides its input: the stores, the job queue, the payment provider, the
//! event settings and the metrics. Built once per process and shared by the api, the hub
//! and the jobs, so each flow is one function that every edge calls the same way.

use std::sync::Arc;

use crate::auth::Role;
use crate::charges::PaymentProvider;
use crate::event::Event;
use crate::jobs::{Jobs, Push};
use crate::metrics::Metrics;
use crate::push::PushMessage;
use crate::settings::{HubSettings, PresenceSettings};
use crate::store::Store;

#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub jobs: Arc<dyn Jobs>,
    pub payments: Arc<dyn PaymentProvider>,
    /// How long events are kept for resuming.
    pub hub: HubSettings,
    /// When a hub instance counts as dead (a push is due when only dead ones hold a user).
    pub presence: PresenceSettings,
    pub metrics: Metrics,
}

impl Services {
    /// Publishes one `event` to many users (a blast) and queues `push` for each user who
    /// had no socket to deliver it to. Returns those users. Failures are logged, never
    /// returned: the flow's state is committed already, and apps re-read it on resume.
    pub async fn notify_all(
        &self,
        role: Role,
        users: &[uuid::Uuid],
        event: &Event,
        push: Option<&PushMessage>,
    ) -> Vec<uuid::Uuid> {
        if users.is_empty() {
            return Vec::new();
        }
        let published = match crate::events::publish_to_many(&self.store, &self.hub, users, event).await {
            Ok(published) => published,
            Err(error) => {
                tracing::warn!(%error, kind = event.kind.as_str(), users = users.len(), "fan-out failed");
                return Vec::new();
            }
        };
        let Some(message) = push else { return Vec::new() };
        let candidates = published
            .into_iter()
            .map(|(user, published)| (role, user, published.routed_to, message.clone()))
            .collect();
        self.push_unreached(candidates).await
    }
}

enum LiveInstances {
    Known(Vec<String>),
    Unknown,
}

impl LiveInstances {
    fn contains(&self, instance: &String) -> bool {
        match self {
            Self::Known(live) => live.contains(instance),
            Self::Unknown => true,
        }
    }
}

/// An event for one user, with the push to send when none of their sockets is open.
pub struct Notice {
    pub role: Role,
    pub user: uuid::Uuid,
    pub event: Event,
    pub push: Option<PushMessage>,
}

impl Services {
    /// The hub instances alive now; when Redis cannot say, every instance named counts
    /// as alive (no push rather than a push per event on a hiccup).
    async fn live_instances(&self) -> LiveInstances {
        match self.store.live_instances(self.presence.lease_ms).await {
            Ok(live) => LiveInstances::Known(live),
            Err(error) => {
                tracing::warn!(%error, "could not read live hub instances");
                LiveInstances::Unknown
            }
        }
    }

    /// Publishes each notice's event (concurrently) and queues its push when the user had
    /// no socket to deliver it to. Returns the users reached only by push.
    /// A failure to publish one notice is logged and does not stop the others: the flow's
    /// state is already committed, and apps re-read it on resume.
    pub async fn notify(&self, notices: Vec<Notice>) -> Vec<uuid::Uuid> {
        use futures::StreamExt;
        let published = futures::stream::iter(notices)
            .map(|notice| async move {
                let routed = crate::events::publish(&self.store, &self.hub, notice.user, &notice.event).await;
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
                        candidates.push((notice.role, notice.user, published.routed_to, message));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, user = %notice.user, kind = notice.event.kind.as_str(), "publish failed")
                }
            }
        }
        self.push_unreached(candidates).await
    }

    /// Queues each candidate's push unless a live hub instance holds a socket of theirs.
    /// The live instances are read only when some candidate had a route at all.
    async fn push_unreached(
        &self,
        candidates: Vec<(Role, uuid::Uuid, Vec<String>, PushMessage)>,
    ) -> Vec<uuid::Uuid> {
        let live = if candidates.iter().any(|(_, _, routed_to, _)| !routed_to.is_empty()) {
            self.live_instances().await
        } else {
            LiveInstances::Known(Vec::new())
        };
        let mut pushed = Vec::new();
        for (role, user, routed_to, message) in candidates {
            if routed_to.iter().any(|instance| live.contains(instance)) {
                continue;
            }
            match self.jobs.push(Push { role, account: user, message }).await {
                Ok(()) => pushed.push(user),
                Err(error) => tracing::warn!(%error, %user, "could not queue a push"),
            }
        }
        pushed
    }
}
