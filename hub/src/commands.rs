//! The commands an app sends over its socket (docs/PROTOCOL.md §4): parsed at once, then
//! answered either on the spot (`ping`, malformed or refused frames, throttled typing) or by
//! a task of their own, so a command waiting on Postgres holds up neither the socket's
//! events nor its commands about other chat sessions.
//!
//! Commands about one chat session run one at a time, in the order they came; the
//! [`Lanes`] of a socket enforce that and bound how many run at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::auth::Principal;
use domain::broker::SocketRef;
use domain::chat::{self, Receipt};
use domain::error::DomainError;
use domain::ids::SessionId;
use domain::metrics::Metrics;
use futures::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::Inner;
use crate::protocol::{self, ClientFrame};

/// The commands an app may send; anything else is `unknown`.
const COMMANDS: [&str; 5] = ["ping", "send_message", "mark_delivered", "mark_read", "typing"];

/// How often one socket may announce typing; more often is acknowledged and dropped.
const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Commands of one socket running at once (each about a different chat session).
const MAX_RUNNING: usize = 8;
/// Commands of one socket running or waiting; past it the socket is not read until one
/// ends (the client's writes back up in TCP).
const MAX_PENDING: usize = 32;

/// An answer frame: its type (for the frame metrics) and its text.
pub(crate) type Answer = (&'static str, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    session_id: SessionId,
    client_msg_id: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    session_id: SessionId,
    up_to_seq: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Typing {
    session_id: SessionId,
}

/// What a socket remembers between commands.
#[derive(Default)]
pub(crate) struct CommandState {
    last_typing: Option<tokio::time::Instant>,
}

/// A parsed command: answered now, or work on one chat session.
pub(crate) enum Command {
    Answer(Answer),
    Work(Work),
}

/// A command that needs the stores.
pub(crate) struct Work {
    session: SessionId,
    reference: Option<Value>,
    action: Action,
}

impl Work {
    /// The command's `ref`, for the answer.
    pub(crate) fn reference(&self) -> Option<&Value> {
        self.reference.as_ref()
    }
}

enum Action {
    Send { client_msg_id: String, body: String },
    Mark { receipt: Receipt, up_to_seq: i64 },
    Typing,
}

/// Parses one text frame. Malformed and unknown commands get an error frame with a stable
/// code; a typing announcement within [`TYPING_EVERY`] of the last is acknowledged and dropped.
/// Touches nothing but `metrics` and `state`, so it can run without a hub ([`decode_command`]).
pub(crate) fn parse(text: &str, metrics: &Metrics, state: &mut CommandState) -> Command {
    let frame = match read_frame(text) {
        Ok(frame) => frame,
        Err(error) => {
            metrics.hub_frames_in.with_label_values(&["invalid"]).inc();
            return Command::Answer(("error", protocol::error_frame("invalid_frame", &error, None)));
        }
    };
    let reference = frame.reference;
    let kind = COMMANDS.iter().find(|known| **known == frame.kind).copied().unwrap_or("unknown");
    metrics.hub_frames_in.with_label_values(&[kind]).inc();
    let invalid = |error: String, reference: Option<Value>| {
        let message = format!("{kind}: {error}");
        Command::Answer(("error", protocol::error_frame("invalid_command", &message, reference.as_ref())))
    };
    let (session, action) = match kind {
        "ping" => return Command::Answer(("pong", protocol::frame("pong", json!({}), reference.as_ref()))),
        "send_message" => match read_data::<SendMessage>(frame.data) {
            Ok(data) => {
                (data.session_id, Action::Send { client_msg_id: data.client_msg_id, body: data.body })
            }
            Err(error) => return invalid(error, reference),
        },
        "mark_delivered" | "mark_read" => match read_data::<Mark>(frame.data) {
            Ok(data) => {
                let receipt = if kind == "mark_read" { Receipt::Read } else { Receipt::Delivered };
                (data.session_id, Action::Mark { receipt, up_to_seq: data.up_to_seq })
            }
            Err(error) => return invalid(error, reference),
        },
        "typing" => match read_data::<Typing>(frame.data) {
            Ok(data) => {
                let now = tokio::time::Instant::now();
                if state.last_typing.is_some_and(|last| now.duration_since(last) < TYPING_EVERY) {
                    let ack = protocol::frame("ack", json!({ "throttled": true }), reference.as_ref());
                    return Command::Answer(("ack", ack));
                }
                state.last_typing = Some(now);
                (data.session_id, Action::Typing)
            }
            Err(error) => return invalid(error, reference),
        },
        _ => {
            let message = format!("unknown command {:?}", frame.kind);
            let error = protocol::error_frame("unknown_command", &message, reference.as_ref());
            return Command::Answer(("error", error));
        }
    };
    Command::Work(Work { session, reference, action })
}

/// The envelope of a frame. serde also reads a struct from an array of its fields in order
/// (`["ping", 7]`); the protocol takes objects only (found by the `ws_command` fuzz target).
fn read_frame(text: &str) -> Result<ClientFrame, String> {
    let frame: ClientFrame = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        Ok(frame)
    } else {
        Err("a frame is a JSON object, not an array".to_owned())
    }
}

/// A command's `data`: an object, as the envelope.
fn read_data<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, String> {
    if data.is_array() {
        return Err("data is a JSON object, not an array".to_owned());
    }
    serde_json::from_value(data).map_err(|error| error.to_string())
}

/// What a socket does with one client text frame, as its decoder ([`decode_command`]) decides.
#[derive(Debug)]
pub enum Decoded {
    /// Answered at once with this frame: `pong`, or an `error` (`invalid_frame`,
    /// `invalid_command`, `unknown_command`).
    Answer { kind: &'static str, frame: String },
    /// A well-formed command about one chat session, answered once it has run against the stores.
    Command { session_id: SessionId },
}

/// The socket's decoder (docs/PROTOCOL.md §4): what a freshly opened socket does with the
/// client text frame `text`, run without a hub, Redis or Postgres. Counts into metrics of its
/// own, never the process's. The `ws_command` fuzz target (fuzz/) drives it.
pub fn decode_command(text: &str) -> Decoded {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    let metrics = METRICS.get_or_init(Metrics::new);
    match parse(text, metrics, &mut CommandState::default()) {
        Command::Answer((kind, frame)) => Decoded::Answer { kind, frame },
        Command::Work(work) => Decoded::Command { session_id: work.session },
    }
}

/// Runs one command against the stores; a refusal is an error frame with the domain's code.
async fn run(work: Work, inner: &Inner, principal: &Principal, origin: &SocketRef) -> Answer {
    let reference = work.reference.as_ref();
    let refused = |error: &dyn DomainError| ("error", protocol::domain_error_frame(error, reference));
    let ack = |data: Value| ("ack", protocol::frame("ack", data, reference));
    match work.action {
        Action::Send { client_msg_id, body } => {
            match chat::send(&inner.services, principal, Some(origin), work.session, &client_msg_id, &body)
                .await
            {
                Ok((message, stored_now)) => {
                    let data =
                        json!({ "message": chat::MessageView::from(message), "duplicate": !stored_now });
                    ("message_ack", protocol::frame("message_ack", data, reference))
                }
                Err(error) => refused(&error),
            }
        }
        Action::Mark { receipt, up_to_seq } => {
            match chat::mark(&inner.services, principal, work.session, receipt, up_to_seq).await {
                Ok(_) => ack(json!({})),
                Err(error) => refused(&error),
            }
        }
        Action::Typing => match chat::typing(&inner.store, principal, work.session).await {
            Ok(()) => ack(json!({ "throttled": false })),
            Err(error) => refused(&error),
        },
    }
}

/// A running command: its session and the task answering it.
type Running = FuturesUnordered<RunningCommand>;

/// One command's task, yielding its session (to free the lane) and its answer.
pub(crate) struct RunningCommand {
    session: SessionId,
    task: JoinHandle<Answer>,
}

impl std::future::Future for RunningCommand {
    type Output = (SessionId, Answer);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let session = self.session;
        std::pin::Pin::new(&mut self.task).poll(cx).map(|joined| {
            let answer = joined.unwrap_or_else(|error| {
                tracing::error!(%error, "a command task failed");
                ("error", protocol::error_frame("internal", "something went wrong on our side", None))
            });
            (session, answer)
        })
    }
}

/// The commands of one socket that are running or waiting for their session's lane.
/// Tasks are tracked by the hub, so a shutdown waits for them and a closing socket does
/// not cut a send between storing and delivering.
pub(crate) struct Lanes {
    running: Running,
    waiting: VecDeque<Work>,
    /// The socket the commands came in on: the events they cause skip it.
    origin: SocketRef,
}

impl Lanes {
    pub(crate) fn new(origin: SocketRef) -> Self {
        Self { running: Running::default(), waiting: VecDeque::new(), origin }
    }

    /// Whether the socket may read another command.
    pub(crate) fn has_room(&self) -> bool {
        self.running.len() + self.waiting.len() < MAX_PENDING
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.running.is_empty()
    }

    /// Queues `work` and starts whatever may run.
    pub(crate) fn submit(&mut self, work: Work, inner: &Arc<Inner>, principal: Principal) {
        self.waiting.push_back(work);
        self.start_ready(inner, principal);
    }

    /// The next answer of a running command; frees its session's lane and starts what
    /// waited for it. Pending for ever while nothing runs (guard the call with
    /// [`is_idle`](Self::is_idle)).
    pub(crate) async fn next_answer(&mut self, inner: &Arc<Inner>, principal: Principal) -> Answer {
        use futures::StreamExt;
        let Some((_, answer)) = self.running.next().await else { return std::future::pending().await };
        self.start_ready(inner, principal);
        answer
    }

    /// Starts waiting commands in arrival order, skipping those whose session already has a
    /// command running (a later command of that session then waits too: the running one
    /// came first).
    fn start_ready(&mut self, inner: &Arc<Inner>, principal: Principal) {
        let mut index = 0;
        while index < self.waiting.len() && self.running.len() < MAX_RUNNING {
            let session = self.waiting[index].session;
            if self.running.iter().any(|running| running.session == session) {
                index += 1;
                continue;
            }
            let Some(work) = self.waiting.remove(index) else { break };
            let (owner, origin) = (inner.clone(), self.origin.clone());
            let task = inner.tasks.spawn(async move { run(work, &owner, &principal, &origin).await });
            self.running.push(RunningCommand { session, task });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn answer(text: &str) -> Value {
        match decode_command(text) {
            Decoded::Answer { kind, frame } => {
                let frame: Value = serde_json::from_str(&frame).expect("a JSON frame");
                assert_eq!(frame["type"], kind, "{frame}");
                frame
            }
            Decoded::Command { session_id } => panic!("answered later, about {session_id}"),
        }
    }

    #[test]
    fn the_decoder_answers_the_documented_frames() {
        assert_eq!(answer(r#"{"type":"ping","ref":7}"#), json!({"type": "pong", "ref": 7, "data": {}}));
        let unknown = answer(r#"{"type":"subscribe","ref":"a1"}"#);
        assert_eq!((&unknown["data"]["code"], &unknown["ref"]), (&json!("unknown_command"), &json!("a1")));
        assert_eq!(answer("{not json")["data"]["code"], "invalid_frame");
        assert_eq!(answer(r#"{"type":1}"#)["data"]["code"], "invalid_frame");
        let data = r#"{"type":"send_message","ref":1,"data":{"session_id":"x"}}"#;
        assert_eq!(
            (&answer(data)["data"]["code"], &answer(data)["ref"]),
            (&json!("invalid_command"), &json!(1))
        );
    }

    /// serde reads a struct from an array of its fields in order too; the protocol takes
    /// objects only (found by the `ws_command` fuzz target: `["ping", 7]` was answered `pong`).
    #[test]
    fn a_frame_or_data_that_is_an_array_is_refused() {
        assert_eq!(answer(r#"["ping",7]"#)["data"]["code"], "invalid_frame");
        assert_eq!(answer(r#" ["pm1","ref"]"#)["data"]["code"], "invalid_frame");
        let session = SessionId(uuid::Uuid::new_v4());
        let data = json!({"type": "mark_read", "ref": 1, "data": [session, 3]}).to_string();
        assert_eq!(
            (&answer(&data)["data"]["code"], &answer(&data)["ref"]),
            (&json!("invalid_command"), &json!(1))
        );
        let typing = json!({"type": "typing", "data": [session]}).to_string();
        assert_eq!(answer(&typing)["data"]["code"], "invalid_command");
    }

    #[test]
    fn a_well_formed_command_is_left_for_the_stores() {
        let session = SessionId(uuid::Uuid::new_v4());
        let text = json!({"type": "mark_read", "data": {"session_id": session, "up_to_seq": 3}}).to_string();
        assert!(matches!(decode_command(&text), Decoded::Command { session_id } if session_id == session));
    }
}
