//! Faults against the real parts: a hub process killed mid-conversation, Postgres going
//! away behind a proxy the test cuts and restores, an api process killed between a charge
//! and its answer, and a payment provider that declines, fails or keeps silent.

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::chat::{Paired, paired};
use crate::fake_provider::FakeProvider;
use crate::harness::{BestieProcess, TestApp, WsClient, isolated_settings, unique_phone, ws_url_with_token};
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

#[tokio::test]
async fn while_postgres_is_away_the_api_answers_503_and_the_hub_refuses_sends_retryably() {
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let app = TestApp::spawn_with(|s| {
        let url = s.database.url.expose().replace("127.0.0.1:5432", &proxy.addr.to_string());
        s.database.url = domain::settings::ConnectionUrl::new(url);
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
    let refused = customer.socket.command("send_message", send.clone()).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        (refused["data"]["code"].as_str(), refused["data"]["retryable"].as_bool()),
        (Some("store_unavailable"), Some(true))
    );
    // The socket stays up, and what needs no Postgres still works.
    assert_eq!(customer.socket.command("ping", json!({})).await["type"], "pong");
    let (status, _) = app
        .call(Method::GET, &app.public_url("/api/client/mitra-availability"), Some(&customer.token), None)
        .await;
    assert_eq!(status, 200);

    proxy.restore().await;
    // The app retries the same command, as the error told it to: stored once, delivered.
    let ack = customer.socket.command("send_message", send).await;
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
        assert_eq!(customer_socket.command("send_message", data).await["type"], "message_ack");
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
    let ack = customer_socket.command("send_message", data).await;
    assert_eq!(ack["type"], "message_ack", "{ack}");
    assert_eq!(ack["data"]["message"]["seq"], 3, "stored once, after c-2");
    let mut mitra = WsClient::connect_welcomed(&resume(&mitra_token, &mitra_last)).await;
    let (after, _) = read_messages(&mut mitra, &["c-3"]).await;
    assert_eq!(after, ["c-3"], "nothing lost, nothing repeated");
    let stored = crate::chat::stored_ids(&app, &mitra_token, &session, "").await;
    assert_eq!(stored, ["c-1", "c-2", "c-3"]);
}

/// POSTs `body` to the api listening on `public`; the status and the JSON answer.
async fn post_to(public: SocketAddr, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("http://{public}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Signs a new customer in on the api at `public` (development mode: the code comes back).
async fn customer_token(public: SocketAddr) -> String {
    let phone = unique_phone();
    let (status, sent) = post_to(public, "/api/auth/customer/otp", None, json!({"phone": phone})).await;
    assert_eq!(status, 202, "{sent}");
    let verify = json!({"phone": phone, "code": sent["dev_code"], "call_name": "Rani"});
    let (status, session) = post_to(public, "/api/auth/customer/verify", None, verify).await;
    assert_eq!(status, 200, "{session}");
    session["access_token"].as_str().expect("access token").to_owned()
}

/// The ledger rows of a payment, oldest first: `(status, provider_ref, amount)`.
async fn ledger(pool: &PgPool, payment: &str) -> Vec<(String, Option<String>, i64)> {
    sqlx::query_as(
        "SELECT status, provider_ref, amount FROM charges WHERE payment_session_id = $1::uuid ORDER BY created_at",
    )
    .bind(payment)
    .fetch_all(pool)
    .await
    .expect("ledger")
}

/// `(status, confirmed_at)` of a payment session, read from its row.
async fn payment_row(pool: &PgPool, payment: &str) -> (String, Option<chrono::DateTime<chrono::Utc>>) {
    sqlx::query_as("SELECT status, confirmed_at FROM payment_sessions WHERE id = $1::uuid")
        .bind(payment)
        .fetch_one(pool)
        .await
        .expect("payment row")
}

#[tokio::test]
async fn an_api_killed_between_the_charge_and_its_answer_charges_once_when_the_confirm_is_retried() {
    let provider = FakeProvider::start().await;
    let env = provider.env();
    let settings = isolated_settings();
    let mut first = BestieProcess::serve_with_env(settings.clone(), &[], &env).await;
    let store = domain::store::Store::connect(&settings.database, &settings.redis).await.expect("store");
    let token = customer_token(first.public).await;
    // The first chat is the free trial (no charge); the next one is priced.
    let payments = "/api/client/payment-sessions";
    let (_, trial) = post_to(first.public, payments, Some(&token), json!({"tier_id": "15m"})).await;
    let trial_confirm = format!("{payments}/{}/confirm", trial["id"].as_str().expect("id"));
    assert_eq!(post_to(first.public, &trial_confirm, Some(&token), json!({})).await.0, 200);
    let (status, payment) = post_to(first.public, payments, Some(&token), json!({"tier_id": "15m"})).await;
    assert_eq!((status, payment["amount"].as_i64()), (201, Some(15_000)), "{payment}");
    let id = payment["id"].as_str().expect("id").to_owned();
    let confirm = format!("{payments}/{id}/confirm");
    let key = format!("confirm:{id}:1");

    // The provider charges and holds its answer; the api dies waiting for it.
    let held = provider.hold_next();
    let public = first.public;
    let (in_flight_confirm, in_flight_token) = (confirm.clone(), token.clone());
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{public}{in_flight_confirm}"))
            .bearer_auth(in_flight_token)
            .json(&json!({}))
            .send()
            .await
    });
    provider.wait_for_calls(1).await;
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let lost = in_flight.await.expect("join");
    assert!(lost.is_err(), "the client got no answer: {lost:?}");
    let pool = store.pg_pool();
    assert_eq!(ledger(pool, &id).await, [("pending".to_owned(), None, 15_000)], "claimed, never completed");
    assert_eq!(payment_row(pool, &id).await.0, "pending");

    // A new api process on the same database; the app retries the confirm.
    let restarted = std::time::Instant::now();
    let second = BestieProcess::serve_with_env(settings.clone(), &[], &env).await;
    let ready = restarted.elapsed();
    let (status, confirmed) = post_to(second.public, &confirm, Some(&token), json!({})).await;
    let answered = restarted.elapsed();
    assert_eq!((status, confirmed["status"].as_str()), (200, Some("confirmed")), "{confirmed}");

    assert_eq!(provider.calls(), [key.clone(), key.clone()], "the same key, sent twice");
    assert_eq!(provider.charges_made(), 1, "one charge made");
    let (reference, charged_payment, amount) = provider.charge_of(&key).expect("charged");
    assert_eq!((charged_payment.as_str(), amount), (id.as_str(), 15_000));
    assert_eq!(ledger(pool, &id).await, [("succeeded".to_owned(), Some(reference), 15_000)]);
    let (status, confirmed_at) = payment_row(pool, &id).await;
    assert_eq!(status, "confirmed");
    assert!(confirmed_at.is_some());
    // Confirmed once: another confirm returns it as it is and reaches no provider.
    let (status, again) = post_to(second.public, &confirm, Some(&token), json!({})).await;
    assert_eq!((status, again["confirmed_at"].clone()), (200, confirmed["confirmed_at"].clone()));
    assert_eq!(payment_row(pool, &id).await, (status_of(&again), confirmed_at));
    assert_eq!(provider.calls().len(), 2);
    held.release();
    eprintln!(
        "api killed mid-charge: the new process was ready {} ms after its start and had answered the \
         retried confirm {} ms after its start; provider calls {}, charges {}",
        ready.as_millis(),
        answered.as_millis(),
        provider.calls().len(),
        provider.charges_made()
    );
}

fn status_of(payment: &Value) -> String {
    payment["status"].as_str().expect("status").to_owned()
}

/// An app whose provider is `provider`, and a customer past the free trial with a priced
/// (Rp 15,000) payment to confirm: `(app, token, payment id)`.
async fn priced_payment(provider: &FakeProvider, timeout_ms: u64) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(|settings| {
        provider.configure(settings);
        settings.payments.timeout_ms = timeout_ms;
    })
    .await;
    let (token, id) = priced_payment_on(&app).await;
    (app, token, id)
}

/// A customer past the free trial with a priced payment to confirm on `app`: `(token, id)`.
async fn priced_payment_on(app: &TestApp) -> (String, String) {
    let rani = customer(app).await;
    paid(app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, payment) = app
        .post(&app.public_url("/api/client/payment-sessions"), Some(&rani.token), json!({"tier_id": "15m"}))
        .await;
    assert_eq!((status, payment["amount"].as_i64()), (201, Some(15_000)), "{payment}");
    let id = payment["id"].as_str().expect("id").to_owned();
    (rani.token, id)
}

/// Makes the payment's charge claims look `seconds` old.
async fn age_charges(pool: &PgPool, payment: &str, seconds: i64) {
    sqlx::query("UPDATE charges SET created_at = now() - make_interval(secs => $2) WHERE payment_session_id = $1::uuid")
        .bind(payment)
        .bind(seconds as f64)
        .execute(pool)
        .await
        .expect("time travel");
}

#[tokio::test]
async fn a_confirm_given_up_mid_charge_is_finished_by_the_sweep_and_charged_once() {
    let provider = FakeProvider::start().await;
    let app = provider.app_without_worker(300).await;
    let pool = app.store.pg_pool();
    let stale = i64::try_from(domain::payment::STALE_CHARGE_AFTER_S).expect("seconds");

    // The provider charges but its answer never arrives in time; the customer gives up.
    let (token, id) = priced_payment_on(&app).await;
    let confirm = app.public_url(&format!("/api/client/payment-sessions/{id}/confirm"));
    let held = provider.hold_next();
    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    drop(held);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("payment_provider_unavailable")),
        "{body}"
    );
    assert_eq!(ledger(pool, &id).await, [("pending".to_owned(), None, 15_000)]);
    let key = format!("confirm:{id}:1");

    // Not yet stale: the sweep leaves it to the customer's retry.
    age_charges(pool, &id, stale - 60).await;
    app.run_repair("sweep").await;
    assert_eq!(provider.calls(), std::slice::from_ref(&key));
    assert_eq!(payment_row(pool, &id).await.0, "pending");

    // Stale: charged under the same key and confirmed, once however often the sweep runs.
    age_charges(pool, &id, stale + 1).await;
    app.run_repair("sweep").await;
    app.run_repair("sweep").await;
    assert_eq!(provider.calls(), [key.clone(), key.clone()]);
    assert_eq!(provider.charges_made(), 1);
    let (reference, _, amount) = provider.charge_of(&key).expect("charged");
    assert_eq!(ledger(pool, &id).await, [("succeeded".to_owned(), Some(reference), amount)]);
    let (status, confirmed_at) = payment_row(pool, &id).await;
    assert_eq!((status.as_str(), confirmed_at.is_some()), ("confirmed", true));

    // A claim whose call failed (nothing charged) and that the provider declines when the
    // sweep sends it again: the payment is payable again, under a new key.
    let (token, id) = priced_payment_on(&app).await;
    let confirm = app.public_url(&format!("/api/client/payment-sessions/{id}/confirm"));
    provider.answer_next(500, json!({"error": "internal"}));
    assert_eq!(app.post(&confirm, Some(&token), json!({})).await.0, 503);
    age_charges(pool, &id, stale + 1).await;
    provider.answer_next(402, json!({"reason": "card_declined"}));
    app.run_repair("sweep").await;
    assert_eq!(ledger(pool, &id).await.iter().map(|row| row.0.as_str()).collect::<Vec<_>>(), ["failed"]);
    assert_eq!(payment_row(pool, &id).await.0, "pending");
    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")), "{body}");
    assert_eq!(provider.calls().last().map(String::as_str), Some(format!("confirm:{id}:2").as_str()));
}

#[tokio::test]
async fn a_declined_charge_answers_payment_declined_and_the_next_confirm_is_a_new_attempt() {
    let provider = FakeProvider::start().await;
    let (app, token, id) = priced_payment(&provider, 5_000).await;
    let confirm = app.public_url(&format!("/api/client/payment-sessions/{id}/confirm"));

    provider.answer_next(402, json!({"reason": "card_declined"}));
    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_declined")), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("card_declined")), "{body}");
    provider.answer_next(422, json!({"reason": "insufficient_funds"}));
    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_declined")), "{body}");
    assert_eq!(payment_row(app.store.pg_pool(), &id).await.0, "pending", "a decline leaves it payable");
    // The operators' ledger shows the latest attempt while none succeeded, then the charge.
    let operator = app.sign_in_operator().await;
    let ledger_line = || async {
        let url = app.internal_url("/internal/payments?limit=200");
        let (status, page) = app.call(reqwest::Method::GET, &url, Some(&operator), None).await;
        assert_eq!(status, 200, "{page}");
        page["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|row| row["id"] == json!(id))
            .cloned()
            .expect("line")
    };
    let line = ledger_line().await;
    assert_eq!(
        (
            line["charge"]["status"].as_str(),
            line["charge"]["failure_reason"].as_str(),
            line["failed_charges"].as_i64()
        ),
        (Some("failed"), Some("insufficient_funds"), Some(1)),
        "{line}"
    );

    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")), "{body}");
    let keys: Vec<String> = (1..=3).map(|attempt| format!("confirm:{id}:{attempt}")).collect();
    assert_eq!(provider.calls(), keys, "each attempt after a decline has a new key");
    assert_eq!(provider.charges_made(), 1);
    let (reference, _, _) = provider.charge_of(&keys[2]).expect("charged");
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, coalesce(failure_reason, provider_ref) FROM charges
         WHERE payment_session_id = $1::uuid ORDER BY created_at",
    )
    .bind(&id)
    .fetch_all(app.store.pg_pool())
    .await
    .expect("ledger");
    let row = |status: &str, text: &str| (status.to_owned(), Some(text.to_owned()));
    assert_eq!(
        rows,
        [row("failed", "card_declined"), row("failed", "insufficient_funds"), row("succeeded", &reference)]
    );
    let line = ledger_line().await;
    assert_eq!(
        (
            line["charge"]["status"].as_str(),
            line["charge"]["provider_ref"].as_str(),
            line["failed_charges"].as_i64()
        ),
        (Some("succeeded"), Some(reference.as_str()), Some(2)),
        "{line}"
    );
}

#[tokio::test]
async fn a_provider_that_fails_or_keeps_silent_gets_a_retryable_503_and_the_retry_charges_once() {
    let provider = FakeProvider::start().await;
    let (app, token, id) = priced_payment(&provider, 2_000).await;
    let confirm = app.public_url(&format!("/api/client/payment-sessions/{id}/confirm"));
    let unavailable = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["retryable"].as_bool()),
            (503, Some("payment_provider_unavailable"), Some(true)),
            "{body}"
        );
    };

    // A 500 (nothing charged), a charge whose answer comes after the timeout, and a 200
    // without a reference: each time the charge stays pending under the same key.
    provider.answer_next(500, json!({"error": "internal"}));
    unavailable(app.post(&confirm, Some(&token), json!({})).await);
    let pool = app.store.pg_pool();
    assert_eq!(ledger(pool, &id).await, [("pending".to_owned(), None, 15_000)]);
    let held = provider.hold_next();
    unavailable(app.post(&confirm, Some(&token), json!({})).await);
    drop(held);
    provider.answer_next(200, json!({"status": "ok"}));
    unavailable(app.post(&confirm, Some(&token), json!({})).await);
    assert_eq!(payment_row(pool, &id).await.0, "pending");

    let (status, body) = app.post(&confirm, Some(&token), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")), "{body}");
    let key = format!("confirm:{id}:1");
    assert_eq!(provider.calls(), vec![key.clone(); 4]);
    assert_eq!(provider.charges_made(), 1, "the charge the silent answer made, found again");
    let (reference, _, _) = provider.charge_of(&key).expect("charged");
    assert_eq!(ledger(pool, &id).await, [("succeeded".to_owned(), Some(reference), 15_000)]);
}
