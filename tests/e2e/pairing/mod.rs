//! Pairing, end to end through the REST routes and real hub sockets: the general blast,
//! accept (first wins), decline-by-all, the window timeout, late joiners, cancel, the
//! returning chat with its fallback, the failure ledger and the activity log.

use domain::auth::Role;
use domain::ids::MitraId;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::harness::{TestApp, WsClient, unique_phone, ws_url_with_token};

mod races;
mod returning;

/// A customer signed in through the OTP flow, with a live socket.
pub struct Customer {
    pub id: Uuid,
    pub token: String,
    pub socket: WsClient,
}

/// A mitra with the switch on and a live socket (so: available).
pub struct OnlineMitra {
    pub id: Uuid,
    pub token: String,
    pub socket: WsClient,
}

pub async fn customer(app: &TestApp) -> Customer {
    let (id, token, _) = app.sign_in_customer(&unique_phone()).await;
    let socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &token)).await;
    Customer { id, token, socket }
}

/// Turns the switch on and connects; returns once the mitra counts as available.
pub async fn go_online(app: &TestApp, id: Uuid, token: String) -> OnlineMitra {
    let (status, body) =
        app.post(&app.public_url("/api/mitra/status"), Some(&token), json!({"online": true})).await;
    assert_eq!(status, 200, "{body}");
    let socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &token)).await;
    OnlineMitra { id, token, socket }
}

pub async fn new_online_mitra(app: &TestApp, operator: &str) -> OnlineMitra {
    let (id, token, _) = app.sign_in_new_mitra(operator).await;
    go_online(app, id, token).await
}

/// Creates and confirms a payment; returns its JSON.
pub async fn paid(app: &TestApp, token: &str, order: Value) -> Value {
    let (status, payment) =
        app.post(&app.public_url("/api/client/payment-sessions"), Some(token), order).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().expect("id");
    let (status, confirmed) = app
        .post(&app.public_url(&format!("/api/client/payment-sessions/{id}/confirm")), Some(token), json!({}))
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    confirmed
}

pub async fn start_blast(app: &TestApp, token: &str, payment: &Value) -> (u16, Value) {
    app.post(
        &app.public_url("/api/client/chat-requests"),
        Some(token),
        json!({"payment_session_id": payment["id"]}),
    )
    .await
}

pub async fn accept(app: &TestApp, token: &str, request: &str) -> (u16, Value) {
    app.post(&app.public_url(&format!("/api/mitra/chat-requests/{request}/accept")), Some(token), json!({}))
        .await
}

pub async fn decline(app: &TestApp, token: &str, request: &str) -> (u16, Value) {
    app.post(&app.public_url(&format!("/api/mitra/chat-requests/{request}/decline")), Some(token), json!({}))
        .await
}

async fn request_status(app: &TestApp, token: &str, request: &str) -> Value {
    let url = app.public_url(&format!("/api/mitra/chat-requests/{request}/status"));
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Reads frames until one of `kind` arrives (others are skipped); fails after 10 s.
/// The ids of the requests offered to the mitra that wait for their answer.
async fn open_offers(app: &TestApp, token: &str) -> Vec<String> {
    let url = app.public_url("/api/mitra/chat-requests/open");
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    let offers = body["requests"].as_array().expect("requests");
    offers.iter().map(|offer| offer["request_id"].as_str().expect("request_id").to_owned()).collect()
}

pub async fn next_event(socket: &mut WsClient, kind: &str) -> Value {
    loop {
        let frame = socket.next_json().await;
        if frame["type"] == kind {
            return frame["data"].clone();
        }
    }
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn payment_status(pool: &PgPool, payment: &Value) -> String {
    sqlx::query_scalar("SELECT status FROM payment_sessions WHERE id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_one(pool)
        .await
        .expect("payment status")
}

/// (cause_tag, payment's status now) of each ledger row of the payment, oldest first.
async fn ledger(pool: &PgPool, payment: &Value) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT f.cause_tag, p.status FROM pairing_failures f JOIN payment_sessions p ON p.id = f.payment_session_id
         WHERE f.payment_session_id = $1::uuid ORDER BY f.created_at",
    )
    .bind(payment["id"].as_str())
    .fetch_all(pool)
    .await
    .expect("ledger")
}

/// (mitra, response, active_session_count, responded) of each activity row of the request.
async fn activity(pool: &PgPool, request: &str) -> Vec<(Uuid, Option<String>, i32, bool)> {
    sqlx::query_as(
        "SELECT mitra_id, response, active_session_count, responded_at IS NOT NULL FROM chat_request_notifications
         WHERE pairing_request_id = $1::uuid ORDER BY notified_at, mitra_id",
    )
    .bind(request)
    .fetch_all(pool)
    .await
    .expect("activity")
}

/// Chat sessions the payment started.
async fn sessions_of(pool: &PgPool, payment: &Value) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM chat_sessions WHERE payment_session_id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_one(pool)
        .await
        .expect("sessions")
}

pub async fn set_config(pool: &PgPool, key: &str, value: Value) {
    sqlx::query("UPDATE app_config SET value = $2 WHERE key = $1")
        .bind(key)
        .bind(value)
        .execute(pool)
        .await
        .expect("config update");
}

#[tokio::test]
async fn a_blast_reaches_every_available_mitra_and_the_first_accept_wins() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut budi = new_online_mitra(&app, &operator).await;
    let (offline_id, offline_token, _) = app.sign_in_new_mitra(&operator).await;
    let mut rani = customer(&app).await;

    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    assert_eq!((payment["is_free_trial"].as_bool(), payment["amount"].as_i64()), (Some(true), Some(0)));
    let (status, request) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!(status, 201, "{request}");
    assert_eq!(
        (request["status"].as_str(), request["request_type"].as_str()),
        (Some("pending"), Some("general"))
    );
    let request_id = id_of(&request);

    for mitra in [&mut ayu, &mut budi] {
        let offer = next_event(&mut mitra.socket, "chat_request").await;
        assert_eq!(offer["request_id"], request_id.as_str());
        assert_eq!(offer["request_type"], "general");
        assert_eq!(offer["customer"], json!({"call_name": "Rani"}), "mitras see the call name only");
        assert_eq!(offer["duration_minutes"], 15);
        assert!(!offer.to_string().contains("+62"), "no phone number reaches a mitra: {offer}");
    }
    // One activity row per mitra offered it (not the offline one), with their load at send time.
    let rows = activity(pool, &request_id).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(mitra, response, active, _)| *mitra != offline_id && response.is_none() && *active == 0)
    );
    let pushed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chat_request_notifications WHERE pairing_request_id = $1::uuid AND pushed",
    )
    .bind(&request_id)
    .fetch_one(pool)
    .await
    .expect("pushed");
    assert_eq!(pushed, 0, "mitras with a live socket get the event, not a push");
    // A mitra who was never offered it cannot see or take it.
    let (status, body) = accept(&app, &offline_token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("chat_request_not_found")));

    let (status, accepted) = accept(&app, &ayu.token, &request_id).await;
    assert_eq!(status, 200, "{accepted}");
    let session_id = accepted["chat_session"]["id"].as_str().expect("session").to_owned();
    assert_eq!(accepted["customer"], json!({"call_name": "Rani"}));

    let paired = next_event(&mut rani.socket, "paired").await;
    assert_eq!(paired["chat_session"]["id"], session_id.as_str());
    assert_eq!(paired["mitra"], json!({"id": ayu.id, "display_name": "Bestie Ayu"}));
    let taken = next_event(&mut budi.socket, "chat_request_taken").await;
    assert_eq!(taken["request_id"], request_id.as_str());

    // The loser is told, and a repeat by the winner returns the same session.
    let (status, body) = accept(&app, &budi.token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("chat_request_taken")));
    let (status, again) = accept(&app, &ayu.token, &request_id).await;
    assert_eq!((status, again["chat_session"]["id"].as_str()), (200, Some(session_id.as_str())));
    assert_eq!(request_status(&app, &ayu.token, &request_id).await["status"], "accepted");
    assert_eq!(request_status(&app, &budi.token, &request_id).await["status"], "taken");

    assert_eq!(payment_status(pool, &payment).await, "consumed");
    // The customer's own view of the payment names the session it paid for.
    let url = app.public_url(&format!("/api/client/payment-sessions/{}", id_of(&payment)));
    let (status, seen) = app.call(Method::GET, &url, Some(&rani.token), None).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        (seen["status"].as_str(), seen["chat_session_id"].as_str()),
        (Some("consumed"), Some(session_id.as_str()))
    );
    assert!(ledger(pool, &payment).await.is_empty());
    let responses: Vec<(Uuid, Option<String>, bool)> =
        activity(pool, &request_id).await.into_iter().map(|(m, r, _, responded)| (m, r, responded)).collect();
    assert!(responses.contains(&(ayu.id, Some("accepted".into()), true)));
    assert!(responses.contains(&(budi.id, Some("missed".into()), false)));
    // Capacity moved with the session.
    let presence = app.store.mitra_presence(MitraId(ayu.id), 3).await.expect("presence");
    assert_eq!(presence.active_sessions, 1);
    assert!(
        app.metrics()
            .await
            .contains(r#"bestie_pairing_outcomes_total{outcome="accepted",request_type="general"} 1"#)
    );
}

#[tokio::test]
async fn when_every_mitra_declines_the_request_fails_at_once() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut budi = new_online_mitra(&app, &operator).await;
    let mut rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"duration_minutes": 15})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    let request_id = id_of(&request);
    let offered = next_event(&mut ayu.socket, "chat_request").await;
    next_event(&mut budi.socket, "chat_request").await;
    // An app that opened without the event reads the same offer.
    let url = app.public_url("/api/mitra/chat-requests/open");
    let (status, open) = app.call(Method::GET, &url, Some(&ayu.token), None).await;
    assert_eq!(status, 200, "{open}");
    let listed = &open["requests"][0];
    assert_eq!(
        (listed["request_id"].clone(), listed["customer"].clone(), listed["expires_at"].clone()),
        (offered["request_id"].clone(), offered["customer"].clone(), offered["expires_at"].clone())
    );
    assert_eq!(open["requests"].as_array().map(Vec::len), Some(1));
    let (status, body) = app.call(Method::GET, &url, Some(&rani.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")), "mitras only");

    let (status, body) = decline(&app, &ayu.token, &request_id).await;
    assert_eq!((status, body["response"].as_str()), (200, Some("rejected")));
    assert_eq!(open_offers(&app, &ayu.token).await, Vec::<String>::new(), "answered: no longer open");
    assert_eq!(open_offers(&app, &budi.token).await, vec![request_id.clone()], "budi has not answered");
    assert_eq!(payment_status(pool, &payment).await, "confirmed", "one mitra is still deciding");
    let (status, body) = decline(&app, &ayu.token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_responded")));
    let (status, _) = decline(&app, &budi.token, &request_id).await;
    assert_eq!(status, 200);

    let failed = next_event(&mut rani.socket, "pairing_failed").await;
    assert_eq!(
        (failed["cause_tag"].as_str(), failed["fallback_offered"].as_bool()),
        (Some("all_mitras_rejected"), Some(false))
    );
    assert_eq!(payment_status(pool, &payment).await, "failed_pairing");
    assert_eq!(ledger(pool, &payment).await, vec![("all_mitras_rejected".into(), "failed_pairing".into())]);
    assert_eq!(open_offers(&app, &budi.token).await, Vec::<String>::new());
    assert_eq!(request_status(&app, &ayu.token, &request_id).await["status"], "closed");
    // A decline of a closed request is refused and changes nothing.
    let (status, body) = accept(&app, &budi.token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("chat_request_closed")));
}

#[tokio::test]
async fn a_blast_nobody_answers_fails_at_the_window_end_and_late_joiners_are_offered_it() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    set_config(pool, "pairing_blast_timeout_seconds", json!(10)).await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    let request_id = id_of(&request);
    next_event(&mut ayu.socket, "chat_request").await;

    // Budi comes online during the window: he is offered it too.
    let (budi_id, budi_token, _) = app.sign_in_new_mitra(&operator).await;
    let mut budi = go_online(&app, budi_id, budi_token).await;
    let offer = next_event(&mut budi.socket, "chat_request").await;
    assert_eq!(offer["request_id"], request_id.as_str());
    assert!(offer["countdown_s"].as_i64().is_some_and(|s| (0..=10).contains(&s)), "{offer}");

    let failed = next_event(&mut rani.socket, "pairing_failed").await;
    assert_eq!(failed["cause_tag"], "no_mitra_available");
    let ends = chrono::Utc::now();
    let expires_at: chrono::DateTime<chrono::Utc> =
        request["expires_at"].as_str().expect("expires_at").parse().expect("time");
    assert!(ends >= expires_at, "failed before its window ended");
    for mitra in [&mut ayu, &mut budi] {
        assert_eq!(
            next_event(&mut mitra.socket, "chat_request_expired").await["request_id"],
            request_id.as_str()
        );
        assert_eq!(request_status(&app, &mitra.token, &request_id).await["status"], "expired");
    }
    let rows = activity(pool, &request_id).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|(_, response, _, responded)| response.as_deref() == Some("ignored") && !responded)
    );
    assert_eq!(ledger(pool, &payment).await, vec![("no_mitra_available".into(), "failed_pairing".into())]);
    let (status, body) = accept(&app, &ayu.token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("chat_request_expired")));
}

#[tokio::test]
async fn a_customer_cancel_closes_open_overlays_and_records_the_failure() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    let request_id = id_of(&request);
    next_event(&mut ayu.socket, "chat_request").await;

    // A second search on the same payment is refused while the first runs.
    let (status, body) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("search_in_progress")));

    let cancel = json!({"payment_session_id": payment["id"]});
    let (status, body) = app
        .post(&app.public_url("/api/client/chat-requests/cancel"), Some(&rani.token), cancel.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chat_request"]["status"], "cancelled");
    assert_eq!(body["payment_session"]["status"], "failed_pairing");
    assert_eq!(
        next_event(&mut ayu.socket, "chat_request_cancelled").await["request_id"],
        request_id.as_str()
    );
    assert_eq!(next_event(&mut rani.socket, "pairing_failed").await["cause_tag"], "customer_cancelled");
    assert_eq!(request_status(&app, &ayu.token, &request_id).await["status"], "cancelled");
    let (status, body) = accept(&app, &ayu.token, &request_id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("chat_request_cancelled")));
    // Cancelling again changes nothing.
    let (status, _) =
        app.post(&app.public_url("/api/client/chat-requests/cancel"), Some(&rani.token), cancel).await;
    assert_eq!(status, 200);
    assert_eq!(ledger(pool, &payment).await, vec![("customer_cancelled".into(), "failed_pairing".into())]);
    // The failed payment cannot start another search.
    let (status, body) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["status"].as_str()),
        (409, Some("payment_not_confirmed"), Some("failed_pairing"))
    );
}

#[tokio::test]
async fn a_search_needs_a_confirmed_payment_of_ones_own() {
    let app = TestApp::spawn().await;
    let rani = customer(&app).await;
    let sari = customer(&app).await;
    let (_, pending) = app
        .post(&app.public_url("/api/client/payment-sessions"), Some(&rani.token), json!({"tier_id": "15m"}))
        .await;
    let (status, body) = start_blast(&app, &rani.token, &pending).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_not_confirmed")));
    // Another customer's payment, or one that does not exist: 409, as the old backend
    // answered (seed 001 §1.6), with nothing said of whether it exists.
    let (status, body) = start_blast(&app, &sari.token, &pending).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_not_owned")));
    let (status, body) = start_blast(&app, &sari.token, &json!({"id": Uuid::new_v4()})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_not_owned")));
    let (status, body) =
        app.post(&app.public_url("/api/client/chat-requests"), Some(&rani.token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
    let mitra = app.token_for(Uuid::new_v4(), Role::Mitra);
    let (status, body) = start_blast(&app, &mitra, &pending).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
    let (status, body) = accept(&app, &rani.token, &Uuid::new_v4().to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
    let (status, body) = accept(&app, &mitra, "not-a-uuid").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_blast_reaches_mitras_on_every_hub_instance() {
    let app = TestApp::spawn().await;
    let other = app.spawn_sibling().await;
    let operator = app.sign_in_operator().await;
    let mut here = new_online_mitra(&app, &operator).await;
    let (id, token, _) = app.sign_in_new_mitra(&operator).await;
    // The second mitra's socket is on the other instance (one fan-out inbox entry each).
    let mut there = go_online(&other, id, token).await;
    let mut rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    let request_id = id_of(&request);
    let first = next_event(&mut here.socket, "chat_request").await;
    let second = next_event(&mut there.socket, "chat_request").await;
    assert_eq!(
        (first["request_id"].as_str(), second["request_id"].as_str()),
        (Some(&*request_id), Some(&*request_id))
    );
    let (status, _) = accept(&other, &there.token, &request_id).await;
    assert_eq!(status, 200);
    assert_eq!(next_event(&mut here.socket, "chat_request_taken").await["request_id"], request_id.as_str());
    next_event(&mut rani.socket, "paired").await;
}

#[tokio::test]
async fn a_mitra_whose_socket_is_gone_is_offered_the_request_by_push() {
    use bestie::ServiceRole;

    use crate::harness::BestieProcess;
    // A short lease (the hub process renews it every 3 s; it dies before that matters) and
    // no reaping: the window between a hub's death and the reap, made long enough to test.
    let app = TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Worker].into(), |s| {
        s.presence.lease_ms = 1_500;
        s.presence.reap_interval_ms = 600_000;
    })
    .await;
    let pool = app.store.pg_pool();
    let hub = BestieProcess::serve_with(app.settings.clone(), &["--role", "hub"]).await;
    let operator = app.sign_in_operator().await;
    let (mitra, token, _) = app.sign_in_new_mitra(&operator).await;
    let device = json!({"fcm_token": format!("fcm-{mitra}"), "platform": "android"});
    let (status, _) =
        app.call(Method::PUT, &app.public_url("/api/shared/devices"), Some(&token), Some(device)).await;
    assert_eq!(status, 200);
    app.post(&app.public_url("/api/mitra/status"), Some(&token), json!({"online": true})).await;
    let _socket = WsClient::connect_welcomed(&ws_url_with_token(hub.public, &token)).await;
    assert_eq!(app.store.available_mitra_count().await.expect("count"), 1);

    // The hub dies. Once its lease ran out and until it is reaped, the mitra still counts as
    // available, but no live instance holds a socket of theirs.
    let mut hub = hub;
    hub.child.kill().expect("kill -9");
    let _ = hub.child.wait();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !app.store.live_instances(1_500).await.expect("instances").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the dead hub's lease never ran out");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.store.available_mitra_count().await.expect("count"), 1, "not reaped yet");
    let (_, customer_token, _) = app.sign_in_customer(&unique_phone()).await;
    let payment = paid(&app, &customer_token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &customer_token, &payment).await;
    assert_eq!(status, 201, "{request}");
    let pushed: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT mitra_id, pushed FROM chat_request_notifications WHERE pairing_request_id = $1::uuid",
    )
    .bind(request["id"].as_str())
    .fetch_all(pool)
    .await
    .expect("activity");
    assert_eq!(pushed, vec![(mitra, true)]);
    let jobs: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT convert_from(job, 'UTF8')::jsonb FROM apalis.jobs WHERE job_type = $1")
            .bind(std::any::type_name::<domain::jobs::Push>())
            .fetch_all(pool)
            .await
            .expect("push jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["account"], json!(mitra));
    let data = &jobs[0]["message"]["data"];
    assert_eq!((&data["type"], &data["request_id"]), (&json!("chat_request"), &request["id"]));
    // The old backend's apps read the request id as `session_id` (seed 002).
    assert_eq!(data["session_id"], request["id"]);
}

#[tokio::test]
async fn a_search_whose_window_timer_was_lost_is_closed_by_the_sweep() {
    use bestie::ServiceRole;
    // No worker role: the window timer is queued but nothing runs it, as if it were lost.
    let app = TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Hub].into(), |_| {}).await;
    let pool = app.store.pg_pool();
    let mut rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    app.run_repair("sweep").await;
    assert_eq!(payment_status(pool, &payment).await, "confirmed", "a search in its window is left alone");

    // Its window ended two minutes ago and no timer closed it.
    sqlx::query(
        "UPDATE pairing_requests SET created_at = now() - interval '3 minutes', expires_at = now() - interval '2 minutes'
         WHERE id = $1::uuid",
    )
    .bind(request["id"].as_str())
    .execute(pool)
    .await
    .expect("time travel");
    app.run_repair("sweep").await;
    assert_eq!(next_event(&mut rani.socket, "pairing_failed").await["cause_tag"], "no_mitra_available");
    assert_eq!(ledger(pool, &payment).await, vec![("no_mitra_available".into(), "failed_pairing".into())]);
    app.run_repair("a second sweep changes nothing").await;
    assert_eq!(ledger(pool, &payment).await.len(), 1);
}

/// A mitra whose session count in Redis drifted above the record (a crash lost the delta
/// of a session's end) is not offered searches; the repair sweep's recount gives the room
/// back and, through `domain::capacity`, offers the search that is open now.
#[tokio::test]
async fn a_mitra_given_room_back_by_the_recount_is_offered_the_open_search() {
    use bestie::ServiceRole;
    let app = TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Hub].into(), |_| {}).await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let drifted = app.store.set_mitra_sessions(MitraId(ayu.id), 3, 3).await.expect("drift");
    assert!(!drifted.available, "at the cap by the counters, with no session in the record");

    let rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!(status, 201, "{request}");
    app.run_repair("recount").await;
    let offer = next_event(&mut ayu.socket, "chat_request").await;
    assert_eq!(offer["request_id"], request["id"]);
    let presence = app.store.mitra_presence(MitraId(ayu.id), 3).await.expect("presence");
    assert_eq!((presence.active_sessions, presence.available), (0, true));
}
