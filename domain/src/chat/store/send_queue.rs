//! The process's chat sends, stored in batches: group commit.
//!
//! A send alone is one statement and one commit; at thousands of messages per second Postgres
//! spends more on the statements and commits (round trips, planning, constraint set-up,
//! wakeups, WAL flushes) than on the rows. Sends join one queue; one task takes whatever is
//! waiting and stores it with [`crate::chat::store::send_batch`], one batch at a time. No send
//! waits for a batch to fill: when sends are few, a batch holds one message; while a batch
//! is being stored, the next collects everything that arrives meanwhile. (One batch at a time
//! measured better than two or four in flight: see docs/BENCHMARKS.md, chat.)

use std::collections::HashSet;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::chat::store::{NewMessage, Sent, send_batch};

/// The most messages in one statement.
const MAX_BATCH: usize = 128;
/// Sends waiting for a batch; a sender waits for room beyond that.
const QUEUE: usize = 4_096;

struct Queued {
    message: NewMessage,
    /// `Some` once stored by the batch; `None` when the caller is to send it alone.
    stored: oneshot::Sender<Option<Sent>>,
}

/// The handle in every clone of a [`crate::store::Store`]; the task ends with the last clone.
pub(crate) struct SendQueue {
    queue: mpsc::Sender<Queued>,
}

impl SendQueue {
    /// Starts the task that stores the queue's batches with `pg`.
    pub(crate) fn start(pg: PgPool) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(store_batches(pg, waiting));
        Self { queue }
    }

    /// Stores `message` with whatever else is waiting; `None` when the batch did not store it
    /// (see [`crate::store::Store::send_batch`]) or failed, and the caller is to send it alone.
    pub(crate) async fn send(&self, message: NewMessage) -> Option<Sent> {
        let (stored, answer) = oneshot::channel();
        self.queue.send(Queued { message, stored }).await.ok()?;
        answer.await.ok().flatten()
    }
}

async fn store_batches(pg: PgPool, mut waiting: mpsc::Receiver<Queued>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        // A sender's `client_msg_id` twice in one statement would fail it as a whole: the
        // second goes alone (and finds the first once that is stored).
        let mut keys: HashSet<(crate::ids::UserId, String)> = HashSet::new();
        keys.insert(batch[0].message.key());
        while batch.len() < MAX_BATCH {
            let Ok(next) = waiting.try_recv() else { break };
            if keys.insert(next.message.key()) {
                batch.push(next);
            } else {
                let _ = next.stored.send(None);
            }
        }
        let (messages, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|queued| (queued.message, queued.stored)).unzip();
        let stored = match send_batch(&pg, &messages).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::debug!(%error, messages = messages.len(), "batch failed; each send goes alone");
                vec![None; messages.len()]
            }
        };
        for (reply, sent) in replies.into_iter().zip(stored) {
            // The sender may have gone (its socket closed): the message is stored anyway,
            // and a resend finds it.
            let _ = reply.send(sent);
        }
    }
}
