//! The wire format (docs/PROTOCOL.md): JSON text frames with one envelope,
//! `{"type": ..., "id"?: ..., "ref"?: ..., "data"?: ...}`.

use serde::Deserialize;
use serde_json::{Value, json};

/// A frame from the app.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientFrame {
    #[serde(rename = "type")]
    pub kind: String,
    /// Echoed on the answer, so the app can match it to its command.
    #[serde(default, rename = "ref")]
    pub reference: Option<Value>,
    #[serde(default)]
    pub data: Value,
}

/// A server frame of `kind` with `data`, answering `reference` when given.
pub(crate) fn frame(kind: &str, data: Value, reference: Option<&Value>) -> String {
    let mut frame = json!({ "type": kind, "data": data });
    if let (Some(reference), Some(object)) = (reference, frame.as_object_mut()) {
        object.insert("ref".into(), reference.clone());
    }
    frame.to_string()
}

/// An `error` frame; the connection stays up.
pub(crate) fn error_frame(code: &str, message: &str, reference: Option<&Value>) -> String {
    frame("error", json!({ "code": code, "message": message }), reference)
}

/// An `error` frame for a refused command, with the domain's stable code. Internal details
/// are logged, never sent; an unavailable store says so and that a retry may work.
pub(crate) fn domain_error_frame(
    error: &dyn domain::error::DomainError,
    reference: Option<&Value>,
) -> String {
    use domain::error::ErrorKind;
    let (message, retryable) = match error.kind() {
        ErrorKind::Internal => {
            tracing::error!(%error, code = error.code(), "command failed");
            ("something went wrong on our side".to_owned(), false)
        }
        ErrorKind::Unavailable => {
            tracing::warn!(%error, code = error.code(), "command failed: dependency unavailable");
            ("the service is temporarily unavailable; retry shortly".to_owned(), true)
        }
        _ => (error.to_string(), false),
    };
    let mut data = json!({ "code": error.code(), "message": message });
    for (field, value) in error.details() {
        data[field] = value;
    }
    if retryable {
        data["retryable"] = json!(true);
    }
    frame("error", data, reference)
}

/// An event frame: the stored event (`{"type", "data"}`) with its stream id added.
pub(crate) fn event_frame(event: &str, id: Option<&str>) -> String {
    match (id, event.strip_prefix('{')) {
        (Some(id), Some(rest)) => format!("{{\"id\":\"{id}\",{rest}"),
        _ => event.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_frame_carries_its_id_in_the_envelope() {
        let frame = event_frame(r#"{"type":"paired","data":{"x":1}}"#, Some("17-3"));
        let value: Value = serde_json::from_str(&frame).expect("valid JSON");
        assert_eq!(value, json!({"id": "17-3", "type": "paired", "data": {"x": 1}}));
        let ephemeral = event_frame(r#"{"type":"typing","data":{}}"#, None);
        assert_eq!(
            serde_json::from_str::<Value>(&ephemeral).expect("json"),
            json!({"type": "typing", "data": {}})
        );
    }

    #[test]
    fn answers_echo_the_reference() {
        let pong: Value = serde_json::from_str(&frame("pong", json!({}), Some(&json!("r1")))).expect("json");
        assert_eq!(pong, json!({"type": "pong", "ref": "r1", "data": {}}));
    }
}
