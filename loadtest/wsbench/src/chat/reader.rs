//! The socket readers: each frame stamped on arrival, acks, errors and the other party's
//! messages into the ledger, pairing events to the set-up.

use super::*;

/// A message's number, from the `client_msg_id` this bench gave it (`m<n>`).
pub(super) fn number_of(client_msg_id: &Value) -> Option<u64> {
    client_msg_id.as_str()?.strip_prefix('m')?.parse().ok()
}

/// Reads one socket until it ends: acks, errors and the other party's messages go to the
/// ledger, pairing events to `control`.
pub(super) fn spawn_reader(
    side: Side,
    index: usize,
    mut stream: SplitStream<Socket>,
    ledger: Arc<Ledger>,
    control: mpsc::UnboundedSender<Control>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let how = loop {
            let message = match stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => break format!("read error: {error}"),
                None => break "ended without a close frame".to_owned(),
            };
            let at = Instant::now();
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    break frame.map_or("closed".to_owned(), |f| format!("closed {} {}", f.code, f.reason));
                }
                _ => continue,
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            let data = &frame["data"];
            match (frame["type"].as_str().unwrap_or_default(), side) {
                ("message_ack", _) => ledger.acked(frame["ref"].as_u64(), at),
                ("error", _) => ledger.error(&frame),
                ("chat_message", _) => {
                    let message = &data["message"];
                    // The sender's own sockets get its messages too.
                    if message["sender_role"].as_str() != Some(side.role()) {
                        ledger.delivered(number_of(&message["client_msg_id"]), at);
                    }
                }
                ("chat_request", Side::Mitra) => {
                    if let Some(request) = data["request_id"].as_str().and_then(|id| id.parse().ok()) {
                        let _ = control.send(Control::Offered { mitra: index, request });
                    }
                }
                ("paired", Side::Customer) => {
                    let session = data["chat_session"]["id"].as_str().and_then(|id| id.parse().ok());
                    let mitra = data["mitra"]["id"].as_str().and_then(|id| id.parse().ok());
                    if let (Some(session), Some(mitra)) = (session, mitra) {
                        let _ = control.send(Control::Paired { customer: index, session, mitra });
                    }
                }
                ("pairing_failed", Side::Customer) => {
                    let cause = data["cause_tag"].as_str().unwrap_or("?").to_owned();
                    let _ = control.send(Control::Failed { customer: index, cause });
                }
                (kind, _) => ledger.other(kind),
            }
        };
        lock(&ledger.closes).push(Closed { side, index, how, at: Instant::now() });
    })
}
