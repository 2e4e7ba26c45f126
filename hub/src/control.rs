//! Control messages from other processes over Redis pub/sub, e.g. the api closing a
//! deactivated mitra's sockets wherever they are connected.

use std::sync::Arc;
use std::time::Duration;

use domain::store::Store;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::registry::{Close, Registry};

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    DisconnectUser { user_id: Uuid, code: u16, reason: String },
}

/// Listens until `shutdown`, resubscribing after failures.
pub(crate) async fn listen(store: Store, registry: Arc<Registry>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut subscription = match store.subscribe_hub_control().await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "hub control subscription failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                message = subscription.next() => message,
            };
            let Some(message) = message else { break };
            match serde_json::from_str::<Control>(&message) {
                Ok(Control::DisconnectUser { user_id, code, reason }) => {
                    let closed = registry.close_user(user_id, &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing a user's sockets");
                }
                Err(error) => tracing::warn!(%error, "unreadable hub control message"),
            }
        }
        subscription.close().await;
    }
}
