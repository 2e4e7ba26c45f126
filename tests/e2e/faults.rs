//! Faults against the real parts: a hub process killed mid-conversation, and Postgres
//! going away behind a proxy the test cuts and restores.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::chat::{Paired, paired};
use crate::harness::{BestieProcess, TestApp, WsClient, ws_url_with_token};
use crate::pairing::{accept, customer, go_online, next_event, paid, start_blast};

/// A TCP proxy to `target` that a test can cut (it stops listening, so connecting is
/// refused, and every open connection is dropped: the server is gone) and restore. It runs
/// on a runtime of its own: the test app's teardown blocks the test's runtime while it
/// drops the database through this proxy.
struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// Cancelled by a cut: the listener and every connection opened before it end.
    up: Mutex<CancellationToken>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    async fn start(target: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime.spawn(TcpListener::bind("127.0.0.1:0")).await.expect("join").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = CancellationToken::new();
        runtime.spawn(Self::serve(listener, target, up.clone()));
        Self { addr, target, up: Mutex::new(up), runtime: Some(runtime) }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle()
    }

    async fn serve(listener: TcpListener, target: SocketAddr, up: CancellationToken) {
        loop {
            let mut inbound = tokio::select! {
                () = up.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((inbound, _)) => inbound,
                    Err(_) => continue,
                },
            };
            let up = up.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                tokio::select! {
                    () = up.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                }
            });
        }
    }

    async fn cut(&self) {
        self.up.lock().await.cancel();
        // Connecting is refused once the listener is gone.
        while TcpStream::connect(self.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    }

    async fn restore(&self) {
        let addr = self.addr;
        let listener = self
            .handle()
            .spawn(TcpListener::bind(addr))
            .await
            .expect("join")
            .expect("bind the same port again");
        let up = CancellationToken::new();
        self.handle().spawn(Self::serve(listener, self.target, up.clone()));
        *self.up.lock().await = up;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.up.get_mut().cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sends a command and reads until its answer (matched by `ref`).
async fn command(socket: &mut WsClient, kind: &str, data: Value) -> Value {
    let reference = uuid::Uuid::new_v4().to_string();
    socket.send_json(json!({"type": kind, "ref": reference, "data": data})).await;
    loop {
        let frame = socket.next_json().await;
        if frame["ref"] == reference.as_str() {
            return frame;
        }
    }
}

#[tokio::test]
async fn while_postgres_is_away_the_api_answers_503_and_the_hub_refuses_sends_retryably() {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let app = TestApp::spawn_with(|s| {
        let url = s.database.url.expose().replace("127.0.0.1:5432", &proxy.addr.to_string());
        s.database.url = domain::settings::Secret::new(url);
        s.database.acquire_timeout_ms = 500;
    })
    .await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    let send = json!({"session_id": session, "client_msg_id": "while-away", "body": "masih di sana?"});

    proxy.cut().await;
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}"));
    let (status, body) = app.call(Method::GET, &url, Some(&customer.token), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["retryable"].as_bool()),
        (Some("store_unavailable"), Some(true))
    );
    let refused = command(&mut customer.socket, "send_message", send.clone()).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        (refused["data"]["code"].as_str(), refused["data"]["retryable"].as_bool()),
        (Some("store_unavailable"), Some(true))
    );
    // The socket stays up, and what needs no Postgres still works.
    assert_eq!(command(&mut customer.socket, "ping", json!({})).await["type"], "pong");
    let (status, _) = app
        .call(Method::GET, &app.public_url("/api/client/mitra-availability"), Some(&customer.token), None)
        .await;
    assert_eq!(status, 200);

    proxy.restore().await;
    // The app retries the same command, as the error told it to: stored once, delivered.
    let ack = command(&mut customer.socket, "send_message", send).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["data"]["message"]["seq"], 1);
    let got = next_event(&mut mitra.socket, "chat_message").await;
    assert_eq!(got["message"]["client_msg_id"], "while-away");
    let (status, _) = app.call(Method::GET, &url, Some(&customer.token), None).await;
    assert_eq!(status, 200);
}

/// Reads `socket` until it has the `chat_message` events of every id in `wanted`, returning
/// each chat message's `client_msg_id` in arrival order and the last event id read.
async fn read_messages(socket: &mut WsClient, wanted: &[&str]) -> (Vec<String>, String) {
    let (mut seen, mut last_id) = (Vec::new(), String::new());
    while !wanted.iter().all(|id| seen.iter().any(|s| s == id)) {
        let frame = socket.next_json().await;
        if let Some(id) = frame["id"].as_str() {
            last_id = id.to_owned();
        }
        if frame["type"] == "chat_message" {
            seen.push(frame["data"]["message"]["client_msg_id"].as_str().expect("id").to_owned());
        }
    }
    (seen, last_id)
}

#[tokio::test]
async fn a_conversation_survives_its_hub_being_killed_and_resumes_on_another_hub() {
    // This process runs every role (it is the hub the clients move to); the clients start
    // on a separate hub process, killed -9 in the middle.
    let app = TestApp::spawn().await;
    let mut hub = BestieProcess::serve_with(app.settings.clone(), &["--role", "hub"]).await;
    let operator = app.sign_in_operator().await;
    let (mitra_id, mitra_token, _) = app.sign_in_new_mitra(&operator).await;
    // Online over REST; the mitra's socket that counts is the one on the doomed hub.
    drop(go_online(&app, mitra_id, mitra_token.clone()).await);
    let mut mitra = WsClient::connect_welcomed(&ws_url_with_token(hub.public, &mitra_token)).await;
    let client = customer(&app).await;
    let mut customer_socket = WsClient::connect_welcomed(&ws_url_with_token(hub.public, &client.token)).await;
    drop(client.socket);
    let payment = paid(&app, &client.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &client.token, &payment).await;
    next_event(&mut mitra, "chat_request").await;
    let (status, accepted) = accept(&app, &mitra_token, request["id"].as_str().expect("id")).await;
    assert_eq!(status, 200, "{accepted}");
    let session = accepted["chat_session"]["id"].as_str().expect("session").to_owned();
    next_event(&mut customer_socket, "paired").await;

    for id in ["c-1", "c-2"] {
        let data = json!({"session_id": session, "client_msg_id": id, "body": "cerita"});
        assert_eq!(command(&mut customer_socket, "send_message", data).await["type"], "message_ack");
    }
    let (before, mitra_last) = read_messages(&mut mitra, &["c-1", "c-2"]).await;
    assert_eq!(before, ["c-1", "c-2"]);

    // c-3 is written and the hub dies before (or after) storing it: the app never saw an
    // ack, so it sends c-3 again on the hub it reconnects to.
    let data = json!({"session_id": session, "client_msg_id": "c-3", "body": "lanjut"});
    customer_socket.send_json(json!({"type": "send_message", "ref": "r3", "data": data.clone()})).await;
    hub.child.kill().expect("kill -9");
    let _ = hub.child.wait();

    let resume =
        |token: &str, last: &str| format!("{}&last_event_id={last}", ws_url_with_token(app.public, token));
    let mut customer_socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &client.token)).await;
    let ack = command(&mut customer_socket, "send_message", data).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["data"]["message"]["seq"], 3, "stored once, after c-2");
    let mut mitra = WsClient::connect_welcomed(&resume(&mitra_token, &mitra_last)).await;
    let (after, _) = read_messages(&mut mitra, &["c-3"]).await;
    assert_eq!(after, ["c-3"], "nothing lost, nothing repeated");
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/messages"));
    let (_, history) = app.call(Method::GET, &url, Some(&mitra_token), None).await;
    let stored: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["client_msg_id"].as_str())
        .collect();
    assert_eq!(stored, ["c-1", "c-2", "c-3"]);
}
