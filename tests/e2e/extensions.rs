//! Extensions: paid into their own payment session, charged only on approval (explicit or
//! by the window's default), rejected without a charge, always rejected when the mitra is
//! offline, and resolved once when an approval races the window's timer.

use bestie::ServiceRole;
use domain::ids::MitraId;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use workers::timers::{FireTimer, TimerKind};

use crate::chat::{Paired, paired, send_rest};
use crate::fake_provider::FakeProvider;
use crate::harness::TestApp;
use crate::pairing::{next_event, set_config};
use crate::sessions::{end_in, fire};

async fn app() -> TestApp {
    // No worker: the tests fire the window's timer themselves.
    TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Hub].into(), |_| {}).await
}

/// Creates the extension payment and asks for the extension; returns (payment, extension).
async fn ask(app: &TestApp, paired: &Paired) -> (Value, Value) {
    let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": paired.session});
    let (status, payment) =
        app.post(&app.public_url("/api/client/payment-sessions"), Some(&paired.customer.token), order).await;
    assert_eq!(status, 201, "{payment}");
    let url = app.public_url(&format!("/api/client/chat-sessions/{}/extension", paired.session));
    let (status, extension) = app
        .post(&url, Some(&paired.customer.token), json!({"extension_payment_session_id": payment["id"]}))
        .await;
    assert_eq!(status, 201, "{extension}");
    (payment, extension)
}

async fn charges(pool: &PgPool, payment: &Value) -> Vec<(String, i64, String)> {
    sqlx::query_as("SELECT status, amount, idempotency_key FROM charges WHERE payment_session_id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_all(pool)
        .await
        .expect("charges")
}

async fn payment_status(pool: &PgPool, payment: &Value) -> String {
    sqlx::query_scalar("SELECT status FROM payment_sessions WHERE id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_one(pool)
        .await
        .expect("status")
}

async fn ends_at(pool: &PgPool, session: &str) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT ends_at FROM chat_sessions WHERE id = $1::uuid")
        .bind(session)
        .fetch_one(pool)
        .await
        .expect("ends_at")
}

/// Ends the extension's window now and fires its timer.
async fn window_ends(app: &TestApp, extension: &Value) {
    sqlx::query(
        "UPDATE extension_requests SET requested_at = now() - interval '1 minute', expires_at = now() - interval '1 second'
         WHERE id = $1::uuid",
    )
    .bind(extension["id"].as_str())
    .execute(app.store.pg_pool())
    .await
    .expect("time travel");
    let ctx = workers::JobContext::new(app.services.clone());
    let timer = FireTimer {
        kind: TimerKind::ExpireExtension,
        key: extension["id"].as_str().expect("id").parse().expect("uuid"),
        due_at_ms: domain::clock::now_ms(),
    };
    workers::fire_timer::run(&timer, &ctx).await.expect("timer");
}

/// The session's waiting extension as `caller` reads it (`Value::Null` when none).
async fn pending(app: &TestApp, token: &str, session: &str) -> Value {
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/extension"));
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["extension"].clone()
}

fn answer_url(app: &TestApp, extension: &Value, answer: &str) -> String {
    app.public_url(&format!(
        "/api/mitra/extension-requests/{}/{answer}",
        extension["id"].as_str().expect("id")
    ))
}

#[tokio::test]
async fn an_approved_extension_is_charged_once_and_resumes_the_session_for_both() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    let before = ends_at(pool, &paired.session).await;
    let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": paired.session});
    let (_, early) =
        app.post(&app.public_url("/api/client/payment-sessions"), Some(&paired.customer.token), order).await;
    let confirm = app
        .public_url(&format!("/api/client/payment-sessions/{}/confirm", early["id"].as_str().expect("id")));
    let (status, body) = app.post(&confirm, Some(&paired.customer.token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("extension_charged_on_approval")));

    let (payment, extension) = ask(&app, &paired).await;
    assert_eq!((payment["is_free_trial"].as_bool(), payment["amount"].as_i64()), (Some(false), Some(15_000)));
    let asked = next_event(&mut paired.mitra.socket, "extension_requested").await;
    assert_eq!(
        (asked["extension_id"].clone(), asked["duration_minutes"].as_i64()),
        (extension["id"].clone(), Some(15))
    );
    assert!(charges(pool, &payment).await.is_empty(), "nothing is charged before the approval");
    let url = app.public_url(&format!("/api/shared/chat-sessions/{}", paired.session));
    assert_eq!(
        app.call(Method::GET, &url, Some(&paired.customer.token), None).await.1["status"],
        "extending"
    );
    // A second request while one waits is refused.
    let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": paired.session});
    let (_, second) =
        app.post(&app.public_url("/api/client/payment-sessions"), Some(&paired.customer.token), order).await;
    let ask_url = app.public_url(&format!("/api/client/chat-sessions/{}/extension", paired.session));
    let (status, body) = app
        .post(&ask_url, Some(&paired.customer.token), json!({"extension_payment_session_id": second["id"]}))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("extension_pending")));
    // Only the session's mitra answers.
    let (status, _) =
        app.post(&answer_url(&app, &extension, "approve"), Some(&paired.customer.token), json!({})).await;
    assert_eq!(status, 403);

    let (status, resolved) =
        app.post(&answer_url(&app, &extension, "approve"), Some(&paired.mitra.token), json!({})).await;
    assert_eq!((status, resolved["status"].as_str()), (200, Some("approved")), "{resolved}");
    for socket in [&mut paired.customer.socket, &mut paired.mitra.socket] {
        assert_eq!(next_event(socket, "extension_resolved").await["outcome"], "approved");
        let resumed = next_event(socket, "session_resumed").await;
        let new_end: chrono::DateTime<chrono::Utc> =
            resumed["ends_at"].as_str().expect("t").parse().expect("time");
        assert_eq!((new_end - before).num_minutes(), 15);
    }
    assert_eq!(
        charges(pool, &payment).await,
        vec![("succeeded".into(), 15_000, format!("extension:{}", extension["id"].as_str().expect("id")))]
    );
    assert_eq!(payment_status(pool, &payment).await, "consumed");
    let (status, body) =
        app.post(&answer_url(&app, &extension, "reject"), Some(&paired.mitra.token), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["status"].as_str()),
        (409, Some("extension_resolved"), Some("approved"))
    );
}

#[tokio::test]
async fn a_rejected_extension_charges_nothing_and_the_session_carries_on() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    assert_eq!(pending(&app, &paired.mitra.token, &paired.session).await, Value::Null);
    let (payment, extension) = ask(&app, &paired).await;
    // Either party's app, resumed, finds the request that waits.
    for token in [&paired.customer.token, &paired.mitra.token] {
        let waiting = pending(&app, token, &paired.session).await;
        assert_eq!(
            (waiting["id"].clone(), waiting["status"].as_str()),
            (extension["id"].clone(), Some("pending"))
        );
    }
    let outsider = crate::pairing::customer(&app).await;
    let url = app.public_url(&format!("/api/shared/chat-sessions/{}/extension", paired.session));
    let (status, body) = app.call(Method::GET, &url, Some(&outsider.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("chat_session_not_found")));
    let (status, _) =
        app.post(&answer_url(&app, &extension, "reject"), Some(&paired.mitra.token), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(pending(&app, &paired.customer.token, &paired.session).await, Value::Null, "answered");
    let resolved = next_event(&mut paired.customer.socket, "extension_resolved").await;
    assert_eq!(
        (resolved["outcome"].as_str(), resolved["reason"].as_str()),
        (Some("rejected"), Some("mitra_rejected"))
    );
    assert!(charges(pool, &payment).await.is_empty());
    assert_eq!(payment_status(pool, &payment).await, "abandoned");
    let url = app.public_url(&format!("/api/shared/chat-sessions/{}", paired.session));
    assert_eq!(app.call(Method::GET, &url, Some(&paired.customer.token), None).await.1["status"], "active");
}

#[tokio::test]
async fn an_unanswered_extension_takes_the_default_unless_the_mitra_is_offline() {
    let app = app().await;
    let pool = app.store.pg_pool();
    // Default auto_approve, mitra online: approved and charged at the window's end.
    let mut paired = paired(&app).await;
    let (payment, extension) = ask(&app, &paired).await;
    window_ends(&app, &extension).await;
    assert_eq!(
        next_event(&mut paired.customer.socket, "extension_resolved").await["outcome"],
        "auto_approved"
    );
    assert_eq!(charges(pool, &payment).await.len(), 1);

    // The mitra goes offline while asked: rejected at the window's end, nothing charged.
    let (payment, extension) = ask(&app, &paired).await;
    let status_url = app.public_url("/api/mitra/status");
    app.post(&status_url, Some(&paired.mitra.token), json!({"online": false})).await;
    window_ends(&app, &extension).await;
    let resolved = next_event(&mut paired.customer.socket, "extension_resolved").await;
    assert_eq!(
        (resolved["outcome"].as_str(), resolved["reason"].as_str()),
        (Some("auto_rejected"), Some("mitra_offline"))
    );
    assert!(charges(pool, &payment).await.is_empty());

    // Offline when asked: rejected at once.
    let (payment, extension) = ask(&app, &paired).await;
    assert_eq!(extension["status"], "auto_rejected", "the answer says so at once");
    let resolved = next_event(&mut paired.customer.socket, "extension_resolved").await;
    assert_eq!(
        (resolved["outcome"].as_str(), resolved["reason"].as_str()),
        (Some("auto_rejected"), Some("mitra_offline"))
    );
    assert_eq!(payment_status(pool, &payment).await, "abandoned");

    // auto_reject configured, mitra online: rejected with the reason timeout.
    app.post(&status_url, Some(&paired.mitra.token), json!({"online": true})).await;
    set_config(pool, "extension_default_action_on_timeout", json!("auto_reject")).await;
    let (payment, extension) = ask(&app, &paired).await;
    window_ends(&app, &extension).await;
    let resolved = next_event(&mut paired.customer.socket, "extension_resolved").await;
    assert_eq!(
        (resolved["outcome"].as_str(), resolved["reason"].as_str()),
        (Some("auto_rejected"), Some("timeout"))
    );
    assert!(charges(pool, &payment).await.is_empty());
}

#[tokio::test]
async fn an_approval_racing_the_window_end_resolves_once_with_one_charge() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let paired = paired(&app).await;
    for _ in 0..5 {
        let (payment, extension) = ask(&app, &paired).await;
        let approve_url = answer_url(&app, &extension, "approve");
        let approve = app.post(&approve_url, Some(&paired.mitra.token), json!({}));
        let (approved, ()) = tokio::join!(approve, window_ends(&app, &extension));
        let outcome: String = sqlx::query_scalar("SELECT status FROM extension_requests WHERE id = $1::uuid")
            .bind(extension["id"].as_str())
            .fetch_one(pool)
            .await
            .expect("outcome");
        assert!(outcome == "approved" || outcome == "auto_approved", "{outcome}");
        assert!(
            approved.0 == 200 || (approved.0 == 409 && approved.1["error"]["code"] == "extension_resolved"),
            "{approved:?}"
        );
        assert_eq!(charges(pool, &payment).await.len(), 1, "one charge whoever won");
    }
}

#[tokio::test]
async fn the_chat_goes_on_while_an_approved_extension_is_being_charged() {
    let provider = FakeProvider::start().await;
    // A timeout longer than the test: the held charge ends only when the test lets it go.
    let app = provider.app_without_worker(60_000).await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    let before = ends_at(pool, &paired.session).await;
    let (payment, extension) = ask(&app, &paired).await;

    // The mitra approves; the provider charges and holds its answer.
    let held = provider.hold_next();
    let approving = tokio::spawn(
        reqwest::Client::new()
            .post(answer_url(&app, &extension, "approve"))
            .bearer_auth(&paired.mitra.token)
            .json(&json!({}))
            .send(),
    );
    provider.wait_for_calls(1).await;

    // Meanwhile both sides keep talking: the sends are stored and delivered at once, not
    // after the charge, which is held until the test releases it (a REST send that waited
    // for it would outlast the 10 s bound; a socket's ack, the harness's 10 s frame wait).
    let customer_send =
        send_rest(&app, &paired.customer.token, &paired.session, "c-during", "Masih di sini?");
    let (status, sent) = tokio::time::timeout(std::time::Duration::from_secs(10), customer_send)
        .await
        .expect("the customer's send waited for the charge");
    assert_eq!((status, sent["message"]["seq"].as_i64()), (201, Some(1)), "{sent}");
    assert_eq!(next_event(&mut paired.mitra.socket, "chat_message").await["message"]["seq"], 1);
    let ack = paired
        .mitra
        .socket
        .command(
            "send_message",
            json!({"session_id": paired.session, "client_msg_id": "m-during", "body": "Iya, masih"}),
        )
        .await;
    assert_eq!(
        (ack["type"].as_str(), ack["data"]["message"]["seq"].as_i64()),
        (Some("message_ack"), Some(2)),
        "{ack}"
    );
    // The customer's socket has its own REST send first, then the mitra's answer.
    for seq in [1, 2] {
        assert_eq!(next_event(&mut paired.customer.socket, "chat_message").await["message"]["seq"], seq);
    }
    assert!(!approving.is_finished(), "the approval is still waiting for the provider");
    assert!(charges(pool, &payment).await.iter().all(|(status, ..)| status == "pending"));

    held.release();
    let answer = approving.await.expect("join").expect("the approval's answer");
    assert_eq!(answer.status(), 200);
    for socket in [&mut paired.customer.socket, &mut paired.mitra.socket] {
        assert_eq!(next_event(socket, "extension_resolved").await["outcome"], "approved");
        next_event(socket, "session_resumed").await;
    }
    assert_eq!((ends_at(pool, &paired.session).await - before).num_minutes(), 15);
    assert_eq!(charges(pool, &payment).await.len(), 1);
    assert_eq!(provider.charges_made(), 1);
    assert_eq!(payment_status(pool, &payment).await, "consumed");
}

#[tokio::test]
async fn a_session_whose_time_ran_out_can_still_be_extended() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    let due = end_in(pool, &paired.session, -1).await;
    fire(&app, TimerKind::EndSessionTime, &paired.session, due).await;
    next_event(&mut paired.customer.socket, "session_closing").await;

    let (_, extension) = ask(&app, &paired).await;
    let (status, resolved) =
        app.post(&answer_url(&app, &extension, "approve"), Some(&paired.mitra.token), json!({})).await;
    assert_eq!((status, resolved["session_status"].as_str()), (200, Some("active")), "{resolved}");
    let new_end: chrono::DateTime<chrono::Utc> =
        resolved["session_ends_at"].as_str().expect("t").parse().expect("time");
    let from_now = (new_end - chrono::Utc::now()).num_seconds();
    assert!(
        (14 * 60..=15 * 60).contains(&from_now),
        "15 minutes from the approval, not from the old end: {from_now}"
    );
    // The old end's timer, firing late, leaves the resumed session alone.
    fire(&app, TimerKind::EndSessionTime, &paired.session, due).await;
    let url = app.public_url(&format!("/api/shared/chat-sessions/{}", paired.session));
    assert_eq!(app.call(Method::GET, &url, Some(&paired.customer.token), None).await.1["status"], "active");
}

#[tokio::test]
async fn an_extension_cannot_stretch_the_goodbye_window_or_lose_its_payment() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    // The extension's payment is held while the mitra decides: the customer cannot cancel it.
    let (payment, extension) = ask(&app, &paired).await;
    let cancel = app
        .public_url(&format!("/api/client/payment-sessions/{}/cancel", payment["id"].as_str().expect("id")));
    let (status, body) = app.post(&cancel, Some(&paired.customer.token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_session_not_pending")));
    app.post(&answer_url(&app, &extension, "approve"), Some(&paired.mitra.token), json!({})).await;

    // Time runs out; with the mitra offline, each extension is rejected at once and the
    // session goes back to the closing it left, with its original grace.
    let due = end_in(pool, &paired.session, -1).await;
    fire(&app, TimerKind::EndSessionTime, &paired.session, due).await;
    let grace = |pool: &PgPool| {
        let pool = pool.clone();
        let session = paired.session.clone();
        async move {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT grace_ends_at FROM chat_sessions WHERE id = $1::uuid",
            )
            .bind(session)
            .fetch_one(&pool)
            .await
            .expect("grace")
        }
    };
    let first_grace = grace(pool).await.expect("closing");
    app.post(&app.public_url("/api/mitra/status"), Some(&paired.mitra.token), json!({"online": false})).await;
    for _ in 0..2 {
        let (_, extension) = ask(&app, &paired).await;
        assert_eq!(
            (extension["status"].as_str(), extension["resolution_reason"].as_str()),
            (Some("auto_rejected"), Some("mitra_offline"))
        );
        let now_grace = grace(pool).await.expect("closing again");
        assert!((now_grace - first_grace).num_milliseconds().abs() < 1_000, "{first_grace} → {now_grace}");
    }
    // An early end after all that still works (one closure row per session, replaced).
    set_config(pool, "early_end_mitra_enabled", json!(true)).await;
    let (_, extension) = {
        app.post(&app.public_url("/api/mitra/status"), Some(&paired.mitra.token), json!({"online": true}))
            .await;
        ask(&app, &paired).await
    };
    let (status, _) =
        app.post(&answer_url(&app, &extension, "approve"), Some(&paired.mitra.token), json!({})).await;
    assert_eq!(status, 200);
    let end = app.public_url(&format!("/api/mitra/chat-requests/sessions/{}/end", paired.session));
    let (status, body) =
        app.post(&end, Some(&paired.mitra.token), json!({"reason_code": "done_early"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("closing")), "{body}");
    next_event(&mut paired.customer.socket, "session_closing").await;
}

/// A phone that suspends the app (or loses its network) keeps its TCP connection: the
/// socket lingers with nobody reading it. The mitra is not heard from after the customer
/// asks, so the unanswered extension is rejected and not charged even though the socket is
/// still open; within 10 s the mitra no longer counts as online, and the customer's next
/// message goes out as a push.
#[tokio::test]
async fn a_mitra_whose_app_goes_silent_is_never_auto_approved_and_is_offline_within_10_s() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let mut paired = paired(&app).await;
    let mitra = paired.mitra.id;
    // The mitra's phone suspends the app: its socket stays open and nobody reads it, so no
    // pong answers the hub's pings.
    paired.mitra.socket.stop_reading().await;
    let silent_since = std::time::Instant::now();
    let (payment, extension) = ask(&app, &paired).await;
    assert_eq!(extension["status"], "pending", "the socket is still open when asked: {extension}");
    // The window ends now; when it was asked stays as it was.
    sqlx::query("UPDATE extension_requests SET expires_at = requested_at + interval '1 millisecond' WHERE id = $1::uuid")
        .bind(extension["id"].as_str())
        .execute(pool)
        .await
        .expect("end the window");
    let timer = FireTimer {
        kind: TimerKind::ExpireExtension,
        key: extension["id"].as_str().expect("id").parse().expect("uuid"),
        due_at_ms: domain::clock::now_ms(),
    };
    workers::fire_timer::run(&timer, &workers::JobContext::new(app.services.clone())).await.expect("timer");
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("SELECT status, resolution_reason FROM extension_requests WHERE id = $1::uuid")
            .bind(extension["id"].as_str())
            .fetch_one(pool)
            .await
            .expect("outcome");
    assert_eq!((status.as_str(), reason.as_deref()), ("auto_rejected", Some("mitra_offline")));
    assert!(charges(pool, &payment).await.is_empty(), "nothing charged");
    assert!(
        silent_since.elapsed() < std::time::Duration::from_secs(9),
        "decided while the socket was still open ({:?})",
        silent_since.elapsed()
    );

    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "the silent mitra goes offline",
        || async { !app.store.mitra_presence(MitraId(mitra), 3).await.expect("presence").online },
    )
    .await;
    let offline_after = silent_since.elapsed();
    assert!(offline_after <= std::time::Duration::from_secs(10), "{offline_after:?}");
    eprintln!("a silent mitra counted offline {offline_after:?} after its app stopped reading");

    send_rest(&app, &paired.customer.token, &paired.session, "while-away", "masih di sana?").await;
    let pushes: Vec<Value> =
        sqlx::query_scalar("SELECT convert_from(job, 'UTF8')::jsonb FROM apalis.jobs WHERE job_type = $1")
            .bind(std::any::type_name::<domain::jobs::Push>())
            .fetch_all(pool)
            .await
            .expect("pushes");
    // (The offer and the extension request were pushed too: the app stopped reading before
    // it answered a ping written after them, so nothing proved it had read them.)
    let to_mitra: Vec<&Value> = pushes
        .iter()
        .filter(|push| push["account"] == json!(mitra) && push["message"]["data"]["type"] == "chat_message")
        .collect();
    assert_eq!(to_mitra.len(), 1, "{pushes:?}");
    assert_eq!(to_mitra[0]["message"]["data"]["chat_session_id"], paired.session.as_str());
}
