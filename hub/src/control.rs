//! Control messages from other processes over Redis pub/sub, e.g. the api closing a
//! deactivated mitra's sockets wherever they are connected.

use std::sync::Arc;
use std::time::Duration;

use domain::Store;
use domain::ids::{SignInId, TokenId, UserId};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::registry::{Close, Registry, Sockets};

#[derive(Deserialize)]
#[serde(tag = "kind")]
enum Control {
    /// Close every socket of the user (account deactivated).
    #[serde(rename = "disconnect_user")]
    User { user_id: UserId, code: u16, reason: String },
    /// Close the sockets opened with one access token (logout).
    #[serde(rename = "disconnect_token")]
    Token { user_id: UserId, token_id: TokenId, code: u16, reason: String },
    /// Close the sockets opened with the tokens of one sign-in (a replayed refresh token).
    #[serde(rename = "disconnect_sign_in")]
    SignIn { user_id: UserId, sign_in: SignInId, code: u16, reason: String },
}

/// Listens until `shutdown`, resubscribing after failures.
pub(crate) async fn listen(store: Store, registry: Arc<Registry>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut subscription = match domain::broker::hub_control(&store).await {
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
                Ok(Control::User { user_id, code, reason }) => {
                    let closed = registry.close_user(user_id, Sockets::All, &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing a user's sockets");
                }
                Ok(Control::Token { user_id, token_id, code, reason }) => {
                    let closed =
                        registry.close_user(user_id, Sockets::OfToken(token_id), &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing the sockets of a revoked token");
                }
                Ok(Control::SignIn { user_id, sign_in, code, reason }) => {
                    let closed =
                        registry.close_user(user_id, Sockets::OfSignIn(sign_in), &Close { code, reason });
                    tracing::info!(%user_id, code, closed, "closing the sockets of a revoked sign-in");
                }
                Err(error) => tracing::warn!(%error, "unreadable hub control message"),
            }
        }
        subscription.close().await;
    }
}
