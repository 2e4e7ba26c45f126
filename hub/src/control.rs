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
    /// Close every socket of the user (account deactivated).
    DisconnectUser { user_id: Uuid, code: u16, reason: String },
    /// Close the sockets opened with one access token (logout).
    DisconnectToken { user_id: Uuid, token_id: Uuid, code: u16, reason: String },
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
                    let closed = registry.close_user(user_id, None, &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing a user's sockets");
                }
                Ok(Control::DisconnectToken { user_id, token_id, code, reason }) => {
                    let closed = registry.close_user(user_id, Some(token_id), &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing the sockets of a revoked token");
                }
                Err(error) => tracing::warn!(%error, "unreadable hub control message"),
            }
        }
        subscription.close().await;
    }
}
