//! `wsbench ceiling`: the true ceiling of an HTTP endpoint on this machine, for
//! `loadtest/hot-path` to measure `bestie` against in the same run.
//!
//! An axum router with one handler, `GET /healthz` answering the same constant JSON as
//! `bestie`'s, and nothing else: no middleware, no state, no extractor. It runs on the same
//! runtime as `bestie` (tokio's multi-thread scheduler, one worker per core) with the same
//! socket option (`TCP_NODELAY`), so the gap between this and `bestie`'s own `/healthz` is
//! what our middleware and state cost.
//! Listens on 127.0.0.0/8 only and stops by itself after `--seconds`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn run(addr: SocketAddr, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(addr.ip().is_loopback(), "the ceiling server only listens on 127.0.0.0/8");
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    eprintln!("ceiling: serving GET /healthz on {} for {seconds} s", listener.local_addr()?);
    let router = axum::Router::new().route("/healthz", get(healthz));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(tokio::time::sleep(Duration::from_secs(seconds)))
        .await
        .context("serving")
}
