//! The availability poll: what it answers, and that it never touches Postgres.

use std::time::Duration;

use domain::auth::Role;
use domain::ids::MitraId;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{TestApp, WsClient, ws_url_with_token};

async fn poll(app: &TestApp, token: &str) -> serde_json::Value {
    let (status, body) =
        app.call(Method::GET, &app.public_url("/api/client/mitra-availability"), Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until the answer is `expected`: the poll reads an in-memory view that Redis
/// updates a moment after each transition. Fails after 2 s (the view's backstop refresh
/// runs every second).
async fn poll_until(app: &TestApp, token: &str, expected: serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let answer = poll(app, token).await;
        if answer == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {answer}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn availability_follows_status_connection_and_capacity() {
    let app = TestApp::spawn().await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    let (none, one) = (json!({"available": false, "count": 0}), json!({"available": true, "count": 1}));
    poll_until(&app, &customer, none.clone()).await;

    let mitra = Uuid::new_v4();
    let mitra_token = app.token_for(mitra, Role::Mitra);
    let (status, _) =
        app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": true})).await;
    assert_eq!(status, 200);
    assert_eq!(poll(&app, &customer).await, none, "switched on but not connected");
    let socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &mitra_token)).await;
    poll_until(&app, &customer, one.clone()).await;

    // At the cap: online but not available.
    app.store.set_mitra_sessions(MitraId(mitra), 3, 3).await.expect("sessions");
    poll_until(&app, &customer, none.clone()).await;
    app.store.set_mitra_sessions(MitraId(mitra), 2, 3).await.expect("sessions");
    poll_until(&app, &customer, one.clone()).await;

    // Switched off, then on again and disconnected.
    app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": false})).await;
    poll_until(&app, &customer, none.clone()).await;
    app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": true})).await;
    poll_until(&app, &customer, one).await;
    drop(socket);
    poll_until(&app, &customer, none).await;
}

#[tokio::test]
async fn availability_turns_false_when_the_last_mitra_takes_a_full_load_of_chats() {
    use crate::pairing::{accept, customer, new_online_mitra, next_event, paid, start_blast};
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let watcher = app.token_for(Uuid::new_v4(), Role::Customer);
    // max_customers_per_mitra is 3: three accepted chats fill Ayu.
    for n in 1..=3 {
        poll_until(&app, &watcher, json!({"available": true, "count": 1})).await;
        let rani = customer(&app).await;
        let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
        let (_, request) = start_blast(&app, &rani.token, &payment).await;
        next_event(&mut ayu.socket, "chat_request").await;
        let (status, body) = accept(&app, &ayu.token, request["id"].as_str().expect("id")).await;
        assert_eq!(status, 200, "chat {n}: {body}");
    }
    poll_until(&app, &watcher, json!({"available": false, "count": 0})).await;
    let presence = app.store.mitra_presence(MitraId(ayu.id), 3).await.expect("presence");
    assert_eq!((presence.online, presence.available, presence.active_sessions), (true, false, 3));
}

#[tokio::test]
async fn only_customers_poll_availability() {
    let app = TestApp::spawn().await;
    let url = app.public_url("/api/client/mitra-availability");
    let (status, body) = app.call(Method::GET, &url, None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")));
    let mitra = app.token_for(Uuid::new_v4(), Role::Mitra);
    let (status, body) = app.call(Method::GET, &url, Some(&mitra), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
}

#[tokio::test]
async fn the_availability_poll_issues_no_postgres_statement() {
    let app = TestApp::spawn_with(|s| {
        s.database.max_connections = 2;
        s.database.acquire_timeout_ms = 300;
    })
    .await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    // Hold every pooled connection: any route that needs Postgres now fails.
    let pool = app.store.pg_pool().clone();
    let held = [pool.acquire().await.expect("connection"), pool.acquire().await.expect("connection")];
    let (status, body) = app.call(Method::GET, &app.public_url("/readyz"), None, None).await;
    assert_eq!(status, 503, "a Postgres route must fail while the pool is held: {body}");

    for _ in 0..20 {
        assert_eq!(poll(&app, &customer).await, json!({"available": false, "count": 0}));
    }
    drop(held);
}
