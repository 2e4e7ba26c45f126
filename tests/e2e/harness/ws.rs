//! `WsClient`: a test's WebSocket client that behaves like an app.

use super::*;

/// A WebSocket client for tests that behaves like an app: a task keeps reading the socket
/// (so the library answers the server's pings, as a foreground app's does) and queues the
/// frames for the test. [`WsClient::stop_reading`] makes it a suspended app: the connection
/// stays open and nothing is read, so no pong answers a ping.
pub struct WsClient {
    frames: tokio::sync::mpsc::UnboundedReceiver<Received>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    reading: bool,
}

/// What the reading task hands over.
enum Received {
    Text(String),
    Close(Option<(u16, String)>),
    Other(String),
    /// The connection ended without a close frame.
    Ended,
}

enum Control {
    Send(tokio_tungstenite::tungstenite::Message, tokio::sync::oneshot::Sender<bool>),
    Reading(bool, tokio::sync::oneshot::Sender<()>),
}

/// How long a test waits for a frame before failing.
const FRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Owns the socket: reads while told to (pings are answered by the library as it reads),
/// sends what the test sends. Ends when the test drops its client or the connection ends.
async fn drive(
    mut socket: Socket,
    frames: tokio::sync::mpsc::UnboundedSender<Received>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut reading = true;
    let mut ended = false;
    loop {
        tokio::select! {
            command = control.recv() => match command {
                Some(Control::Send(message, done)) => {
                    let _ = done.send(socket.send(message).await.is_ok());
                }
                Some(Control::Reading(on, done)) => {
                    reading = on;
                    let _ = done.send(());
                }
                None => return,
            },
            frame = socket.next(), if reading && !ended => {
                let received = match frame {
                    Some(Ok(Message::Text(text))) => Received::Text(text.to_string()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        Received::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Some(Ok(other)) => Received::Other(format!("{other:?}")),
                    None | Some(Err(_)) => {
                        ended = true;
                        Received::Ended
                    }
                };
                if frames.send(received).is_err() {
                    return;
                }
            }
        }
    }
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket opens");
        let (frames_tx, frames) = tokio::sync::mpsc::unbounded_channel();
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(drive(socket, frames_tx, control_rx));
        Self { frames, control, reading: true }
    }

    /// Connects and reads the `welcome` frame.
    pub async fn connect_welcomed(url: &str) -> Self {
        let mut client = Self::connect(url).await;
        let welcome = client.next_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client
    }

    /// Stops reading the socket, as a suspended app or a phone without network: the TCP
    /// connection stays open, nothing is read, no ping is answered. Any later read resumes.
    pub async fn stop_reading(&mut self) {
        self.set_reading(false).await;
    }

    async fn set_reading(&mut self, on: bool) {
        if self.reading == on {
            return;
        }
        let (done, acknowledged) = tokio::sync::oneshot::channel();
        if self.control.send(Control::Reading(on, done)).is_ok() {
            let _ = acknowledged.await;
        }
        self.reading = on;
    }

    async fn receive(&mut self, deadline: tokio::time::Instant) -> Option<Received> {
        self.set_reading(true).await;
        tokio::time::timeout_at(deadline, self.frames.recv())
            .await
            .ok()
            .map(|frame| frame.unwrap_or(Received::Ended))
    }

    /// The next text frame as JSON; panics on a close or after 10 s.
    pub async fn next_json(&mut self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        match self.receive(deadline).await.expect("a frame within 10 s") {
            Received::Text(text) => serde_json::from_str(&text).expect("JSON frame"),
            Received::Close(frame) => panic!("expected a text frame, got a close {frame:?}"),
            Received::Other(other) => panic!("expected a text frame, got {other}"),
            Received::Ended => panic!("expected a text frame, the connection ended"),
        }
    }

    /// The next text frame as JSON, or `None` when none arrives within `wait`; panics on a
    /// close (the socket was expected to stay open).
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<serde_json::Value> {
        match self.receive(tokio::time::Instant::now() + wait).await? {
            Received::Text(text) => Some(serde_json::from_str(&text).expect("JSON frame")),
            Received::Close(frame) => panic!("expected a text frame, got a close {frame:?}"),
            Received::Other(other) => panic!("expected a text frame, got {other}"),
            Received::Ended => panic!("expected a text frame, the connection ended"),
        }
    }

    /// Reads until the close frame; returns its code and reason (1006 when the connection
    /// ended without one).
    pub async fn closed(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            match self.receive(deadline).await.expect("closed within 10 s") {
                Received::Close(Some(frame)) => return frame,
                Received::Close(None) | Received::Ended => return (1006, String::new()),
                Received::Text(_) | Received::Other(_) => continue,
            }
        }
    }

    /// Sends the command `kind` with `data` and reads until its answer (matched by `ref`),
    /// passing over the events that come first.
    pub async fn command(&mut self, kind: &str, data: serde_json::Value) -> serde_json::Value {
        let reference = uuid::Uuid::new_v4().to_string();
        self.send_json(serde_json::json!({"type": kind, "ref": reference, "data": data})).await;
        loop {
            let frame = self.next_json().await;
            if frame["ref"] == reference.as_str() {
                return frame;
            }
        }
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.send(tokio_tungstenite::tungstenite::Message::Text(text.into())).await;
    }

    async fn send(&mut self, message: tokio_tungstenite::tungstenite::Message) {
        let (done, sent) = tokio::sync::oneshot::channel();
        assert!(self.control.send(Control::Send(message, done)).is_ok(), "the socket's task ended");
        assert!(sent.await.unwrap_or(false), "send");
    }

    /// Closes with `code` and reason `test`; returns the server's answer as the client
    /// library records it (1006 when the connection ended without one).
    pub async fn close_with(&mut self, code: u16) -> (u16, String) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame { code: code.into(), reason: "test".into() };
        self.send(tokio_tungstenite::tungstenite::Message::Close(Some(frame))).await;
        self.closed().await
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send(tokio_tungstenite::tungstenite::Message::Binary(bytes.into())).await;
    }
}
