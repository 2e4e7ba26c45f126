//! The real binary's log lines in production mode: JSON, with request and session ids in
//! their spans, and never a phone number, a one-time code, a token, a password, an API key or
//! a message body, through sign-in, refresh, a device, a mitra's socket, pairing, chat and a charge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use domain::accounts::store::NewAccount;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fake_provider::FakeProvider;
use crate::harness::{BestieProcess, WsClient, isolated_settings, unique_phone};

/// What the fake SMS gateway received: the `Authorization` header and the JSON body.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn sms(State(received): State<Received>, headers: HeaderMap, Json(body): Json<Value>) {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    received.lock().expect("lock").push((bearer.to_owned(), body));
}

/// A random secret of `len` characters that no other text in the run contains.
fn secret(len: usize) -> String {
    let mut text = String::new();
    while text.len() < len {
        text.push_str(&Uuid::new_v4().simple().to_string());
    }
    text.truncate(len);
    text
}

/// The log file's lines, each a JSON object (it fails on any other line); removes the file.
fn take_json_lines(path: &std::path::Path) -> Vec<Value> {
    let log = std::fs::read_to_string(path).expect("log");
    let _ = std::fs::remove_file(path);
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect()
}

/// Calls the api and returns the JSON body, failing unless the status is `expected`.
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
    expected: u16,
) -> Value {
    let mut request = http.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, expected, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn text_of(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {value}"))
        .to_owned()
}

/// Whether `haystack` holds `digits` with no digit right before or after it.
fn has_digit_run(haystack: &str, digits: &str) -> bool {
    haystack.match_indices(digits).any(|(at, _)| {
        let before = haystack[..at].chars().next_back().is_some_and(|c| c.is_ascii_digit());
        let after = haystack[at + digits.len()..].chars().next().is_some_and(|c| c.is_ascii_digit());
        !before && !after
    })
}

#[tokio::test]
async fn production_logs_are_json_with_ids_and_never_carry_secrets_or_bodies() {
    let received: Received = Arc::default();
    let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway_url = format!("http://{}/sms", gateway.local_addr().expect("addr"));
    let router = axum::Router::new().route("/sms", post(sms)).with_state(received.clone());
    tokio::spawn(async move { axum::serve(gateway, router).await });

    let mut settings = isolated_settings();
    let (jwt_secret, otp_secret, admin_password, gateway_token) =
        (secret(48), secret(48), secret(24), secret(32));
    let provider = FakeProvider::start().await;
    settings.auth.jwt_secret = domain::settings::Secret::new(jwt_secret.clone());
    // Production mode, with no log format given: JSON is production's default. Debug for
    // our crates and the request layer, so request spans and flows' spans have lines.
    let mut command = BestieProcess::command(&settings);
    command
        .env("BESTIE__MODE", "production")
        .env("BESTIE__AUTH__JWT_SECRET", &jwt_secret)
        .env("BESTIE__AUTH__OTP_SECRET", &otp_secret)
        .env("BESTIE__AUTH__OTP_SENDER", "webhook")
        .env("BESTIE__AUTH__OTP_WEBHOOK_URL", &gateway_url)
        .env("BESTIE__AUTH__OTP_WEBHOOK_TOKEN", &gateway_token)
        .env("BESTIE__SEED__ADMIN_PASSWORD", &admin_password)
        .envs(provider.env())
        .env("BESTIE__LOG__FILTER", "debug")
        .env_remove("BESTIE__LOG__FORMAT")
        .env_remove("RUST_LOG");
    let mut bestie = BestieProcess::start(command, settings.clone()).await;
    let public = bestie.public;
    let api = |path: &str| format!("http://{public}{path}");
    let http = reqwest::Client::new();

    // A customer signs in with a code the gateway received, refreshes, registers a device.
    let phone = unique_phone();
    call(&http, Method::POST, api("/api/auth/customer/otp"), None, Some(json!({"phone": phone})), 202).await;
    let code = {
        let received = received.lock().expect("lock");
        let (bearer, body) = received.first().expect("the gateway got the code");
        assert_eq!(bearer, &format!("Bearer {gateway_token}"));
        text_of(body, "/code")
    };
    let verify = json!({"phone": phone, "code": code, "call_name": "Rani"});
    let signed_in =
        call(&http, Method::POST, api("/api/auth/customer/verify"), None, Some(verify), 200).await;
    let first_refresh = text_of(&signed_in, "/refresh_token");
    let refresh = json!({"refresh_token": first_refresh});
    let refreshed = call(&http, Method::POST, api("/api/auth/refresh"), None, Some(refresh), 200).await;
    let customer = text_of(&refreshed, "/access_token");
    let device_token = format!("fcm-{}", secret(40));
    let device = json!({"fcm_token": device_token, "platform": "android"});
    call(&http, Method::PUT, api("/api/shared/devices"), Some(&customer), Some(device), 200).await;

    // A mitra signs in with a password, goes online and connects (token in the query string).
    let store = domain::store::Store::connect(&settings.database, &settings.redis).await.expect("store");
    let mitra_password = secret(20);
    let hash = domain::password::hash(&mitra_password).await.expect("hash");
    let email = format!("m{}@bestie.test", secret(10));
    let account = NewAccount { email: &email, display_name: "Bestie Ayu", password_hash: &hash };
    store.insert_mitra_if_absent(account).await.expect("mitra").expect("new mitra");
    let login = json!({"email": email, "password": mitra_password});
    let mitra_session = call(&http, Method::POST, api("/api/auth/mitra/login"), None, Some(login), 200).await;
    let mitra = text_of(&mitra_session, "/access_token");
    let online = json!({"online": true});
    call(&http, Method::POST, api("/api/mitra/status"), Some(&mitra), Some(online), 200).await;
    let mut mitra_socket = WsClient::connect_welcomed(&format!("ws://{public}/ws?token={mitra}")).await;

    // Pairing, then a message each way; the customer has no socket, so pushes are queued for
    // them (the log sender: no FCM credentials here).
    let tier = json!({"tier_id": "15m"});
    let payment =
        call(&http, Method::POST, api("/api/client/payment-sessions"), Some(&customer), Some(tier), 201)
            .await;
    let payment = text_of(&payment, "/id");
    let first_payment = payment.clone();
    let confirm = api(&format!("/api/client/payment-sessions/{payment}/confirm"));
    call(&http, Method::POST, confirm, Some(&customer), Some(json!({})), 200).await;
    let blast = json!({"payment_session_id": payment});
    call(&http, Method::POST, api("/api/client/chat-requests"), Some(&customer), Some(blast), 201).await;
    let offered = loop {
        let frame = mitra_socket.next_json().await;
        if frame["type"] == "chat_request" {
            break frame;
        }
    };
    let accept = api(&format!("/api/mitra/chat-requests/{}/accept", text_of(&offered, "/data/request_id")));
    let accepted = call(&http, Method::POST, accept, Some(&mitra), None, 200).await;
    let session = text_of(&accepted, "/chat_session/id");
    let customer_body = format!("rahasia pelanggan {}", secret(16));
    let send = json!({"client_msg_id": "c-1", "body": customer_body});
    let messages = api(&format!("/api/shared/chat-sessions/{session}/messages"));
    call(&http, Method::POST, messages, Some(&customer), Some(send), 201).await;
    let mitra_body = format!("rahasia mitra {}", secret(16));
    let command = json!({"type": "send_message", "ref": 1,
        "data": {"session_id": session, "client_msg_id": "m-1", "body": mitra_body}});
    mitra_socket.send_json(command).await;
    loop {
        let frame = mitra_socket.next_json().await;
        if frame["type"] == "message_ack" {
            break;
        }
    }
    // A priced payment (the trial is spent): charged at the provider with its API key.
    let tier = json!({"tier_id": "15m"});
    let payment =
        call(&http, Method::POST, api("/api/client/payment-sessions"), Some(&customer), Some(tier), 201)
            .await;
    let confirm = api(&format!("/api/client/payment-sessions/{}/confirm", text_of(&payment, "/id")));
    call(&http, Method::POST, confirm, Some(&customer), Some(json!({})), 200).await;
    assert_eq!(provider.charges_made(), 1);
    drop(mitra_socket);
    bestie.terminate();
    assert_eq!(bestie.wait_exit(Duration::from_secs(10)).await, Some(0));

    let lines = take_json_lines(&bestie.log);
    assert!(lines.len() > 20, "{} log lines", lines.len());
    let in_spans = |field: &str| {
        lines.iter().any(|line| {
            line["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s.get(field).is_some()))
        })
    };
    assert!(in_spans("request_id"), "no line carries a request id");
    assert!(in_spans("session_id"), "no line carries a session id");
    // What happened, line by line: sign-ins, the socket, the search and its outcome.
    let with = |message: &str| lines.iter().filter(|line| line["message"] == message).collect::<Vec<_>>();
    assert_eq!(with("signed in").len(), 2, "the customer and the mitra");
    let opened = with("socket opened");
    assert_eq!((opened.len(), &opened[0]["role"]), (1, &json!("mitra")), "{opened:?}");
    let closed = with("socket closed");
    assert!(closed.len() == 1 && closed[0]["code"].is_u64(), "{closed:?}");
    assert_eq!(with("search started")[0]["offered"], 1);
    let accepted = with("search accepted; chat session started");
    assert_eq!(accepted[0]["chat_session_id"], session.as_str(), "{accepted:?}");
    // The access log: one line per answer, with the route's pattern and not its path.
    let served = with("served");
    let confirms: Vec<&&Value> =
        served.iter().filter(|line| line["route"] == "/api/client/payment-sessions/{id}/confirm").collect();
    assert_eq!(confirms.len(), 2, "two confirms");
    for line in confirms {
        assert_eq!(
            (&line["level"], &line["target"], &line["method"], &line["status"]),
            (&json!("INFO"), &json!("access"), &json!("POST"), &json!(200)),
            "{line}"
        );
        assert!(
            line["request_id"].as_str().is_some_and(|id| !id.is_empty()) && line["latency_ms"].is_f64(),
            "{line}"
        );
    }
    assert!(
        served.iter().all(|line| !line.to_string().contains(&first_payment)),
        "an access line carries a path"
    );

    let national = phone.trim_start_matches('+');
    let (first_access, rotated_refresh) =
        (text_of(&signed_in, "/access_token"), text_of(&refreshed, "/refresh_token"));
    let mitra_refresh = text_of(&mitra_session, "/refresh_token");
    let never = [
        ("phone number", national),
        ("customer access token", customer.as_str()),
        ("first customer access token", first_access.as_str()),
        ("refresh token", first_refresh.as_str()),
        ("rotated refresh token", rotated_refresh.as_str()),
        ("mitra access token", mitra.as_str()),
        ("mitra refresh token", mitra_refresh.as_str()),
        ("device token", device_token.as_str()),
        ("mitra password", mitra_password.as_str()),
        ("customer message body", customer_body.as_str()),
        ("mitra message body", mitra_body.as_str()),
        ("SMS gateway token", gateway_token.as_str()),
        ("JWT key", jwt_secret.as_str()),
        ("OTP key", otp_secret.as_str()),
        ("admin password", admin_password.as_str()),
        ("payment provider's API key", provider.api_key.as_str()),
    ];
    for line in &lines {
        let text = line.to_string();
        for (what, secret) in never {
            assert!(!text.contains(secret), "the {what} is in a log line: {text}");
        }
        // The code is 6 digits: look for it as a number of its own, outside the timestamp.
        let mut without_time = line.clone();
        if let Some(object) = without_time.as_object_mut() {
            object.remove("timestamp");
        }
        assert!(!has_digit_run(&without_time.to_string(), &code), "the one-time code is in: {text}");
    }
}

/// At the default filter (info) a request opens no span, yet a server error is logged once,
/// with the request id the client saw, the route, the status, the code and what went wrong;
/// any other answer has its access line, but for the successful answers of the routes asked
/// on a timer (probes, the availability poll).
#[tokio::test]
async fn a_server_error_is_logged_with_the_request_id_the_client_saw() {
    let settings = isolated_settings();
    let mut command = BestieProcess::command(&settings);
    command
        .args(["--role", "api"])
        .env("BESTIE__LOG__FORMAT", "json")
        .env_remove("BESTIE__LOG__FILTER")
        .env_remove("RUST_LOG");
    let mut bestie = BestieProcess::start(command, settings.clone()).await;
    let public = bestie.public;

    let token = crate::harness::token_for(&settings, Uuid::new_v4(), domain::auth::Role::Customer);
    let poll = format!("http://{public}/api/client/mitra-availability");
    let http = reqwest::Client::new();
    let answered = http.get(&poll).bearer_auth(&token).header("x-request-id", "poll-1").send().await;
    assert_eq!(answered.expect("answered").status(), 200);
    let refused = http.get(&poll).bearer_auth("not-a-token").header("x-request-id", "poll-2").send().await;
    assert_eq!(refused.expect("answered").status(), 401);
    domain::store::database::drop(settings.database.url.expose()).await.expect("drop database");
    let url = format!("http://{public}/api/client/payment-sessions/{}", Uuid::new_v4());
    let response = reqwest::Client::new().get(&url).bearer_auth(&token).send().await.expect("answered");
    // A database gone from under the pool is not a connection loss: 500 `internal_error`.
    assert_eq!(response.status(), 500);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "internal_error", "{body}");
    bestie.terminate();
    assert_eq!(bestie.wait_exit(Duration::from_secs(10)).await, Some(0));

    let lines = take_json_lines(&bestie.log);
    // At info, each answer below 500 has its access line, except the successful answers of
    // the routes asked on a timer: the readiness probes and the poll's 200 have none, the
    // poll's refusal has one.
    let served: Vec<&Value> = lines.iter().filter(|line| line["message"] == "served").collect();
    assert_eq!(served.len(), 1, "{served:#?}");
    assert_eq!(
        (&served[0]["request_id"], &served[0]["route"], &served[0]["status"], &served[0]["level"]),
        (&json!("poll-2"), &json!("/api/client/mitra-availability"), &json!(401), &json!("INFO")),
    );
    let failed: Vec<&Value> = lines.iter().filter(|line| line["message"] == "request failed").collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    let line = failed[0];
    assert_eq!(line["request_id"], request_id.as_str(), "{line}");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["route"], "/api/client/payment-sessions/{id}", "{line}");
    assert_eq!((&line["status"], &line["code"]), (&json!(500), &json!("internal_error")), "{line}");
    assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "what went wrong is logged: {line}");
    assert!(
        lines.iter().all(|line| !line.to_string().contains("something went wrong")),
        "the client's message is not the log's"
    );
}
