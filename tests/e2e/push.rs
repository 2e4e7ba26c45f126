//! Pushes through FCM HTTP v1 against a fake FCM + OAuth server started in the test: it
//! checks the signed assertion and the payload, and answers each device token with one of
//! FCM's documented outcomes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bestie::ServiceRole;
use domain::auth::Role;
use domain::ids::UserId;
use domain::push::{Delivery, FcmSender, PushMessage, ServiceAccount};
use domain::settings::PushSettings;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::harness::TestApp;

const PRIVATE_KEY: &str = include_str!("fixtures/fcm-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/fcm-test-key.pub.pem");
const CLIENT_EMAIL: &str = "pusher@bestie-test.iam.gserviceaccount.com";

#[derive(Default)]
struct Fake {
    token_url: String,
    /// Access tokens granted.
    granted: Vec<String>,
    /// Every send: (device token, time, body).
    sends: Vec<(String, Instant, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn token(State(fake): State<Shared>, body: String) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded_pairs(&body);
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let assertion = form.get("assertion").expect("assertion");
    let mut validation = Validation::new(Algorithm::RS256);
    let audience = fake.lock().expect("lock").token_url.clone();
    validation.set_audience(&[audience]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("public key");
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(error) => return (StatusCode::UNAUTHORIZED, format!("bad assertion: {error}")).into_response(),
    };
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/firebase.messaging");
    let mut fake = fake.lock().expect("lock");
    let access = format!("access-{}", fake.granted.len());
    fake.granted.push(access.clone());
    Json(json!({"access_token": access, "expires_in": 3600, "token_type": "Bearer"})).into_response()
}

fn serde_urlencoded_pairs(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (k.to_owned(), v.replace("%3A", ":").replace("%2B", "+").replace("%2F", "/").replace("%3D", "="))
        })
        .collect()
}

fn fcm_error(status: StatusCode, code: &str, field: Option<&str>) -> Response {
    let mut details =
        vec![json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})];
    if let Some(field) = field {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field}]}));
    }
    (status, Json(json!({"error": {"code": status.as_u16(), "message": "fake", "status": code, "details": details}}))).into_response()
}

async fn send(
    State(fake): State<Shared>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    assert_eq!(project, "bestie-test");
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut fake = fake.lock().expect("lock");
    if !fake.granted.iter().any(|t| bearer == format!("Bearer {t}")) {
        return fcm_error(StatusCode::UNAUTHORIZED, "THIRD_PARTY_AUTH_ERROR", None);
    }
    let device = body["message"]["token"].as_str().expect("token").to_owned();
    let earlier = fake.sends.iter().filter(|(d, _, _)| *d == device).count();
    fake.sends.push((device.clone(), Instant::now(), body));
    let scenario = device.split('-').next().unwrap_or_default();
    match (scenario, earlier) {
        ("dead", _) => fcm_error(StatusCode::NOT_FOUND, "UNREGISTERED", None),
        ("mismatch", _) => fcm_error(StatusCode::FORBIDDEN, "SENDER_ID_MISMATCH", None),
        ("badtoken", _) => fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("message.token")),
        ("badother", _) => fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("message.data")),
        ("denied", _) => fcm_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", None),
        ("busy", 0) => {
            let mut response = fcm_error(StatusCode::TOO_MANY_REQUESTS, "QUOTA_EXCEEDED", None);
            response.headers_mut().insert("retry-after", "1".parse().expect("header"));
            response
        }
        ("flaky", 0 | 1) => fcm_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", None),
        _ => Json(json!({"name": format!("projects/bestie-test/messages/{earlier}")})).into_response(),
    }
}

async fn start_fake() -> (Shared, String) {
    let fake: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    fake.lock().expect("lock").token_url = format!("{base}/token");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (fake, base)
}

fn sender(base: &str) -> FcmSender {
    sender_as(base, CLIENT_EMAIL)
}

/// A sender signing its assertions as `client_email` (the fake accepts only [`CLIENT_EMAIL`]).
fn sender_as(base: &str, client_email: &str) -> FcmSender {
    let account = ServiceAccount {
        project_id: "bestie-test".into(),
        client_email: client_email.into(),
        private_key: PRIVATE_KEY.into(),
        private_key_id: Some("key-1".into()),
        token_uri: format!("{base}/token"),
    };
    let settings = PushSettings { fcm_base_url: Some(base.to_owned()), ..PushSettings::default() };
    FcmSender::new(account, &settings).expect("sender")
}

/// An application, the fake FCM, a sender pointed at it, and a customer to push to.
async fn setup() -> (TestApp, Shared, FcmSender, uuid::Uuid) {
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let (fake, base) = start_fake().await;
    let sender = sender(&base);
    let customer = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO customers (id, phone) VALUES ($1, $2)")
        .bind(customer)
        .bind(crate::harness::unique_phone())
        .execute(app.store.pg_pool())
        .await
        .expect("customer");
    (app, fake, sender, customer)
}

#[tokio::test]
async fn pushes_follow_fcms_documented_outcomes() {
    let (app, fake, sender, customer) = setup().await;
    let devices = ["ok-1", "dead-1", "mismatch-1", "badtoken-1", "badother-1", "busy-1", "flaky-1"];
    for device in devices {
        app.store
            .upsert_device(device, "android", Role::Customer, UserId(customer), None)
            .await
            .expect("device");
    }
    let message = PushMessage {
        title: "Bestie".into(),
        body: "You have a new message".into(),
        data: BTreeMap::from([
            ("type".to_owned(), "chat_message".to_owned()),
            ("session_id".to_owned(), "s-1".to_owned()),
        ]),
        collapse_key: Some("session-s-1".into()),
        preview: None,
    };
    let deliveries =
        domain::push::send_to_account(&app.store, &sender, Role::Customer, UserId(customer), &message)
            .await
            .expect("send");
    let stored = app.store.device_tokens(Role::Customer, UserId(customer)).await.expect("tokens");
    assert_eq!(deliveries.iter().filter(|d| **d == Delivery::Sent).count(), 3, "{deliveries:?}");
    assert_eq!(deliveries.iter().filter(|d| **d == Delivery::TokenDeleted).count(), 3, "{deliveries:?}");
    assert_eq!(deliveries.iter().filter(|d| matches!(d, Delivery::Failed(_))).count(), 1, "{deliveries:?}");
    for (device, kept) in [
        ("ok-1", true),
        ("dead-1", false),
        ("mismatch-1", false),
        ("badtoken-1", false),
        ("badother-1", true),
        ("busy-1", true),
        ("flaky-1", true),
    ] {
        assert_eq!(stored.contains(&device.to_owned()), kept, "{device}");
    }

    let fake = fake.lock().expect("lock");
    // One token exchange served every send.
    assert_eq!(fake.granted.len(), 1);
    let times = |device: &str| {
        fake.sends.iter().filter(|(d, _, _)| d == device).map(|(_, t, _)| *t).collect::<Vec<_>>()
    };
    let busy = times("busy-1");
    assert_eq!(busy.len(), 2);
    assert!(busy[1] - busy[0] >= std::time::Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(times("flaky-1").len(), 3, "503 twice, then sent");
    assert_eq!(times("dead-1").len(), 1, "a dead token is not retried");

    let (_, _, body) = fake.sends.iter().find(|(d, _, _)| d == "ok-1").expect("sent");
    let sent = &body["message"];
    assert_eq!(sent["data"], json!({"type": "chat_message", "session_id": "s-1"}));
    assert_eq!(sent["notification"], json!({"title": "Bestie", "body": "You have a new message"}));
    assert_eq!(sent["android"], json!({"priority": "high", "collapse_key": "session-s-1"}));
    assert_eq!(sent["apns"]["headers"], json!({"apns-priority": "10", "apns-collapse-id": "session-s-1"}));
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once() {
    let (app, fake, sender, customer) = setup().await;
    app.store.upsert_device("ok-2", "ios", Role::Customer, UserId(customer), None).await.expect("device");
    let message = PushMessage {
        title: "t".into(),
        body: "b".into(),
        data: BTreeMap::new(),
        collapse_key: None,
        preview: None,
    };
    let first =
        domain::push::send_to_account(&app.store, &sender, Role::Customer, UserId(customer), &message)
            .await
            .expect("send");
    assert_eq!(first, [Delivery::Sent]);
    // The server forgets every token it granted (revoked, rotated keys...).
    fake.lock().expect("lock").granted.clear();
    let second =
        domain::push::send_to_account(&app.store, &sender, Role::Customer, UserId(customer), &message)
            .await
            .expect("send");
    assert_eq!(second, [Delivery::Sent]);
    assert_eq!(fake.lock().expect("lock").granted.len(), 1, "one fresh token after the 401");
}

#[tokio::test]
async fn refused_credentials_are_an_auth_failure_counted_apart_from_other_failures() {
    let (app, fake, sender, customer) = setup().await;
    app.store
        .upsert_device("denied-1", "android", Role::Customer, UserId(customer), None)
        .await
        .expect("device");
    let message = PushMessage {
        title: "t".into(),
        body: "b".into(),
        data: BTreeMap::from([("type".to_owned(), "chat_message".to_owned())]),
        collapse_key: None,
        preview: None,
    };
    let push = domain::jobs::Push { role: Role::Customer, account: customer, message };
    // FCM answers 403 PERMISSION_DENIED: the project refuses our account, not the device.
    let ctx = workers::JobContext::new(app.services.clone()).with_push(Arc::new(sender));
    let deliveries = workers::send_push::run(&push, &ctx).await.expect("push job");
    assert!(matches!(deliveries[..], [Delivery::AuthFailed(_)]), "{deliveries:?}");
    assert_eq!(fake.lock().expect("lock").sends.len(), 1, "not retried");

    // The OAuth server refuses our assertion (a wrong or revoked key): no send at all, no retry.
    let base = fake.lock().expect("lock").token_url.trim_end_matches("/token").to_owned();
    let refused = sender_as(&base, "someone-else@bestie-test.iam.gserviceaccount.com");
    app.store.upsert_device("ok-3", "ios", Role::Customer, UserId(customer), None).await.expect("device");
    let started = Instant::now();
    let ctx = workers::JobContext::new(app.services.clone()).with_push(Arc::new(refused));
    let deliveries = workers::send_push::run(&push, &ctx).await.expect("push job");
    assert!(deliveries.iter().all(|d| matches!(d, Delivery::AuthFailed(_))), "{deliveries:?}");
    assert_eq!(deliveries.len(), 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "a refused key is not retried");
    assert_eq!(fake.lock().expect("lock").sends.len(), 1, "nothing sent with a refused key");

    let metrics =
        reqwest::get(app.internal_url("/metrics")).await.expect("metrics").text().await.expect("text");
    for line in
        [r#"bestie_pushes_total{outcome="auth_failed"} 3"#, r#"bestie_pushes_total{outcome="failed"} 0"#]
    {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

/// A chat message's text reaches a lock screen only when an operator turned
/// `push_message_previews` on; by default the push only says a message arrived.
#[tokio::test]
async fn a_chat_push_shows_the_message_only_when_previews_are_switched_on() {
    let (app, fake, sender, customer) = setup().await;
    app.store
        .upsert_device("ok-preview", "android", Role::Customer, UserId(customer), None)
        .await
        .expect("device");
    let message = PushMessage {
        title: "Bestie Ayu".into(),
        body: "Pesan baru".into(),
        data: BTreeMap::from([("type".to_owned(), "chat_message".to_owned())]),
        collapse_key: Some("chat:s-1".into()),
        preview: Some("aku lagi sedih banget hari ini".into()),
    };
    let bodies = |fake: &Shared| -> Vec<Value> {
        fake.lock()
            .expect("lock")
            .sends
            .iter()
            .map(|(_, _, body)| body["message"]["notification"]["body"].clone())
            .collect()
    };
    let sent =
        domain::push::send_to_account(&app.store, &sender, Role::Customer, UserId(customer), &message).await;
    assert_eq!(sent.expect("send"), [Delivery::Sent]);
    assert_eq!(bodies(&fake), [json!("Pesan baru")], "off by default");

    sqlx::query("UPDATE app_config SET value = 'true' WHERE key = 'push_message_previews'")
        .execute(app.store.pg_pool())
        .await
        .expect("switch on");
    let sent =
        domain::push::send_to_account(&app.store, &sender, Role::Customer, UserId(customer), &message).await;
    assert_eq!(sent.expect("send"), [Delivery::Sent]);
    assert_eq!(bodies(&fake)[1], json!("aku lagi sedih banget hari ini"));
}
