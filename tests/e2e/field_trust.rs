//! What the field does that the lab does not: stolen and replayed tokens, signed-out phones,
//! password resets and deactivations that must end every sign-in at once.

use domain::ids::{MitraId, UserId};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestApp, WsClient, session_tokens, unique_phone, ws_url_with_token};

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// One customer signs in on two phones, one right after the other.
fn two_phones(settings: &mut domain::settings::Settings) {
    settings.auth.otp_resend_interval_s = 0;
}

/// A protected read: the status the access token gets.
async fn poll_status(app: &TestApp, access: &str) -> (u16, Value) {
    app.call(Method::GET, &app.public_url("/api/client/mitra-availability"), Some(access), None).await
}

async fn devices_of(app: &TestApp, owner: uuid::Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT fcm_token FROM devices WHERE customer_id = $1 OR mitra_id = $1 ORDER BY fcm_token",
    )
    .bind(owner)
    .fetch_all(app.store.pg_pool())
    .await
    .expect("devices")
}

async fn register_device(app: &TestApp, access: &str, fcm_token: &str) {
    let body = json!({"fcm_token": fcm_token, "platform": "android"});
    let (status, answer) =
        app.call(Method::PUT, &app.public_url("/api/shared/devices"), Some(access), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

/// A thief replays a refresh token the app already spent: every token of that sign-in
/// (the access token issued with it, and the one the app got at the rotation) stops
/// working, its sockets close with 4004, its push token is unregistered. The same
/// account's other sign-in (another phone) is untouched.
#[tokio::test]
async fn a_replayed_refresh_token_ends_its_whole_sign_in_and_nothing_else() {
    let app = TestApp::spawn_with(two_phones).await;
    let phone = unique_phone();
    let (customer, first_access, first_refresh) = app.sign_in_customer(&phone).await;
    let (_, other_phone_access, _) = app.sign_in_customer(&phone).await;
    let refresh_url = app.public_url("/api/auth/refresh");
    let (status, rotated) = app.post(&refresh_url, None, json!({"refresh_token": first_refresh})).await;
    assert_eq!(status, 200, "{rotated}");
    let (rotated_access, _) = session_tokens(&rotated);
    register_device(&app, &rotated_access, "stolen-sign-in-phone").await;
    register_device(&app, &other_phone_access, "other-phone").await;
    let mut socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &rotated_access)).await;
    let mut other_socket =
        WsClient::connect_welcomed(&ws_url_with_token(app.public, &other_phone_access)).await;
    assert_eq!(poll_status(&app, &first_access).await.0, 200, "before the replay");

    let (status, body) = app.post(&refresh_url, None, json!({"refresh_token": first_refresh})).await;
    assert_error(status, &body, 401, "refresh_token_reused");

    for access in [&first_access, &rotated_access] {
        let (status, body) = poll_status(&app, access).await;
        assert_error(status, &body, 401, "token_revoked");
    }
    assert_eq!(socket.closed().await, (4004, "sign_in_revoked".to_owned()));
    let refused = tokio_tungstenite::connect_async(ws_url_with_token(app.public, &rotated_access)).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401),
        "{refused:?}"
    );
    assert_eq!(devices_of(&app, customer).await, ["other-phone"]);

    assert_eq!(poll_status(&app, &other_phone_access).await.0, 200, "the other sign-in works");
    other_socket.send_json(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(other_socket.next_json().await["type"], "pong");
}

/// An operator resets a mitra's password: every token issued before is refused at once
/// (the refresh token, and the access token that would otherwise live 15 minutes), its
/// sockets close with 4004 `password_reset`, and a sign-in with the new password works
/// in the same moment (the cut is in milliseconds, not seconds).
#[tokio::test]
async fn a_password_reset_ends_every_earlier_sign_in_of_the_account() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let (mitra, access, refresh) = app.sign_in_new_mitra(&operator).await;
    register_device(&app, &access, "mitra-phone").await;
    let mut socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &access)).await;
    let status_url = app.public_url("/api/mitra/status");
    assert_eq!(app.call(Method::GET, &status_url, Some(&access), None).await.0, 200);

    let reset = app.internal_url(&format!("/internal/mitras/{mitra}/reset-password"));
    let (status, body) = app.post(&reset, Some(&operator), json!({"password": "a-new-secret-1"})).await;
    assert_eq!(status, 204, "{body}");
    let email: String = sqlx::query_scalar("SELECT email FROM mitras WHERE id = $1")
        .bind(mitra)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("email");
    let login = json!({"email": email, "password": "a-new-secret-1"});
    let (status, session) = app.post(&app.public_url("/api/auth/mitra/login"), None, login).await;
    assert_eq!(status, 200, "{session}");
    let (new_access, _) = session_tokens(&session);

    let (status, body) = app.call(Method::GET, &status_url, Some(&access), None).await;
    assert_error(status, &body, 401, "token_revoked");
    let (status, body) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": refresh})).await;
    assert_error(status, &body, 401, "invalid_refresh_token");
    assert_eq!(socket.closed().await, (4004, "password_reset".to_owned()));
    assert!(devices_of(&app, mitra).await.is_empty(), "the old sign-in's push token is unregistered");
    assert_eq!(app.call(Method::GET, &status_url, Some(&new_access), None).await.0, 200);
}

/// A deactivation is not undone for old tokens by a reactivation: the mitra signs in again.
#[tokio::test]
async fn a_token_from_before_a_deactivation_stays_refused_after_reactivation() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let (mitra, access, refresh) = app.sign_in_new_mitra(&operator).await;
    for action in ["deactivate", "reactivate"] {
        let url = app.internal_url(&format!("/internal/mitras/{mitra}/{action}"));
        assert_eq!(app.post(&url, Some(&operator), json!({})).await.0, 200, "{action}");
    }
    let status_url = app.public_url("/api/mitra/status");
    let (status, body) = app.call(Method::GET, &status_url, Some(&access), None).await;
    assert_error(status, &body, 401, "token_revoked");
    let (status, body) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": refresh})).await;
    assert_error(status, &body, 401, "invalid_refresh_token");
}

/// However often a sign-in rotates its refresh token, it ends at its absolute lifetime.
#[tokio::test]
async fn a_sign_in_ends_at_its_absolute_lifetime_however_often_it_rotates() {
    let app = TestApp::spawn_with(|settings| settings.auth.refresh_token_max_lifetime_s = 2).await;
    let (_, _, mut refresh) = app.sign_in_customer(&unique_phone()).await;
    let started = Instant::now();
    let url = app.public_url("/api/auth/refresh");
    let mut rotations = 0;
    let ended = loop {
        let (status, body) = app.post(&url, None, json!({"refresh_token": refresh})).await;
        if status != 200 {
            break (status, body);
        }
        rotations += 1;
        refresh = session_tokens(&body).1;
        assert!(started.elapsed() < Duration::from_secs(4), "still rotating after {rotations} rotations");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_error(ended.0, &ended.1, 401, "invalid_refresh_token");
    assert!(rotations >= 2, "rotated {rotations} times before the end");
    assert!(started.elapsed() >= Duration::from_millis(1_500), "ended after {:?}", started.elapsed());
}

/// Logging out unregisters the push tokens that sign-in registered (a signed-out phone gets
/// no more of the account's pushes); the account's other phone keeps its own.
#[tokio::test]
async fn logout_unregisters_the_push_tokens_of_its_sign_in() {
    let app = TestApp::spawn_with(two_phones).await;
    let phone = unique_phone();
    let (customer, access, refresh) = app.sign_in_customer(&phone).await;
    let (_, other_access, _) = app.sign_in_customer(&phone).await;
    register_device(&app, &access, "signing-out-phone").await;
    register_device(&app, &other_access, "other-phone").await;

    let (status, body) =
        app.post(&app.public_url("/api/auth/logout"), Some(&access), json!({"refresh_token": refresh})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(devices_of(&app, customer).await, ["other-phone"]);
}

/// `DELETE /api/shared/devices` forgets the caller's token, never another account's.
#[tokio::test]
async fn a_device_is_unregistered_only_by_its_owner() {
    let app = TestApp::spawn().await;
    let (owner, owner_access, _) = app.sign_in_customer(&unique_phone()).await;
    let (_, stranger_access, _) = app.sign_in_customer(&unique_phone()).await;
    register_device(&app, &owner_access, "owners-phone").await;
    let url = app.public_url("/api/shared/devices");

    let forget = json!({"fcm_token": "owners-phone"});
    let (status, _) = app.call(Method::DELETE, &url, Some(&stranger_access), Some(forget.clone())).await;
    assert_eq!(status, 204, "the same answer, so a stranger learns nothing");
    assert_eq!(devices_of(&app, owner).await, ["owners-phone"]);

    for bad in [json!({"fcm_token": ""}), json!({"fcm_token": "has space"}), json!({})] {
        let (status, body) = app.call(Method::DELETE, &url, Some(&owner_access), Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(devices_of(&app, owner).await, ["owners-phone"]);

    let (status, _) = app.call(Method::DELETE, &url, Some(&owner_access), Some(forget)).await;
    assert_eq!(status, 204);
    assert!(devices_of(&app, owner).await.is_empty());
}

/// Behind a proxy that appends to `X-Forwarded-For`, a client writes whatever it likes to
/// the left of the proxy's entry: the limits count by the proxy's entry, so inventing a new
/// address per request gains nothing. Another client (another appended address) has its own
/// budget, and a request that did not come through the proxy (no header) is refused.
#[tokio::test]
async fn a_spoofed_forwarded_for_hop_does_not_escape_the_sign_in_limits() {
    let app = TestApp::spawn_with(|s| {
        s.auth.client_ip_source = domain::settings::ClientIpSource::RightmostXForwardedFor;
        s.auth.rate_limit_burst = 3;
        s.auth.rate_limit_per_minute = 1;
        s.auth.otp_max_per_address_per_hour = 2;
    })
    .await;
    let login = app.public_url("/api/auth/mitra/login");
    let body = json!({"email": "nobody@bestie.test", "password": "whatever-1"});
    let through_proxy = |spoofed: String, client: &str| format!("{spoofed}, {client}");
    let mut statuses = Vec::new();
    for n in 0..6 {
        let forwarded = through_proxy(format!("10.9.{n}.{n}"), "203.0.113.7");
        let response = app
            .http
            .post(&login)
            .header("x-forwarded-for", forwarded)
            .json(&body)
            .send()
            .await
            .expect("send");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "one budget, whatever the client wrote");
    let other = app
        .http
        .post(&login)
        .header("x-forwarded-for", through_proxy("203.0.113.7".into(), "198.51.100.9"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(other.status(), 401, "another client behind the proxy has its own budget");
    let direct = app.http.post(&login).json(&body).send().await.expect("send");
    assert_eq!(direct.status(), 400);
    let answer: Value = direct.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "client_address_unknown");

    // The code throttle reads the same address: a third code for any phone is refused.
    let otp = app.public_url("/api/auth/customer/otp");
    let mut statuses = Vec::new();
    for n in 0..3 {
        let forwarded = through_proxy(format!("10.8.{n}.1"), "192.0.2.44");
        let response = app
            .http
            .post(&otp)
            .header("x-forwarded-for", forwarded)
            .json(&json!({"phone": unique_phone()}))
            .send()
            .await
            .expect("send");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 429]);
}

/// Password guesses against one account are capped whatever the addresses they come from:
/// of 8 concurrent wrong passwords exactly `max_sign_in_failures` are checked, then even the
/// right password is refused with `retry_after_s`, operators see the lock, and a password
/// reset lifts it.
#[tokio::test]
async fn password_guesses_against_one_account_are_capped_and_operators_see_the_lock() {
    let app = TestApp::spawn_with(|s| {
        s.auth.max_sign_in_failures = 3;
        s.auth.rate_limit_burst = 100;
    })
    .await;
    let operator = app.sign_in_operator().await;
    let (mitra, _, _) = app.sign_in_new_mitra(&operator).await;
    let email: String = sqlx::query_scalar("SELECT email FROM mitras WHERE id = $1")
        .bind(mitra)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("email");
    let login = app.public_url("/api/auth/mitra/login");
    let guesses =
        (0..8).map(|n| app.post(&login, None, json!({"email": email, "password": format!("guess-{n}-x")})));
    let mut statuses: Vec<u16> =
        futures::future::join_all(guesses).await.into_iter().map(|(s, _)| s).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429]);

    let right = json!({"email": email.to_uppercase(), "password": "listen-well-1"});
    let (status, body) = app.post(&login, None, right.clone()).await;
    assert_error(status, &body, 429, "sign_in_locked");
    let retry_after_s = body["error"]["retry_after_s"].as_u64().expect("retry_after_s");
    assert!((1..=900).contains(&retry_after_s), "{body}");

    let (status, list) =
        app.call(Method::GET, &app.internal_url("/internal/mitras"), Some(&operator), None).await;
    assert_eq!(status, 200, "{list}");
    let row =
        list["rows"].as_array().expect("rows").iter().find(|r| r["id"] == json!(mitra)).expect("the mitra");
    assert!(row["sign_in_locked_for_s"].as_u64().is_some_and(|s| s > 0), "{row}");

    let reset = app.internal_url(&format!("/internal/mitras/{mitra}/reset-password"));
    assert_eq!(app.post(&reset, Some(&operator), json!({"password": "a-new-secret-1"})).await.0, 204);
    let (status, body) = app.post(&login, None, json!({"email": email, "password": "a-new-secret-1"})).await;
    assert_eq!(status, 200, "{body}");
}

/// Whether a socket upgrade is accepted (the socket is closed again at once).
async fn upgrade_accepted(url: &str) -> bool {
    match tokio_tungstenite::connect_async(url).await {
        Ok((mut socket, _)) => {
            let _ = socket.close(None).await;
            true
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            false
        }
        Err(other) => panic!("the upgrade failed: {other}"),
    }
}

/// One account cannot hoard a hub's sockets: of 8 concurrent upgrades exactly
/// `max_sockets_per_user` open, the rest get 429 `too_many_sockets`, everyone else still
/// connects, and a closed socket frees its place.
#[tokio::test]
async fn one_account_cannot_take_every_socket_of_a_hub() {
    let app = TestApp::spawn_with(|s| {
        s.hub.max_sockets_per_user = 3;
        s.hub.max_connections = 10;
    })
    .await;
    let hoarder = app.token_for(uuid::Uuid::new_v4(), domain::auth::Role::Customer);
    let url = ws_url_with_token(app.public, &hoarder);
    let attempts = (0..8).map(|_| tokio_tungstenite::connect_async(url.as_str()));
    let results = futures::future::join_all(attempts).await;
    let mut opened = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Ok((socket, _)) => opened.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("json");
                assert_eq!(body["error"]["code"], "too_many_sockets");
                assert_eq!(body["error"]["max_sockets_per_user"], 3);
                refused += 1;
            }
            Err(other) => panic!("the upgrade failed: {other}"),
        }
    }
    assert_eq!((opened.len(), refused), (3, 5));

    let mut someone_else = WsClient::connect_welcomed(&app.ws_url()).await;
    someone_else.send_json(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(someone_else.next_json().await["type"], "pong");

    let mut closing = opened.pop().expect("a socket");
    closing.close(None).await.expect("close");
    crate::harness::eventually(Duration::from_secs(5), "the closed socket's place is freed", || {
        upgrade_accepted(&url)
    })
    .await;
}

/// One account's writes share one budget: a burst of message sends over REST is cut at
/// the burst with 429 `rate_limited` and `retry_after_s`, and the same account's socket
/// commands are refused too while the budget is spent; another account is untouched, and
/// reads are not counted.
#[tokio::test]
async fn one_accounts_writes_share_one_budget_across_rest_and_sockets() {
    let app = TestApp::spawn_with(|s| {
        s.hub.command_burst = 5;
        s.hub.commands_per_second = 1;
    })
    .await;
    let (_, access, _) = app.sign_in_customer(&unique_phone()).await;
    let url = app.public_url("/api/client/payment-sessions");
    let sends = (0..8).map(|_| app.post(&url, Some(&access), json!({"tier_id": "15m"})));
    let statuses: Vec<(u16, String)> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|(status, body)| (status, body["error"]["code"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let refused: Vec<_> = statuses.iter().filter(|(status, _)| *status == 429).collect();
    assert_eq!(refused.len(), 3, "the burst of 5 passes, the rest is refused: {statuses:?}");
    assert!(refused.iter().all(|(_, code)| code == "rate_limited"), "{statuses:?}");
    let response =
        app.http.post(&url).bearer_auth(&access).json(&json!({"tier_id": "15m"})).send().await.expect("send");
    let retry_header: Option<u64> =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let (status, body): (u16, Value) = (response.status().as_u16(), response.json().await.expect("json"));
    assert_error(status, &body, 429, "rate_limited");
    let retry_after_s = body["error"]["retry_after_s"].as_u64();
    assert!(retry_after_s.is_some_and(|s| s >= 1), "{body}");
    assert_eq!(retry_header, retry_after_s, "the Retry-After header says the same");

    // Reads are free; the socket's commands that reach the store spend the same budget.
    assert_eq!(poll_status(&app, &access).await.0, 200);
    let mut socket = WsClient::connect_welcomed(&ws_url_with_token(app.public, &access)).await;
    let session = uuid::Uuid::new_v4();
    let answer = socket.command("typing", json!({"session_id": session})).await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["data"]["code"], "rate_limited", "{answer}");

    let (_, other, _) = app.sign_in_customer(&unique_phone()).await;
    let (status, body) = app.post(&url, Some(&other), json!({"tier_id": "15m"})).await;
    assert_ne!(status, 429, "{body}");
}

/// Every code is a paid SMS: a number of a country we do not serve, or one that cannot
/// receive SMS, is refused before a code is stored or sent.
#[tokio::test]
async fn codes_go_only_to_mobile_numbers_of_served_countries() {
    let app = TestApp::spawn().await;
    let otp = app.public_url("/api/auth/customer/otp");
    for (phone, code) in [
        ("+44 7400 123456", "phone_country_not_supported"),
        ("+1 650 253 0000", "phone_country_not_supported"),
        ("+62 21 5555 1234", "invalid_phone"),
        ("+62 809 1234 5678", "invalid_phone"),
    ] {
        let (status, body) = app.post(&otp, None, json!({"phone": phone})).await;
        assert_error(status, &body, 400, code);
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM otp_codes")
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
    assert_eq!(stored, 0, "no code was issued");
    let (status, body) = app.post(&otp, None, json!({"phone": "0812 3456 7890"})).await;
    assert_eq!(status, 202, "{body}");
}

/// The chat-message pushes queued for `account`.
async fn push_jobs_for(app: &TestApp, account: uuid::Uuid) -> Vec<Value> {
    let jobs: Vec<Value> =
        sqlx::query_scalar("SELECT convert_from(job, 'UTF8')::jsonb FROM apalis.jobs WHERE job_type = $1")
            .bind(std::any::type_name::<domain::jobs::Push>())
            .fetch_all(app.store.pg_pool())
            .await
            .expect("push jobs");
    jobs.into_iter()
        .filter(|job| job["account"] == json!(account) && job["message"]["data"]["type"] == "chat_message")
        .collect()
}

/// A message that reaches an open socket nobody reads (a suspended phone, before its
/// socket times out) is pushed once the delivery grace has passed; one that a reading app
/// acknowledged (it answered a ping written after the message) is not pushed.
#[tokio::test]
async fn an_event_nobody_acknowledged_is_pushed_after_the_grace_and_an_acknowledged_one_is_not() {
    let app = TestApp::spawn_roles([bestie::ServiceRole::Api, bestie::ServiceRole::Hub].into(), |s| {
        s.hub.ping_interval_s = 1;
        s.hub.delivery_grace_ms = 2_500;
    })
    .await;
    let mut paired = crate::chat::paired(&app).await;
    let (customer, mitra) = (paired.customer.id, paired.mitra.id);

    paired.mitra.socket.stop_reading().await;
    let sent = Instant::now();
    crate::chat::send_rest(&app, &paired.customer.token, &paired.session, "to-suspended", "halo?").await;
    crate::harness::eventually(Duration::from_secs(6), "a push for the unread message", || async {
        !push_jobs_for(&app, mitra).await.is_empty()
    })
    .await;
    let pushed_after = sent.elapsed();
    eprintln!("an unread message was pushed {pushed_after:?} after it was sent");
    assert!(pushed_after >= Duration::from_millis(2_500), "pushed before the grace: {pushed_after:?}");
    assert!(
        app.store.mitra_presence(MitraId(mitra), 3).await.expect("presence").online,
        "the socket was still open: this is the unacknowledged path, not the no-socket one"
    );
    let pushes = push_jobs_for(&app, mitra).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0]["message"]["data"]["chat_session_id"], paired.session.as_str());

    // The customer's app reads: the reply is acknowledged by the next pong, and not pushed.
    let replied = Instant::now();
    crate::chat::send_rest(&app, &paired.mitra.token, &paired.session, "reply", "aku di sini").await;
    let reply = paired.customer.socket.next_json().await;
    assert_eq!(reply["type"], "chat_message", "{reply}");
    let reply_id =
        domain::broker::StreamId::parse(reply["id"].as_str().expect("an event id")).expect("stream id");
    crate::harness::eventually(
        Duration::from_secs(5),
        "the customer's device acknowledges the reply",
        || async {
            let delivered = app.store.delivered_up_to_many(&[UserId(customer)]).await.expect("watermark");
            delivered
                .into_iter()
                .next()
                .flatten()
                .as_deref()
                .and_then(domain::broker::StreamId::parse)
                .is_some_and(|up_to| up_to >= reply_id)
        },
    )
    .await;
    // Past the grace and the check's tick: a push would be queued by now.
    tokio::time::sleep((Duration::from_millis(2_500 + 500)).saturating_sub(replied.elapsed())).await;
    assert!(push_jobs_for(&app, customer).await.is_empty(), "an acknowledged message is not pushed");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"bestie_unacknowledged_checks_total{outcome="acknowledged"}"#)
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}
