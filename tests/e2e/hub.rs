//! The realtime hub: routing across instances, several devices, resume without loss,
//! resync, presence and its expiry, and the limits that protect a process.

use std::time::{Duration, Instant};

use domain::auth::Role;
use domain::event::{Event, TypingData};
use domain::ids::{MitraId, UserId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{BestieProcess, TestApp, WsClient, eventually, message_event, ws_url_with_token};

fn event(n: i64) -> Event {
    message_event(n, "hai")
}

async fn publish(app: &TestApp, user: Uuid, n: i64) -> String {
    domain::broker::publish(&app.store, &app.settings.hub, UserId(user), &event(n)).await.expect("publish").id
}

fn url(app: &TestApp, user: Uuid, role: Role, last_event_id: Option<&str>) -> String {
    let base = ws_url_with_token(app.public, &app.token_for(user, role));
    match last_event_id {
        Some(id) => format!("{base}&last_event_id={id}"),
        None => base,
    }
}

#[tokio::test]
async fn an_event_published_on_one_instance_reaches_a_user_on_another() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let user = Uuid::new_v4();
    let mut socket = WsClient::connect_welcomed(&url(&a, user, Role::Customer, None)).await;

    let event = event(1);
    let id =
        domain::broker::publish(&b.store, &b.settings.hub, UserId(user), &event).await.expect("publish").id;
    let frame = socket.next_json().await;
    let mut sent = serde_json::to_value(&event).expect("json");
    sent["id"] = json!(id);
    assert_eq!(frame, sent);
}

#[tokio::test]
async fn a_user_with_two_devices_gets_every_event_on_both() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let user = Uuid::new_v4();
    let mut phone = WsClient::connect_welcomed(&url(&a, user, Role::Mitra, None)).await;
    let mut tablet = WsClient::connect_welcomed(&url(&b, user, Role::Mitra, None)).await;
    let mut other_user = WsClient::connect_welcomed(&url(&a, Uuid::new_v4(), Role::Mitra, None)).await;

    let ids = [publish(&a, user, 1).await, publish(&b, user, 2).await];
    for device in [&mut phone, &mut tablet] {
        for (n, id) in ids.iter().enumerate() {
            let frame = device.next_json().await;
            assert_eq!(
                (frame["id"].as_str(), &frame["data"]["message"]["seq"]),
                (Some(id.as_str()), &json!(n + 1))
            );
        }
    }
    // Nobody else got them: the next frame the other user sees is the answer to its ping.
    other_user.send_json(json!({"type": "ping", "ref": 7})).await;
    assert_eq!(other_user.next_json().await, json!({"type": "pong", "ref": 7, "data": {}}));
}

#[tokio::test]
async fn a_client_that_reconnects_resumes_with_nothing_lost_or_repeated() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    let user = Uuid::new_v4();
    let mut socket = WsClient::connect_welcomed(&url(&a, user, Role::Customer, None)).await;
    publish(&b, user, 1).await;
    let last = socket.next_json().await["id"].as_str().expect("id").to_owned();
    // The connection drops without a close handshake; events keep coming meanwhile.
    drop(socket);
    for n in 2..=4 {
        publish(&b, user, n).await;
    }

    // Reconnect (to the other instance) while a producer keeps publishing.
    let producer = {
        let b_store = b.store.clone();
        let hub = b.settings.hub.clone();
        tokio::spawn(async move {
            for n in 5..=60 {
                domain::broker::publish(&b_store, &hub, UserId(user), &event(n)).await.expect("publish");
            }
        })
    };
    let mut socket = WsClient::connect_welcomed(&url(&b, user, Role::Customer, Some(&last))).await;
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    while seen.len() < 59 {
        let frame = socket.next_json().await;
        match frame["type"].as_str() {
            Some("chat_message") => {
                seen.push(frame["data"]["message"]["seq"].as_i64().expect("seq"));
                ids.push(
                    domain::broker::StreamId::parse(frame["id"].as_str().expect("id")).expect("valid id"),
                );
            }
            Some("resumed") => assert!(frame["data"]["count"].as_u64().expect("count") >= 3),
            other => panic!("unexpected {other:?}: {frame}"),
        }
    }
    producer.await.expect("producer");
    assert_eq!(
        seen,
        (2..=60).collect::<Vec<_>>(),
        "every event after the last one processed, once, in order"
    );
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
}

#[tokio::test]
async fn a_gap_that_is_no_longer_kept_gives_resync_required() {
    let app = TestApp::spawn_with(|s| s.hub.stream_maxlen = 10).await;
    let user = Uuid::new_v4();
    let first = publish(&app, user, 0).await;
    // MAXLEN ~ trims whole stream nodes (100 entries): publish well past one node.
    for n in 1..=350 {
        publish(&app, user, n).await;
    }
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, Some(&first))).await;
    let frame = socket.next_json().await;
    assert_eq!(frame["type"], "resync_required", "{frame}");
    let resyncs = r#"bestie_hub_resumes_total{outcome="resync_required"} 1"#;
    assert!(app.metrics().await.lines().any(|line| line == resyncs));

    // A recent id is still in the stream: that client resumes normally.
    let recent = publish(&app, user, 351).await;
    publish(&app, user, 352).await;
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, Some(&recent))).await;
    assert_eq!(socket.next_json().await["data"]["message"]["seq"], 352);
    assert_eq!(socket.next_json().await, json!({"type": "resumed", "data": {"count": 1}}));
}

#[tokio::test]
async fn a_user_whose_stream_expired_or_was_lost_gets_resync_required() {
    let app = TestApp::spawn_with(|s| s.hub.stream_ttl_s = 1).await;
    let user = Uuid::new_v4();
    let id = publish(&app, user, 1).await;
    // The stream outlives its TTL.
    eventually(Duration::from_secs(5), "stream expiry", || async {
        matches!(
            domain::broker::backlog(&app.store, &app.settings.hub, UserId(user), &id).await,
            Ok(domain::broker::store::Backlog::ResyncRequired)
        )
    })
    .await;
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, Some(&id))).await;
    assert_eq!(socket.next_json().await["type"], "resync_required");
}

#[tokio::test]
async fn a_malformed_last_event_id_is_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let bad = url(&app, Uuid::new_v4(), Role::Customer, Some("yesterday"));
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("json");
            assert_eq!(body["error"]["code"], "invalid_last_event_id");
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn typing_reaches_open_sockets_and_is_never_replayed() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, None)).await;
    let session = domain::ids::SessionId(Uuid::new_v4());
    let typing = Event::Typing(TypingData { session_id: session, by: Role::Mitra, expires_in_ms: 5_000 });
    domain::broker::publish_ephemeral(&app.store, UserId(user), &typing).await.expect("publish");
    assert_eq!(
        socket.next_json().await,
        json!({"type": "typing", "data": {"session_id": session, "by": "mitra", "expires_in_ms": 5_000}})
    );
    let id = publish(&app, user, 1).await;
    assert_eq!(socket.next_json().await["id"], id.as_str());
    drop(socket);
    domain::broker::publish_ephemeral(&app.store, UserId(user), &typing).await.expect("publish");
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, Some(&id))).await;
    assert_eq!(socket.next_json().await, json!({"type": "resumed", "data": {"count": 0}}));
}

async fn available(app: &TestApp) -> u64 {
    app.store.available_mitra_count().await.expect("count")
}

async fn set_status(app: &TestApp, token: &str, online: bool) -> Value {
    let (status, body) =
        app.post(&app.public_url("/api/mitra/status"), Some(token), json!({"online": online})).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_mitra_is_available_only_while_switched_on_and_connected() {
    let app = TestApp::spawn().await;
    let mitra = Uuid::new_v4();
    let token = app.token_for(mitra, Role::Mitra);
    assert_eq!(
        set_status(&app, &token, true).await,
        json!({"status_online": true, "connected": false, "online": false})
    );
    assert_eq!(available(&app).await, 0);

    let phone = WsClient::connect_welcomed(&url(&app, mitra, Role::Mitra, None)).await;
    let tablet = WsClient::connect_welcomed(&url(&app, mitra, Role::Mitra, None)).await;
    assert_eq!(available(&app).await, 1);
    assert_eq!(
        set_status(&app, &token, false).await,
        json!({"status_online": false, "connected": true, "online": false})
    );
    assert_eq!(available(&app).await, 0);
    set_status(&app, &token, true).await;
    assert_eq!(available(&app).await, 1);

    // One device left: still connected. Both gone: offline.
    drop(phone);
    // Once the server has closed that socket, the mitra still holds the other one.
    eventually(Duration::from_secs(5), "the first socket closed on the server", || async {
        let metrics = app.metrics().await;
        metrics.lines().any(|line| line == "bestie_hub_connections 1")
    })
    .await;
    assert_eq!(available(&app).await, 1);
    drop(tablet);
    eventually(Duration::from_secs(5), "offline after the last socket", || async {
        available(&app).await == 0
    })
    .await;
    let (_, status) =
        app.call(reqwest::Method::GET, &app.public_url("/api/mitra/status"), Some(&token), None).await;
    assert_eq!(status, json!({"status_online": true, "connected": false, "online": false}));
}

#[tokio::test]
async fn a_mitra_at_the_cap_is_online_but_not_available() {
    let app = TestApp::spawn().await;
    let mitra = Uuid::new_v4();
    let token = app.token_for(mitra, Role::Mitra);
    set_status(&app, &token, true).await;
    let _socket = WsClient::connect_welcomed(&url(&app, mitra, Role::Mitra, None)).await;
    assert_eq!(available(&app).await, 1);
    set_cap(&app, 2).await;
    app.store.set_mitra_sessions(MitraId(mitra), 2, 2).await.expect("sessions");
    assert_eq!(available(&app).await, 0);
    set_cap(&app, 3).await;
    assert_eq!(available(&app).await, 1);
}

/// Changes the capacity cap as operators do: in its record, then copied to Redis. (Setting
/// only Redis's copy raced the process's own copy at start, which reads the record.)
async fn set_cap(app: &TestApp, cap: i64) {
    crate::pairing::set_config(app.store.pg_pool(), "max_customers_per_mitra", json!(cap)).await;
    domain::presence::sync_capacity_cap(&app.store).await.expect("cap");
}

#[tokio::test]
async fn a_crashed_hubs_users_go_offline_within_15_seconds() {
    let app = TestApp::spawn().await;
    let hub = BestieProcess::serve_with(app.settings.clone(), &["--role", "hub"]).await;
    let mitra = Uuid::new_v4();
    let token = app.token_for(mitra, Role::Mitra);
    set_status(&app, &token, true).await;
    let _socket = WsClient::connect_welcomed(&ws_url_with_token(hub.public, &token)).await;
    assert_eq!(available(&app).await, 1);
    assert!(
        domain::presence::user_connected(&app.store, &app.settings.presence, UserId(mitra))
            .await
            .expect("read")
    );

    let mut hub = hub;
    hub.child.kill().expect("kill -9");
    let took = eventually(Duration::from_secs(15), "a dead hub's mitra offline", || async {
        available(&app).await == 0
    })
    .await;
    assert!(
        !domain::presence::user_connected(&app.store, &app.settings.presence, UserId(mitra))
            .await
            .expect("read")
    );
    eprintln!("presence expired {took:?} after the hub was killed");
}

#[tokio::test]
async fn malformed_and_unknown_frames_get_an_error_and_the_socket_stays_up() {
    let app = TestApp::spawn().await;
    let mut socket = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
    socket.send_text("{not json".into()).await;
    assert_eq!(socket.next_json().await["data"]["code"], "invalid_frame");
    socket.send_json(json!({"type": "launch_rockets", "ref": "r1"})).await;
    let error = socket.next_json().await;
    assert_eq!((error["type"].as_str(), error["ref"].as_str()), (Some("error"), Some("r1")));
    assert_eq!(error["data"]["code"], "unknown_command");
    socket.send_json(json!({"data": {}})).await;
    assert_eq!(socket.next_json().await["data"]["code"], "invalid_frame");
    socket.send_binary(vec![1, 2, 3]).await;
    assert_eq!(socket.next_json().await["data"]["code"], "binary_not_supported");
    socket.send_json(json!({"type": "ping", "ref": "still-here"})).await;
    assert_eq!(socket.next_json().await, json!({"type": "pong", "ref": "still-here", "data": {}}));
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_socket_with_1009() {
    let app = TestApp::spawn().await;
    let mut socket = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
    socket.send_text(format!("{{\"type\":\"ping\",\"data\":\"{}\"}}", "x".repeat(70 * 1024))).await;
    assert_eq!(socket.closed().await.0, 1009);
}

#[tokio::test]
async fn a_client_over_its_command_rate_gets_errors_then_4029() {
    let app = TestApp::spawn_with(|s| {
        s.hub.commands_per_second = 1;
        s.hub.command_burst = 2;
    })
    .await;
    let mut socket = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
    for n in 0..2 {
        socket.send_json(json!({"type": "ping", "ref": n})).await;
        assert_eq!(socket.next_json().await["type"], "pong");
    }
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next_json().await["data"]["code"], "rate_limited");
    // Sent in one go, before the client reads the server's close.
    socket.stop_reading().await;
    for _ in 0..20 {
        socket.send_json(json!({"type": "ping"})).await;
    }
    assert_eq!(socket.closed().await, (4029, "rate_limited".to_owned()));
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_closed_with_1013() {
    let app = TestApp::spawn_with(|s| s.hub.send_queue_frames = 8).await;
    let user = Uuid::new_v4();
    // Connects and then reads nothing, so the kernel buffers fill and the queue after them.
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, None)).await;
    socket.stop_reading().await;
    let big = "x".repeat(32 * 1024);
    let mut closed = false;
    for n in 0..2_000 {
        let payload = message_event(n, &big);
        domain::broker::publish(&app.store, &app.settings.hub, UserId(user), &payload)
            .await
            .expect("publish");
        let metrics = app.metrics().await;
        if metrics.contains(r#"bestie_hub_connections_closed_total{code="1013"} 1"#) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow socket was never closed");
    let metrics = app.metrics().await;
    assert!(metrics.lines().any(|line| line == "bestie_hub_slow_consumer_closes_total 1"), "{metrics}");
    // The client, reading at last, finds the connection ended. Whether the close frame
    // itself got through depends on the kernel buffers it never drained; the server's
    // count above is the close reason.
    socket.closed().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_and_a_live_one_is_kept() {
    let app = TestApp::spawn_with(|s| {
        s.hub.ping_interval_s = 1;
        s.hub.idle_timeout_s = 2;
    })
    .await;
    // The library answers pings while the test reads, so a reading client stays.
    let mut live = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
    let mut silent = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
    silent.stop_reading().await;
    let started = Instant::now();
    let keep_reading = async {
        // Read (answering pings) for 4 s: longer than the idle timeout.
        let _ = tokio::time::timeout(Duration::from_secs(4), live.next_json()).await;
    };
    keep_reading.await;
    live.send_json(json!({"type": "ping"})).await;
    assert_eq!(live.next_json().await["type"], "pong");
    // The silent client never read, so never answered a ping: the server closed it with 4008.
    // Reading now, the client may first answer a buffered ping into the closed connection
    // and get a reset before it reaches the close frame, so the server's count is the reason.
    assert!(app.metrics().await.contains(r#"bestie_hub_connections_closed_total{code="4008"} 1"#));
    let (code, _) = silent.closed().await;
    assert!(code == 4008 || code == 1006, "closed with {code}");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn logging_out_closes_the_sockets_of_that_token_only() {
    let app = TestApp::spawn().await;
    let (_, access, refresh) = app.sign_in_customer(&crate::harness::unique_phone()).await;
    let (status, other) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200);
    let other_device = other["access_token"].as_str().expect("access");
    let mut this_device = WsClient::connect_welcomed(&ws_url_with_token(app.public, &access)).await;
    let mut second = WsClient::connect_welcomed(&ws_url_with_token(app.public, other_device)).await;

    let (status, _) = app.post(&app.public_url("/api/auth/logout"), Some(&access), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(this_device.closed().await, (4002, "logged_out".to_owned()));
    second.send_json(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(second.next_json().await["type"], "pong");
}

#[tokio::test]
async fn an_id_the_stream_never_generated_gives_resync_and_live_events_still_flow() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    publish(&app, user, 1).await;
    let future = "99999999999999-0";
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, Some(future))).await;
    assert_eq!(socket.next_json().await["type"], "resync_required");
    publish(&app, user, 2).await;
    assert_eq!(socket.next_json().await["data"]["message"]["seq"], 2);
}

#[tokio::test]
async fn server_frames_larger_than_the_client_frame_limit_are_delivered() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let mut socket = WsClient::connect_welcomed(&url(&app, user, Role::Customer, None)).await;
    let big = "y".repeat(100 * 1024);
    let payload = message_event(1, &big);
    domain::broker::publish(&app.store, &app.settings.hub, UserId(user), &payload).await.expect("publish");
    assert_eq!(socket.next_json().await["data"]["message"]["body"].as_str().map(str::len), Some(100 * 1024));
}

/// The server answers a client's close frame with the same code, so the client records a
/// clean close (1000, 1001, its own 4000) instead of an abnormal end (1006).
#[tokio::test]
async fn a_clients_close_is_answered_with_its_own_code() {
    let app = TestApp::spawn().await;
    for code in [1000, 1001, 4000] {
        let mut socket = WsClient::connect_welcomed(&url(&app, Uuid::new_v4(), Role::Customer, None)).await;
        let (answered, _) = socket.close_with(code).await;
        assert_eq!(answered, code, "the client recorded {answered} for its close {code}");
    }
}
