//! Graceful shutdown of the in-process application: sockets close with 1012, the run
//! returns cleanly and well within 10 s.

use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::TestApp;

/// Reads frames until a close frame; returns its code.
pub async fn close_code<S>(socket: &mut S) -> Option<CloseCode>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012_and_stops_cleanly() {
    let mut app = TestApp::spawn().await;
    let (mut first, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("first socket");
    let (mut second, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("second socket");

    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    assert!(stopped.expect("stopped within 10 s").is_ok());
    assert_eq!(close_code(&mut first).await, Some(CloseCode::Restart));
    assert_eq!(close_code(&mut second).await, Some(CloseCode::Restart));

    // The listeners are gone.
    assert!(app.http.get(app.internal_url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn sockets_past_the_limit_are_refused_before_the_upgrade() {
    let app = TestApp::spawn_with(|s| s.hub.max_connections = 1).await;
    let (_held, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("first socket");
    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("json body");
            assert_eq!(body["error"]["code"], "hub_full");
        }
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
}
