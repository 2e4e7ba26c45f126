//! Every JSON request body the api accepts, decoded as its handler's extractor decodes it
//! behind the listeners' body limit (`api::bodies::decode_request_body`).
//!
//! Input: byte 0 picks the body type (`api::bodies::REQUEST_BODIES`, modulo its length),
//! byte 1 the content type (low bits: [`CONTENT_TYPES`]; the high bit pads the body with
//! white space past the body limit), the rest is the body.
//!
//! Property: no panic; a refusal is one of the documented 400 `invalid_json` /
//! `invalid_body`, 413 `payload_too_large` (only past the limit), 415
//! `unsupported_media_type` (never with `application/json`), never a 5xx, and its response
//! carries the JSON error body; an accepted body is a JSON object (or empty or `null`, where
//! the body is optional) sent within the limit.

#![no_main]

use api::MAX_BODY_BYTES;
use api::bodies::{REQUEST_BODIES, decode_request_body};
use axum::response::IntoResponse as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What clients put in `content-type`: JSON spelled the ways `Json` accepts and refuses,
/// other types, a value no client can send (left out), none.
const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/problem+json"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=x"),
    Some("application/json\n"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let [which, flags, body @ ..] = data else { return };
    let name = REQUEST_BODIES[usize::from(*which) % REQUEST_BODIES.len()];
    let content_type = CONTENT_TYPES[usize::from(flags & 0x7f) % CONTENT_TYPES.len()];
    let mut body = body.to_vec();
    if flags & 0x80 != 0 {
        body.resize(body.len().max(MAX_BODY_BYTES + 1), b' ');
    }
    let too_large = body.len() > MAX_BODY_BYTES;
    let optional = name == "LogoutRequest";
    let decoded = futures::executor::block_on(decode_request_body(name, content_type, body.clone()))
        .expect("every listed body decodes");
    match decoded {
        Ok(()) => {
            assert!(!too_large, "{name}: accepted past the body limit");
            let empty = body.iter().all(u8::is_ascii_whitespace);
            let value = serde_json::from_slice::<Value>(&body);
            let object = value.as_ref().is_ok_and(Value::is_object);
            let null = value.as_ref().is_ok_and(Value::is_null);
            assert!((optional && (empty || null)) || object, "{name}: accepted a body that is not a JSON object");
        }
        Err(error) => {
            let expected = match error.code {
                "invalid_json" | "invalid_body" => 400,
                "payload_too_large" => {
                    assert!(too_large, "{name}: 413 within the limit");
                    413
                }
                "unsupported_media_type" => {
                    assert!(!optional, "{name}: an optional body needs no content type");
                    assert_ne!(content_type, Some("application/json"), "{name}: 415 for JSON");
                    415
                }
                other => panic!("{name}: undocumented code {other:?} ({error:?})"),
            };
            assert_eq!(error.status.as_u16(), expected, "{name}: {error:?}");
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), expected);
            let json = response.headers().get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(json, Some("application/json"), "{name}: the error body is JSON");
        }
    }
});
