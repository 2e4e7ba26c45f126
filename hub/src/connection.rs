//! One socket's task: reads client frames until the client leaves or the process shuts down.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use domain::metrics::Metrics;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Runs one socket to its end and records how it closed.
pub(crate) async fn run(mut socket: WebSocket, metrics: Metrics, shutdown: CancellationToken) {
    metrics.hub_connections.inc();
    metrics
        .hub_connections_opened
        .with_label_values(&["any"])
        .inc();
    let code = loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let frame = CloseFrame { code: close_code::RESTART, reason: "server restarting".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break close_code::RESTART;
            }
            frame = socket.next() => match frame {
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => break frame.map_or(close_code::NORMAL, |f| f.code),
                // A protocol error (e.g. a frame over the size limit) or a dropped connection.
                Some(Err(_)) => break close_code::PROTOCOL,
                None => break close_code::ABNORMAL,
            },
        }
    };
    metrics.hub_connections.dec();
    metrics
        .hub_connections_closed
        .with_label_values(&[&code.to_string()])
        .inc();
}
