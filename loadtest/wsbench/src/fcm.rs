//! `wsbench fake-fcm`: a stand-in for FCM HTTP v1 and its OAuth token endpoint on 127.0.0.1,
//! for the observability check, so the push panels show a real run's pushes.
//!
//! It writes a service-account file for the server (`--account-out`: the test key of
//! `--key`, `token_uri` pointing here), grants an access token to any assertion, and answers
//! each send by the device token's prefix, as FCM would: `dead-…` 404 `UNREGISTERED` (the
//! server deletes the token), `denied-…` 403 `PERMISSION_DENIED` (our credentials refused:
//! the `auth_failed` outcome), anything else 200. It stops by itself after `--seconds`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub struct Options {
    pub addr: SocketAddr,
    pub seconds: u64,
    pub account_out: PathBuf,
    pub key: PathBuf,
}

/// Sends answered, by outcome.
type Counts = Arc<Mutex<BTreeMap<&'static str, u64>>>;

async fn token() -> Json<Value> {
    Json(json!({"access_token": "check-access-token", "expires_in": 3600, "token_type": "Bearer"}))
}

fn fcm_error(status: StatusCode, code: &str) -> Response {
    let details =
        [json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})];
    let body =
        json!({"error": {"code": status.as_u16(), "message": "fake", "status": code, "details": details}});
    (status, Json(body)).into_response()
}

async fn send(State(counts): State<Counts>, Json(body): Json<Value>) -> Response {
    let device = body["message"]["token"].as_str().unwrap_or_default();
    let (outcome, response) = if device.starts_with("dead-") {
        ("unregistered", fcm_error(StatusCode::NOT_FOUND, "UNREGISTERED"))
    } else if device.starts_with("denied-") {
        ("permission_denied", fcm_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED"))
    } else {
        ("sent", Json(json!({"name": "projects/bestie-check/messages/1"})).into_response())
    };
    *counts.lock().unwrap_or_else(PoisonError::into_inner).entry(outcome).or_default() += 1;
    response
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.addr.ip().is_loopback(), "the fake FCM only listens on 127.0.0.0/8");
    let listener = tokio::net::TcpListener::bind(options.addr).await.context("binding the fake FCM")?;
    let base = format!("http://{}", listener.local_addr()?);
    let key = std::fs::read_to_string(&options.key)
        .with_context(|| format!("reading {}", options.key.display()))?;
    let account = json!({
        "type": "service_account",
        "project_id": "bestie-check",
        "private_key_id": "check-1",
        "private_key": key,
        "client_email": "pusher@bestie-check.iam.gserviceaccount.com",
        "token_uri": format!("{base}/token"),
    });
    std::fs::write(&options.account_out, serde_json::to_string_pretty(&account)?)
        .with_context(|| format!("writing {}", options.account_out.display()))?;
    let counts = Counts::default();
    let router = axum::Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send))
        .with_state(counts.clone());
    eprintln!("fake FCM on {base} for {} s", options.seconds);
    let stop = tokio::time::sleep(Duration::from_secs(options.seconds));
    axum::serve(listener, router).with_graceful_shutdown(stop).await.context("serving the fake FCM")?;
    let counts = counts.lock().unwrap_or_else(PoisonError::into_inner).clone();
    println!("{}", json!({ "fake_fcm_sends": counts }));
    Ok(())
}
