//! The hub's decoding of a client text frame (`hub::decode_command`, docs/PROTOCOL.md §4).
//!
//! Property: for any UTF-8 text (a socket only ever hands the decoder valid UTF-8), the
//! decoder does not panic, and either answers at once with a JSON frame of the documented
//! shape (`pong`, or an `error` whose code is `invalid_frame`, `invalid_command` or
//! `unknown_command`, echoing a non-null `ref` except on `invalid_frame`), or leaves a
//! well-formed command about the chat session its `data` names for the stores. Only a JSON
//! object is read as a frame (serde would also read an array of the fields in order).
//!
//! The `ref` and the session are checked against the text read as a JSON value, when it can
//! be one: the decoder skips the fields it ignores without decoding them, so a frame with a
//! lone surrogate escape (`"\ud800"`) in an ignored field is a command to it, yet no value
//! (found by this target; the answer is right).

#![no_main]

use hub::Decoded;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The commands that reach the stores (PROTOCOL.md §4).
const STORE_COMMANDS: [&str; 4] = ["send_message", "mark_delivered", "mark_read", "typing"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sent: Option<Value> = serde_json::from_str(text).ok();
    // The echo is the `ref` the hub read, written out and read back here: a number beyond
    // 64-bit integers is read as a float, and the float read from its written form may differ
    // from the one read from the original digits in the last place (PROTOCOL.md §2).
    let sent_ref = sent
        .as_ref()
        .and_then(|sent| sent.get("ref"))
        .filter(|r| !r.is_null())
        .map(|r| serde_json::from_str::<Value>(&r.to_string()).unwrap_or_else(|_| r.clone()));
    let echoes = |frame: &Value| sent.is_none() || frame.get("ref") == sent_ref.as_ref();
    let object = text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{');
    match hub::decode_command(text) {
        Decoded::Answer { kind, frame } => {
            let frame: Value = serde_json::from_str(&frame).expect("an answer is JSON");
            assert_eq!(frame["type"], kind, "the frame is of its kind: {frame}");
            assert!(frame["data"].is_object(), "every server frame has data: {frame}");
            let code = frame["data"]["code"].as_str();
            assert!(object || code == Some("invalid_frame"), "an array read as a frame: {frame}");
            match kind {
                "pong" => assert!(echoes(&frame), "pong echoes ref: {frame}"),
                "error" => {
                    let code = frame["data"]["code"].as_str().expect("an error has a code");
                    assert!(frame["data"]["message"].is_string(), "an error has a message: {frame}");
                    match code {
                        "invalid_frame" => assert!(frame.get("ref").is_none(), "no ref: {frame}"),
                        "invalid_command" | "unknown_command" => {
                            assert!(echoes(&frame), "the error echoes ref: {frame}")
                        }
                        other => panic!("undocumented error code {other:?}: {frame}"),
                    }
                }
                other => panic!("a fresh socket answers {other:?} at once: {frame}"),
            }
        }
        Decoded::Command { session_id } => {
            assert!(object, "an array read as a command");
            let Some(sent) = sent else { return };
            let kind = sent["type"].as_str().expect("a command has a string type");
            assert!(STORE_COMMANDS.contains(&kind), "{kind:?} does not reach the stores");
            let named = sent["data"]["session_id"].as_str().and_then(|id| id.parse().ok());
            assert_eq!(named, Some(session_id), "the command is about the session its data names");
        }
    }
});
