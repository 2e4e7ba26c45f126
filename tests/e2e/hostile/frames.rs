//! Hostile text and binary frames over the hub's socket.

use super::*;

// ---------------------------------------------------------------------------------------
// Frames.

/// The codes of `error` frames: docs/PROTOCOL.md §10, and (for refused commands) ERRORS.md.
fn frame_codes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/PROTOCOL.md")).expect("docs/PROTOCOL.md");
    let section = text.split("## 10. Error frame codes").nth(1).expect("PROTOCOL.md §10");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut codes: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect();
    assert!(codes.contains("invalid_frame"), "PROTOCOL.md §10 was not read: {codes:?}");
    codes.extend(errors_md().into_keys());
    codes
}

/// The commands and the fields of their `data` (PROTOCOL.md §4): name, JSON type.
const COMMANDS: [(&str, &[(&str, &str)]); 4] = [
    ("send_message", &[("session_id", "uuid"), ("client_msg_id", "string"), ("body", "string")]),
    ("mark_delivered", &[("session_id", "uuid"), ("up_to_seq", "integer")]),
    ("mark_read", &[("session_id", "uuid"), ("up_to_seq", "integer")]),
    ("typing", &[("session_id", "uuid")]),
];

/// One generated frame and the error codes it must get (empty: any documented one).
#[derive(Clone, Debug)]
struct FrameCase {
    what: &'static str,
    frame: Message,
    expect: Vec<&'static str>,
    /// The `ref` the answer must echo.
    reference: Option<Value>,
}

fn command_data(fields: &[(&str, &str)]) -> BoxedStrategy<Vec<(String, String)>> {
    let values: Vec<BoxedStrategy<String>> = fields
        .iter()
        .map(|(_, kind)| match *kind {
            "uuid" => any::<u128>().prop_map(|n| quoted(&uuid::Uuid::from_u128(n).to_string())).boxed(),
            "integer" => hostile_number(),
            _ => hostile_string()
                .prop_filter("within a frame", |s| s.len() < 20_000)
                .prop_map(|s| quoted(&s))
                .boxed(),
        })
        .collect();
    let names: Vec<String> = fields.iter().map(|(name, _)| (*name).to_owned()).collect();
    values.prop_map(move |values| names.iter().cloned().zip(values).collect()).boxed()
}

fn frame_cases() -> BoxedStrategy<FrameCase> {
    let text = |what: &'static str, expect: Vec<&'static str>| {
        move |frame: String| FrameCase {
            what,
            frame: Message::Text(frame.into()),
            expect: expect.clone(),
            reference: None,
        }
    };
    let reference =
        prop::sample::select(vec![json!(1), json!("r-1"), json!({"a": [1, null]}), json!(-0.5), json!("😀")]);
    let mut cases: Vec<BoxedStrategy<FrameCase>> = vec![
        prop::collection::vec(any::<u8>(), 0..2_048)
            .prop_map(|bytes| FrameCase {
                what: "binary",
                frame: Message::Binary(bytes.into()),
                expect: vec!["binary_not_supported"],
                reference: None,
            })
            .boxed(),
        ".{0,300}".prop_map(text("random text", Vec::new())).boxed(),
        (100usize..20_000, any::<bool>())
            .prop_map(|(depth, in_data)| {
                let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                if in_data { format!("{{\"type\":\"mark_read\",\"data\":{nested}}}") } else { nested }
            })
            .prop_map(text("deep nesting", vec!["invalid_frame", "invalid_command"]))
            .boxed(),
        prop::sample::select(vec![
            "1",
            "null",
            "[]",
            "\"ping\"",
            "{\"type\":7}",
            "{\"type\":null}",
            "{\"data\":{}}",
            "{\"type\":\"ping\",\"type\":\"ping\"}",
            "[\"ping\",7]",
        ])
        .prop_map(str::to_owned)
        .prop_map(text("no string type", vec!["invalid_frame"]))
        .boxed(),
        ("[a-zA-Z_]{1,20}", reference.clone())
            .prop_filter("not a command", |(kind, _)| {
                kind != "ping" && !COMMANDS.iter().any(|(c, _)| c == kind)
            })
            .prop_map(|(kind, reference)| FrameCase {
                what: "unknown command",
                frame: Message::Text(json!({"type": kind, "ref": reference}).to_string().into()),
                expect: vec!["unknown_command"],
                reference: Some(reference),
            })
            .boxed(),
    ];
    for (command, fields) in COMMANDS {
        let data = command_data(fields);
        // Hostile values of the right types, about a session nothing has: the rules refuse
        // them (a second `typing` within 2 s is acknowledged as throttled instead).
        cases.push(
            (data.clone(), reference.clone())
                .prop_map(move |(data, reference)| FrameCase {
                    what: "hostile values",
                    frame: Message::Text(
                        format!("{{\"type\":\"{command}\",\"ref\":{reference},\"data\":{}}}", object(&data))
                            .into(),
                    ),
                    expect: Vec::new(),
                    reference: Some(reference),
                })
                .boxed(),
        );
        // A field of the wrong type, left out, or an unknown one; `data` not an object.
        let index = 0..fields.len();
        let wrong = prop::sample::select(JSON_TYPES.to_vec()).prop_flat_map(value_of_type);
        cases.push(
            (data, index, wrong, 0..4u8, reference.clone())
                .prop_filter_map("a wrong type", move |(mut data, index, value, how, reference)| {
                    let kind = fields[index].1;
                    let fits = match kind {
                        "integer" => value.parse::<i64>().is_ok(),
                        _ => value.starts_with('"'),
                    };
                    let data = match how {
                        0 if !fits => {
                            data[index].1 = value;
                            object(&data)
                        }
                        1 => {
                            data.remove(index);
                            object(&data)
                        }
                        2 => {
                            data.push(("extra".to_owned(), value));
                            object(&data)
                        }
                        3 if !value.starts_with('{') => value,
                        _ => return None,
                    };
                    let frame = format!("{{\"type\":\"{command}\",\"ref\":{reference},\"data\":{data}}}");
                    // A number past f64 (`1e400`) makes the whole frame unreadable.
                    let readable = serde_json::from_str::<Value>(&frame).is_ok();
                    Some(FrameCase {
                        what: "data that does not fit",
                        frame: Message::Text(frame.into()),
                        expect: vec![if readable { "invalid_command" } else { "invalid_frame" }],
                        reference: Some(reference),
                    })
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(cases).boxed()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, or what came instead (a close, an error, silence).
async fn answer(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Err(_) => return Err("no answer within 10 s".to_owned()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => return Err(format!("instead of an answer: {other:?}")),
        }
    }
}

#[tokio::test]
async fn hostile_frames_get_documented_error_frames_and_the_socket_stays_open() {
    let target = Target::spawn().await;
    let codes = frame_codes();
    let (mut runner, seed) = runner();
    let before = target.database().await;
    let url = ws_url_with_token(target.app.public, &target.customer);
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("socket opens");
    assert_eq!(answer(&mut socket).await.expect("welcome")["type"], "welcome");

    let strategy = frame_cases();
    let mut wrong = Vec::new();
    for _ in 0..FRAME_CASES {
        let case = draw(&mut runner, &strategy);
        socket.send(case.frame.clone()).await.expect("sent");
        let verdict = match answer(&mut socket).await {
            Err(problem) => Err(problem),
            Ok(frame) => {
                let code = frame["data"]["code"].as_str().unwrap_or_default().to_owned();
                let throttled = case.what == "hostile values"
                    && frame["type"] == "ack"
                    && frame["data"]["throttled"] == true
                    && case.frame.to_text().is_ok_and(|t| t.starts_with("{\"type\":\"typing\""));
                if throttled {
                    Ok(())
                } else if frame["type"] != "error" || !frame["data"]["message"].is_string() {
                    Err(format!("not an error frame: {frame}"))
                } else if !codes.contains(&code) {
                    Err(format!("{code} is documented neither in PROTOCOL.md §10 nor in ERRORS.md"))
                } else if !case.expect.is_empty() && !case.expect.contains(&code.as_str()) {
                    Err(format!("{code}, expected one of {:?}", case.expect))
                } else if case.reference.is_some()
                    && code != "invalid_frame"
                    && frame.get("ref") != case.reference.as_ref()
                {
                    Err(format!("the ref was not echoed: {frame}"))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(problem) = verdict {
            let shown: String = format!("{:?}", case.frame).chars().take(300).collect();
            wrong.push(format!("[{}] {shown}: {problem}", case.what));
            if problem.starts_with("instead") || problem.starts_with("no answer") {
                break;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "HOSTILE_SEED={seed}: {} frames answered wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Still open and answering; then a frame over the limit closes it with 1009.
    socket
        .send(Message::Text(json!({"type": "ping", "ref": "still-open"}).to_string().into()))
        .await
        .expect("ping");
    let pong = answer(&mut socket).await.expect("pong");
    assert_eq!((&pong["type"], &pong["ref"]), (&json!("pong"), &json!("still-open")));
    let oversized = "x".repeat(target.app.settings.hub.max_frame_bytes + 1);
    socket.send(Message::Text(oversized.into())).await.expect("sent");
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("closed within 10 s")
        {
            Some(Ok(Message::Close(Some(close)))) => break (u16::from(close.code), close.reason.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected the close, got {other:?}"),
        }
    };
    assert_eq!(closed, (1009, "frame_too_large".to_owned()));
    target.assert_unchanged(&before).await;
}
