//! One socket's task: reads client frames until the client leaves, the token expires, the
//! server asks it to close (account deactivated) or the process shuts down.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use domain::auth::Principal;
use futures::StreamExt;

use crate::registry::Close;
use crate::{CLOSE_TOKEN_EXPIRED, Inner};

/// Runs one socket to its end and records how it closed.
pub(crate) async fn run(mut socket: WebSocket, inner: &Inner, principal: Principal) {
    let metrics = &inner.metrics;
    metrics.hub_connections.inc();
    metrics.hub_connections_opened.with_label_values(&[principal.role.as_str()]).inc();
    let (_registration, mut closes) = inner.registry.register(principal.id);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let token_expires =
        tokio::time::sleep(Duration::from_secs(u64::try_from(principal.expires_at_s - now_s).unwrap_or(0)));
    tokio::pin!(token_expires);

    let close = |code: u16, reason: &str| Close { code, reason: reason.to_owned() };
    let ended = loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break Some(close(close_code::RESTART, "server restarting")),
            () = &mut token_expires => break Some(close(CLOSE_TOKEN_EXPIRED, "token_expired")),
            Some(requested) = closes.recv() => break Some(requested),
            frame = socket.next() => match frame {
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    break Some(close(frame.map_or(close_code::NORMAL, |f| f.code), "client closed"));
                }
                // A protocol error (e.g. a frame over the size limit) or a dropped connection.
                Some(Err(_)) => break None,
                None => break None,
            },
        }
    };
    let code = match ended {
        Some(Close { code, reason }) => {
            let frame = CloseFrame { code, reason: reason.into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
            code
        }
        None => close_code::ABNORMAL,
    };
    metrics.hub_connections.dec();
    metrics.hub_connections_closed.with_label_values(&[&code.to_string()]).inc();
}
