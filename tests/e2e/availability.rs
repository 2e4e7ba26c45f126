//! The availability poll: what it answers, and that it never touches Postgres.

use std::time::Duration;

use domain::auth::Role;
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

#[tokio::test]
async fn availability_follows_status_connection_and_capacity() {
    let app = TestApp::spawn().await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    assert_eq!(poll(&app, &customer).await, json!({"available": false, "count": 0}));

    let mitra = Uuid::new_v4();
    let mitra_token = app.token_for(mitra, Role::Mitra);
    let (status, _) =
        app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": true})).await;
    assert_eq!(status, 200);
    let socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &mitra_token)).await;
    assert_eq!(poll(&app, &customer).await, json!({"available": true, "count": 1}));

    // At the cap: online but not available.
    app.store.set_mitra_sessions(mitra, 3, 3).await.expect("sessions");
    assert_eq!(poll(&app, &customer).await, json!({"available": false, "count": 0}));
    app.store.set_mitra_sessions(mitra, 2, 3).await.expect("sessions");
    assert_eq!(poll(&app, &customer).await["available"], true);

    // Switched off, then on again and disconnected.
    app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": false})).await;
    assert_eq!(poll(&app, &customer).await["available"], false);
    app.post(&app.public_url("/api/mitra/status"), Some(&mitra_token), json!({"online": true})).await;
    assert_eq!(poll(&app, &customer).await["available"], true);
    drop(socket);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while poll(&app, &customer).await["available"] != false {
        assert!(tokio::time::Instant::now() < deadline, "still available after the last socket closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
