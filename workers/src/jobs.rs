//! The job queue the rules use ([`domain::jobs::Jobs`]), on the Postgres job tables.

use domain::Store;
use domain::jobs::{JobError, Jobs, Push, Timer};
use futures::future::BoxFuture;

use crate::{send_push, timers};

/// Queues timers and pushes in Postgres, for whichever worker process runs them.
#[derive(Clone)]
pub struct PgJobs {
    timers: timers::Storage,
    pushes: send_push::Storage,
}

impl PgJobs {
    pub fn new(store: &Store) -> Self {
        Self { timers: timers::storage(store), pushes: send_push::storage(store) }
    }
}

impl Jobs for PgJobs {
    fn schedule(&self, timer: Timer) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move {
            let mut storage = self.timers.clone();
            timers::schedule(&mut storage, timer.kind, timer.key, timer.due_at_ms)
                .await
                .map_err(|e| JobError(e.to_string()))
        })
    }

    fn push(&self, push: Push) -> BoxFuture<'_, Result<(), JobError>> {
        Box::pin(async move {
            let mut storage = self.pushes.clone();
            send_push::enqueue(&mut storage, push).await.map_err(|e| JobError(e.to_string()))
        })
    }
}
