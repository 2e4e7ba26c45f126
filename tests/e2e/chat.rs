//! Chat over the hub and its REST fallback: ordered, stored before the ack, idempotent
//! resends, receipts, typing, pushes, resume and history visibility.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use domain::auth::Role;
use domain::chat::store::{NewMessage, Sent};
use domain::ids::UserId;

use crate::harness::{TestApp, WsClient, ws_url_with_token};
use crate::pairing::{
    Customer, OnlineMitra, accept, customer, new_online_mitra, next_event, paid, start_blast,
};

/// A customer and a mitra in an active session, each with a socket.
pub struct Paired {
    pub customer: Customer,
    pub mitra: OnlineMitra,
    pub session: String,
}

pub async fn paired(app: &TestApp) -> Paired {
    let operator = app.sign_in_operator().await;
    let mut mitra = new_online_mitra(app, &operator).await;
    let mut customer = customer(app).await;
    let payment = paid(app, &customer.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(app, &customer.token, &payment).await;
    next_event(&mut mitra.socket, "chat_request").await;
    let (status, accepted) = accept(app, &mitra.token, request["id"].as_str().expect("id")).await;
    assert_eq!(status, 200, "{accepted}");
    next_event(&mut customer.socket, "paired").await;
    next_event(&mut mitra.socket, "paired").await;
    let session = accepted["chat_session"]["id"].as_str().expect("session").to_owned();
    Paired { customer, mitra, session }
}

pub async fn send_rest(
    app: &TestApp,
    token: &str,
    session: &str,
    client_msg_id: &str,
    body: &str,
) -> (u16, Value) {
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/messages"));
    app.post(&url, Some(token), json!({"client_msg_id": client_msg_id, "body": body})).await
}

pub async fn history(app: &TestApp, token: &str, session: &str, query: &str) -> Vec<Value> {
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/messages{query}"));
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

/// The `client_msg_id` of every message stored in `session` (up to `query`'s page), in
/// order: what an app refetches over REST.
pub async fn stored_ids(app: &TestApp, token: &str, session: &str, query: &str) -> Vec<String> {
    let messages = history(app, token, session, query).await;
    messages.iter().filter_map(|m| m["client_msg_id"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn messages_are_stored_before_the_ack_and_reach_both_sides_in_order() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    let mut second_device = WsClient::connect_welcomed(&ws_url_with_token(app.public, &customer.token)).await;

    // Sent from the second device: the first shows what the customer's other devices get.
    let ack = second_device
        .command(
            "send_message",
            json!({"session_id": session, "client_msg_id": "c-1", "body": "Halo, aku mau cerita"}),
        )
        .await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(
        (ack["data"]["message"]["seq"].as_i64(), ack["data"]["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    // Stored before the ack: history already has it.
    assert_eq!(history(&app, &mitra.token, &session, "").await.len(), 1);

    let got = next_event(&mut mitra.socket, "chat_message").await;
    assert_eq!(
        (got["message"]["body"].as_str(), got["message"]["sender_role"].as_str()),
        (Some("Halo, aku mau cerita"), Some("customer"))
    );

    let (status, sent) = send_rest(&app, &mitra.token, &session, "m-1", "Halo, aku dengerin ya").await;
    assert_eq!((status, sent["message"]["seq"].as_i64()), (201, Some(2)));
    // The customer's other device gets the message it sent, then the mitra's; the device
    // that sent it has it in its ack and gets only the mitra's (its own was published
    // before its ack, so an echo would have come first).
    assert_eq!(next_event(&mut customer.socket, "chat_message").await["message"]["client_msg_id"], "c-1");
    assert_eq!(next_event(&mut customer.socket, "chat_message").await["message"]["seq"], 2);
    assert_eq!(next_event(&mut second_device, "chat_message").await["message"]["seq"], 2);

    let all = history(&app, &customer.token, &session, "").await;
    let seqs: Vec<i64> = all.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(history(&app, &customer.token, &session, "?after_seq=1").await.len(), 1);
    assert_eq!(history(&app, &customer.token, &session, "?before_seq=2").await[0]["seq"], 1);
    // Both: the messages between them, which fills a gap an app noticed.
    send_rest(&app, &mitra.token, &session, "m-2", "Ceritain aja").await;
    let between = history(&app, &customer.token, &session, "?after_seq=1&before_seq=3").await;
    assert_eq!(between.iter().filter_map(|m| m["seq"].as_i64()).collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        history(&app, &customer.token, &session, "?after_seq=2&before_seq=2").await,
        Vec::<Value>::new()
    );
}

/// Connects and reads the `welcome`; returns the socket and its number within its hub
/// instance (the end of the welcome's `connection_id`).
async fn connect_numbered(url: &str) -> (WsClient, u64) {
    let mut client = WsClient::connect(url).await;
    let welcome = client.next_json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let number = welcome["data"]["connection_id"].as_str().and_then(|id| id.rsplit('-').next());
    (client, number.and_then(|n| n.parse().ok()).expect("a numbered connection id"))
}

#[tokio::test]
async fn a_message_skips_the_socket_it_came_in_on_and_reaches_the_senders_other_devices() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    let (mut sender, number) = connect_numbered(&ws_url_with_token(app.public, &customer.token)).await;
    // A device of the customer on the other instance with the same number there: only the
    // instance tells it from the sender.
    let mut elsewhere = loop {
        let (socket, n) = connect_numbered(&ws_url_with_token(sibling.public, &customer.token)).await;
        assert!(n <= number, "the sibling's numbers passed {number}");
        if n == number {
            break socket;
        }
    };

    let ack = sender
        .command("send_message", json!({"session_id": session, "client_msg_id": "c-1", "body": "dari hp"}))
        .await;
    assert_eq!(
        (ack["type"].as_str(), ack["data"]["message"]["seq"].as_i64()),
        (Some("message_ack"), Some(1))
    );
    for (name, socket) in
        [("mitra", &mut mitra.socket), ("same instance", &mut customer.socket), ("elsewhere", &mut elsewhere)]
    {
        let got = next_event(socket, "chat_message").await;
        assert_eq!(got["message"]["client_msg_id"], "c-1", "{name}");
    }
    // The sender's next message event is the mitra's: its own, published before its ack,
    // would have come first.
    let (status, _) = send_rest(&app, &mitra.token, &session, "m-1", "iya?").await;
    assert_eq!(status, 201);
    assert_eq!(next_event(&mut sender, "chat_message").await["message"]["seq"], 2);
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_is_stored_once() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mitra, session } = paired(&app).await;
    let first = customer
        .socket
        .command("send_message", json!({"session_id": session, "client_msg_id": "dup", "body": "sekali"}))
        .await;
    let again = customer
        .socket
        .command("send_message", json!({"session_id": session, "client_msg_id": "dup", "body": "sekali"}))
        .await;
    assert_eq!(first["data"]["message"]["id"], again["data"]["message"]["id"]);
    assert_eq!(again["data"]["duplicate"], true);
    // The REST fallback and several devices at once: still one message.
    let resends = (0..5).map(|_| send_rest(&app, &customer.token, &session, "dup", "sekali"));
    for (status, body) in futures::future::join_all(resends).await {
        assert_eq!((status, body["message"]["id"].clone()), (200, first["data"]["message"]["id"].clone()));
    }
    assert_eq!(history(&app, &mitra.token, &session, "").await.len(), 1);
    // The next message is numbered right after: no number was spent on the resends.
    let (_, next) = send_rest(&app, &customer.token, &session, "next", "lanjut").await;
    assert_eq!(next["message"]["seq"], 2);
}

#[tokio::test]
async fn concurrent_sends_from_both_sides_and_devices_are_numbered_without_gaps() {
    // 60 sends of one customer at once: more than an account's budget of writes allows
    // (field_trust.rs tests that); this test is about the numbering race.
    let app = TestApp::spawn_with(|s| s.hub.command_burst = 200).await;
    let Paired { customer, mitra, session } = paired(&app).await;
    let planned: Vec<(&str, String, &str)> = (0..30)
        .flat_map(|n| {
            [
                (customer.token.as_str(), format!("c-{n}"), "dari customer"),
                (customer.token.as_str(), format!("c2-{n}"), "perangkat kedua"),
                (mitra.token.as_str(), format!("m-{n}"), "dari mitra"),
            ]
        })
        .collect();
    let sends = planned.iter().map(|(token, id, body)| send_rest(&app, token, &session, id, body));
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(|(status, _)| *status == 201), "{results:?}");
    let seqs: BTreeSet<i64> =
        results.iter().filter_map(|(_, body)| body["message"]["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=90).collect::<BTreeSet<i64>>(), "every number once, no gaps");
    let stored = history(&app, &mitra.token, &session, "?limit=200").await;
    let in_order: Vec<i64> = stored.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(in_order, (1..=90).collect::<Vec<i64>>());
}

#[tokio::test]
async fn commands_sent_back_to_back_keep_their_order_within_each_session() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    // A second session on the same mitra socket (the default cap is 3).
    let mut other = crate::pairing::customer(&app).await;
    let payment = paid(&app, &other.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &other.token, &payment).await;
    next_event(&mut mitra.socket, "chat_request").await;
    let (status, accepted) = accept(&app, &mitra.token, request["id"].as_str().expect("id")).await;
    assert_eq!(status, 200, "{accepted}");
    next_event(&mut other.socket, "paired").await;
    let second = accepted["chat_session"]["id"].as_str().expect("session").to_owned();

    // 20 sends written without waiting for any answer, alternating the two sessions.
    let per_session = 10;
    for n in 0..per_session {
        for (name, session) in [("a", &session), ("b", &second)] {
            let data = json!({"session_id": session, "client_msg_id": format!("{name}-{n}"), "body": "x"});
            mitra
                .socket
                .send_json(json!({"type": "send_message", "ref": format!("{name}-{n}"), "data": data}))
                .await;
        }
    }
    let mut seq_of = std::collections::HashMap::new();
    while seq_of.len() < 2 * per_session {
        let frame = mitra.socket.next_json().await;
        if frame["type"] == "message_ack" {
            let message = &frame["data"]["message"];
            seq_of.insert(message["client_msg_id"].as_str().expect("id").to_owned(), message["seq"].clone());
        } else {
            assert_ne!(frame["type"], "error", "{frame}");
        }
    }
    for name in ["a", "b"] {
        let seqs: Vec<Value> = (0..per_session).map(|n| seq_of[&format!("{name}-{n}")].clone()).collect();
        let expected: Vec<Value> = (1..=per_session).map(|seq| json!(seq)).collect();
        assert_eq!(seqs, expected, "session {name}: stored in the order sent");
    }
    // Each customer got exactly their session's messages, in order.
    for (socket, name) in [(&mut customer.socket, "a"), (&mut other.socket, "b")] {
        for n in 0..per_session {
            let got = next_event(socket, "chat_message").await;
            assert_eq!(got["message"]["client_msg_id"], format!("{name}-{n}"));
        }
    }
}

#[tokio::test]
async fn receipts_move_forward_only_and_reach_the_sender() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    for n in 1..=3 {
        send_rest(&app, &customer.token, &session, &format!("c-{n}"), "pesan").await;
    }
    let ack = mitra.socket.command("mark_delivered", json!({"session_id": session, "up_to_seq": 3})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let delivered = next_event(&mut customer.socket, "message_delivered").await;
    assert_eq!((delivered["up_to_seq"].as_i64(), delivered["by"].as_str()), (Some(3), Some("mitra")));
    mitra.socket.command("mark_read", json!({"session_id": session, "up_to_seq": 2})).await;
    assert_eq!(next_event(&mut customer.socket, "message_read").await["up_to_seq"], 2);
    // Backwards, or past the last message: clamped, never lowered.
    mitra.socket.command("mark_read", json!({"session_id": session, "up_to_seq": 1})).await;
    mitra.socket.command("mark_read", json!({"session_id": session, "up_to_seq": 99})).await;
    assert_eq!(next_event(&mut customer.socket, "message_read").await["up_to_seq"], 3);
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}"));
    let (_, view) = app.call(Method::GET, &url, Some(&customer.token), None).await;
    assert_eq!(
        (view["partner_delivered_seq"].as_i64(), view["partner_read_seq"].as_i64()),
        (Some(3), Some(3))
    );
}

#[tokio::test]
async fn typing_reaches_the_other_side_is_never_stored_and_is_throttled() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    let ack = customer.socket.command("typing", json!({"session_id": session})).await;
    assert_eq!(ack["data"]["throttled"], false);
    let typing = loop {
        let frame = mitra.socket.next_json().await;
        if frame["type"] == "typing" {
            break frame;
        }
    };
    assert!(typing.get("id").is_none(), "typing is ephemeral: {typing}");
    assert_eq!(
        (typing["data"]["by"].as_str(), typing["data"]["expires_in_ms"].as_i64()),
        (Some("customer"), Some(5_000))
    );
    let again = customer.socket.command("typing", json!({"session_id": session})).await;
    assert_eq!(again["data"]["throttled"], true);
    assert!(history(&app, &mitra.token, &session, "").await.is_empty());
}

#[tokio::test]
async fn bad_messages_and_other_peoples_sessions_are_refused_with_codes() {
    let app = TestApp::spawn().await;
    let Paired { mut customer, mitra, session } = paired(&app).await;
    let stranger = crate::pairing::customer(&app).await;
    let cases = [
        (json!({"session_id": session, "client_msg_id": "a", "body": ""}), "invalid_message_body"),
        (json!({"session_id": session, "client_msg_id": "a", "body": "   "}), "invalid_message_body"),
        (
            json!({"session_id": session, "client_msg_id": "a", "body": "x".repeat(4_001)}),
            "invalid_message_body",
        ),
        (json!({"session_id": session, "client_msg_id": "", "body": "hi"}), "invalid_client_msg_id"),
        (
            json!({"session_id": session, "client_msg_id": "y".repeat(65), "body": "hi"}),
            "invalid_client_msg_id",
        ),
        (json!({"session_id": Uuid::new_v4(), "client_msg_id": "a", "body": "hi"}), "chat_session_not_found"),
        (json!({"session_id": "nope", "client_msg_id": "a", "body": "hi"}), "invalid_command"),
        (json!({"session_id": session, "body": "hi"}), "invalid_command"),
    ];
    for (data, code) in cases {
        let answer = customer.socket.command("send_message", data.clone()).await;
        assert_eq!(
            (answer["type"].as_str(), answer["data"]["code"].as_str()),
            (Some("error"), Some(code)),
            "{data}"
        );
    }
    let max = "x".repeat(4_000);
    let ok = customer
        .socket
        .command("send_message", json!({"session_id": session, "client_msg_id": "max", "body": max}))
        .await;
    assert_eq!(ok["type"], "message_ack");
    // Someone else's session: not found, whether they send, read or mark.
    let (status, body) = send_rest(&app, &stranger.token, &session, "s-1", "halo").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("chat_session_not_found")));
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/messages"));
    let (status, _) = app.call(Method::GET, &url, Some(&stranger.token), None).await;
    assert_eq!(status, 404);
    let (status, body) = app.call(Method::GET, &format!("{url}?limit=0"), Some(&mitra.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_page")));
    let (status, body) = app.call(Method::GET, &format!("{url}?limit=ten"), Some(&mitra.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));
    assert_eq!(history(&app, &mitra.token, &session, "").await.len(), 1, "nothing else was stored");
}

#[tokio::test]
async fn a_recipient_without_a_socket_gets_one_push_naming_the_session_and_resumes_everything() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let Paired { customer, mut mitra, session } = paired(&app).await;
    let device = json!({"fcm_token": format!("fcm-{}", mitra.id), "platform": "android"});
    app.call(Method::PUT, &app.public_url("/api/shared/devices"), Some(&mitra.token), Some(device)).await;
    let last_id = {
        send_rest(&app, &customer.token, &session, "before", "sebelum").await;
        let frame = loop {
            let frame = mitra.socket.next_json().await;
            if frame["type"] == "chat_message" {
                break frame;
            }
        };
        frame["id"].as_str().expect("durable").to_owned()
    };
    drop(mitra.socket);
    // Wait until the hub has dropped the mitra's route.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while domain::presence::user_connected(&app.store, &app.settings.presence, UserId(mitra.id))
        .await
        .expect("read")
    {
        assert!(tokio::time::Instant::now() < deadline, "the socket never went away");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for n in 1..=3 {
        send_rest(&app, &customer.token, &session, &format!("away-{n}"), &format!("pesan {n}")).await;
    }
    let pushes: Vec<Value> = sqlx::query_scalar(
        "SELECT convert_from(job, 'UTF8')::jsonb FROM apalis.jobs WHERE job_type = $1 ORDER BY run_at",
    )
    .bind(std::any::type_name::<domain::jobs::Push>())
    .fetch_all(pool)
    .await
    .expect("pushes");
    assert_eq!(pushes.len(), 3, "one push per message while away");
    for push in &pushes {
        assert_eq!(push["account"], json!(mitra.id));
        assert_eq!(push["message"]["data"]["chat_session_id"], session.as_str());
        assert_eq!(
            push["message"]["collapse_key"],
            format!("chat:{session}").as_str(),
            "they collapse into one"
        );
        assert_eq!(push["message"]["title"], "Rani");
    }
    // Back online with the last id seen: the three, in order, nothing lost.
    let url = format!("{}&last_event_id={last_id}", ws_url_with_token(app.public, &mitra.token));
    let mut back = WsClient::connect_welcomed(&url).await;
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let frame = back.next_json().await;
        if frame["type"] == "chat_message" {
            bodies.push(frame["data"]["message"]["body"].as_str().expect("body").to_owned());
        }
    }
    assert_eq!(bodies, vec!["pesan 1", "pesan 2", "pesan 3"]);
}

#[tokio::test]
async fn each_side_sees_the_other_only_by_the_name_it_may_see() {
    let app = TestApp::spawn().await;
    let Paired { customer, mitra, session } = paired(&app).await;
    let list = app.public_url("/api/shared/chat-sessions");
    let (_, mine) = app.call(Method::GET, &list, Some(&customer.token), None).await;
    assert_eq!(mine["sessions"][0]["partner"], json!({"id": mitra.id, "display_name": "Bestie Ayu"}));
    let (_, theirs) = app.call(Method::GET, &list, Some(&mitra.token), None).await;
    assert_eq!(theirs["sessions"][0]["partner"], json!({"call_name": "Rani"}));
    assert!(!theirs.to_string().contains("+62"), "no phone number reaches a mitra");
    let (_, card) = app
        .call(Method::GET, &app.public_url("/api/client/chat-sessions/active"), Some(&customer.token), None)
        .await;
    assert_eq!(
        (card["session"]["id"].as_str(), card["session"]["status"].as_str()),
        (Some(session.as_str()), Some("active"))
    );
    let (status, _) = app
        .call(Method::GET, &app.public_url("/api/client/chat-sessions/active"), Some(&mitra.token), None)
        .await;
    assert_eq!(status, 403);
}

fn new_message(session: &str, sender: Uuid, role: Role, client_msg_id: &str) -> NewMessage {
    NewMessage {
        session: session.parse().expect("session id"),
        sender_id: UserId(sender),
        sender_role: role,
        client_msg_id: client_msg_id.to_owned(),
        body: format!("isi {client_msg_id}"),
    }
}

/// Each message's number, `None` for one the batch left alone.
fn seqs(stored: &[Option<Sent>]) -> Vec<Option<i64>> {
    stored.iter().map(|sent| sent.as_ref().map(|sent| sent.message.seq)).collect()
}

/// Sends a message over REST that is to be refused: its status and error code.
async fn refusal(app: &TestApp, token: &str, session: &str, client_msg_id: &str) -> (u16, String) {
    let (status, body) = send_rest(app, token, session, client_msg_id, "isi").await;
    (status, body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {body}")).to_owned())
}

/// `(last_seq, the stored numbers in order)` of a session, read from Postgres.
async fn numbering(app: &TestApp, session: &str) -> (i64, Vec<i64>) {
    let id: Uuid = session.parse().expect("session id");
    let last: i64 = sqlx::query_scalar("SELECT last_seq FROM chat_sessions WHERE id = $1")
        .bind(id)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("session");
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM chat_messages WHERE chat_session_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(app.store.pg_pool())
            .await
            .expect("messages");
    (last, seqs)
}

#[tokio::test]
async fn a_batch_stores_several_sessions_messages_in_order_and_leaves_the_rest_alone() {
    let app = TestApp::spawn().await;
    let a = paired(&app).await;
    let b = paired(&app).await;
    let (_, earlier) = send_rest(&app, &a.customer.token, &a.session, "earlier", "sudah ada").await;
    assert_eq!(earlier["message"]["seq"], 1);

    let batch = [
        new_message(&a.session, a.customer.id, Role::Customer, "a1"),
        new_message(&b.session, b.mitra.id, Role::Mitra, "b1"),
        new_message(&a.session, a.mitra.id, Role::Mitra, "a2"),
        // Into a session that is not the sender's, and a resend of a stored message.
        new_message(&b.session, a.customer.id, Role::Customer, "not-mine"),
        new_message(&a.session, a.customer.id, Role::Customer, "earlier"),
        new_message(&a.session, a.customer.id, Role::Customer, "a3"),
    ];
    let stored = app.store.send_batch(&batch).await.expect("batch");
    assert_eq!(
        seqs(&stored),
        [Some(2), Some(1), Some(3), None, None, Some(4)],
        "numbered in the order given, per session"
    );
    let a1 = stored[0].as_ref().expect("a1 stored");
    assert_eq!(
        (a1.message.body.as_str(), a1.session.mitra_id.0, a1.stored_now),
        ("isi a1", a.mitra.id, true)
    );
    assert_eq!(numbering(&app, &a.session).await, (4, vec![1, 2, 3, 4]));
    assert_eq!(numbering(&app, &b.session).await, (1, vec![1]));

    // The ones left alone get their answers when sent alone.
    assert_eq!(
        refusal(&app, &a.customer.token, &b.session, "not-mine").await,
        (404, "chat_session_not_found".to_owned())
    );
    let (status, resent) = send_rest(&app, &a.customer.token, &a.session, "earlier", "sudah ada").await;
    assert_eq!((status, resent["message"]["id"].clone()), (200, earlier["message"]["id"].clone()));

    // A client id twice in one batch fails it as a whole: nothing stored, no number spent.
    let twice = [
        new_message(&a.session, a.customer.id, Role::Customer, "twice"),
        new_message(&b.session, b.customer.id, Role::Customer, "b2"),
        new_message(&a.session, a.customer.id, Role::Customer, "twice"),
    ];
    assert!(app.store.send_batch(&twice).await.is_err());
    assert_eq!(numbering(&app, &a.session).await, (4, vec![1, 2, 3, 4]));
    assert_eq!(numbering(&app, &b.session).await, (1, vec![1]));

    // A session that is not open takes nothing from a batch; alone, the send says why.
    crate::pairing::set_config(app.store.pg_pool(), "early_end_mitra_enabled", json!(true)).await;
    let end = app.public_url(&format!("/api/mitra/chat-requests/sessions/{}/end", b.session));
    let (status, ended) =
        app.post(&end, Some(&b.mitra.token), json!({"reason_code": "customer_abusive"})).await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("closing")), "{ended}");
    let late = [
        new_message(&b.session, b.customer.id, Role::Customer, "late"),
        new_message(&a.session, a.mitra.id, Role::Mitra, "a5"),
    ];
    assert_eq!(seqs(&app.store.send_batch(&late).await.expect("batch")), [None, Some(5)]);
    assert_eq!(numbering(&app, &b.session).await, (1, vec![1]));
    assert_eq!(
        refusal(&app, &b.customer.token, &b.session, "late").await,
        (409, "chat_session_not_open".to_owned())
    );
}

#[tokio::test]
async fn batches_stored_at_once_over_the_same_sessions_number_every_message_once() {
    let app = TestApp::spawn().await;
    let pairs = [paired(&app).await, paired(&app).await, paired(&app).await];
    // Each round, two batches (as two processes' queues would send them) run at once over the
    // same three sessions, in opposite orders: each message gets the next number of its
    // session however the two interleave, and neither batch fails.
    for round in 0..20 {
        let forward: Vec<NewMessage> = pairs
            .iter()
            .map(|p| new_message(&p.session, p.customer.id, Role::Customer, &format!("f{round}")))
            .collect();
        let backward: Vec<NewMessage> = pairs
            .iter()
            .rev()
            .map(|p| new_message(&p.session, p.mitra.id, Role::Mitra, &format!("b{round}")))
            .collect();
        let (f, b) = tokio::join!(app.store.send_batch(&forward), app.store.send_batch(&backward));
        let (f, b) = (f.expect("forward batch"), b.expect("backward batch"));
        assert!(f.iter().chain(&b).all(Option::is_some), "round {round}: every message stored");
    }
    for p in &pairs {
        assert_eq!(numbering(&app, &p.session).await, (40, (1..=40).collect::<Vec<i64>>()));
    }
}
