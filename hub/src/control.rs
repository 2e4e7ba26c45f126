//! Control messages from other processes over Redis pub/sub, e.g. the api closing a
//! deactivated mitra's sockets wherever they are connected.

use std::sync::Arc;
use std::time::Duration;

use domain::Store;
use domain::broker::Received;
use domain::ids::{SignInId, TokenId, UserId};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::instance::resync_frame;
use crate::registry::{Close, Registry, Sockets};

/// The `reason` of a `resync_required` for events that could not be published.
const UNPUBLISHED: &str = "the server could not deliver some events (its event store failed over or was unreachable); refetch over REST";

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
    /// Events for these users could not be published (`domain::broker::announce_unpublished`):
    /// their sockets get `resync_required`.
    #[serde(rename = "resync_users")]
    Resync { user_ids: Vec<UserId> },
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
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                received = subscription.receive() => received,
            };
            let message = match received {
                Received::Text(message) => message,
                Received::Closed => break,
                Received::Gap => {
                    // A reconnect (or a reader too slow): a `resync_users` may have been
                    // missed, so every socket here is told to resync.
                    let sockets = registry.deliver_to_all(&resync_frame(UNPUBLISHED));
                    tracing::warn!(
                        sockets,
                        "hub control messages may have been lost; sockets told to resync"
                    );
                    continue;
                }
            };
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
                Ok(Control::Resync { user_ids }) => {
                    let frame = resync_frame(UNPUBLISHED);
                    let sockets: usize =
                        user_ids.iter().map(|user| registry.deliver(*user, &frame, None)).sum();
                    tracing::info!(
                        users = user_ids.len(),
                        sockets,
                        "events were not published: sockets told to resync"
                    );
                }
                Err(error) => tracing::warn!(%error, "unreadable hub control message"),
            }
        }
    }
}
