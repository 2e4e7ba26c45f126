//! Identity and access: sign-in flows, token rules, and the caller matrix of every
//! protected route.

use std::time::Duration;

use domain::auth::Role;
use domain::auth::tokens::TokenKeys;
use domain::ids::UserId;
use domain::settings::{AuthSettings, OtpSenderKind, Secret};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::harness::{TestApp, unique_phone, ws_url_with_token};
use crate::shutdown::close_code;

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    // An error returns the error and nothing else.
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
}

/// Tokens that must never get in: (description, token, expected status, expected code).
fn bad_tokens(app: &TestApp) -> Vec<(&'static str, Option<String>, u16, &'static str)> {
    let other_key = AuthSettings {
        jwt_secret: Secret::new("someone-elses-key-someone-elses-key!!"),
        ..app.settings.auth.clone()
    };
    let forged = TokenKeys::new(&other_key).issue(UserId(Uuid::new_v4()), Role::Cc).expect("sign").token;
    let keys = TokenKeys::new(&app.settings.auth);
    let ttl = i64::try_from(app.settings.auth.access_token_ttl_s).expect("ttl");
    let now = chrono::Utc::now().timestamp();
    let expired = keys.issue_at(UserId(Uuid::new_v4()), Role::Cc, now - ttl - 5).expect("sign").token;
    vec![
        ("no token", None, 401, "missing_token"),
        ("bad signature", Some(forged), 401, "invalid_token"),
        ("expired", Some(expired), 401, "token_expired"),
        ("garbage", Some("not.a.jwt".to_owned()), 401, "invalid_token"),
    ]
}

#[tokio::test]
async fn every_protected_route_refuses_missing_bad_expired_and_wrong_role_tokens() {
    let app = TestApp::spawn().await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    let mitra = app.token_for(Uuid::new_v4(), Role::Mitra);
    let operator = app.token_for(Uuid::new_v4(), Role::Cc);
    let some_mitra = Uuid::new_v4();
    // (method, url, body, tokens of roles the route refuses)
    let routes: Vec<(Method, String, Value, Vec<&String>)> = vec![
        (Method::POST, app.public_url("/api/auth/logout"), json!({}), vec![&operator]),
        (
            Method::PUT,
            app.public_url("/api/shared/devices"),
            json!({"fcm_token": "t", "platform": "android"}),
            vec![&operator],
        ),
        (Method::POST, app.internal_url("/internal/auth/logout"), json!({}), vec![&customer, &mitra]),
        (
            Method::POST,
            app.internal_url("/internal/mitras"),
            json!({"email": "x@y.id", "password": "12345678", "display_name": "X"}),
            vec![&customer, &mitra],
        ),
        (
            Method::POST,
            app.internal_url(&format!("/internal/mitras/{some_mitra}/deactivate")),
            json!({}),
            vec![&customer, &mitra],
        ),
        (
            Method::POST,
            app.internal_url(&format!("/internal/mitras/{some_mitra}/reactivate")),
            json!({}),
            vec![&customer, &mitra],
        ),
    ];
    for (method, url, body, wrong_roles) in &routes {
        for (what, token, status, code) in bad_tokens(&app) {
            let (got, answer) = app.call(method.clone(), url, token.as_deref(), Some(body.clone())).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{what} on {method} {url}: {answer}"
            );
        }
        for token in wrong_roles {
            let (got, answer) = app.call(method.clone(), url, Some(token), Some(body.clone())).await;
            assert_error(got, &answer, 403, "wrong_role");
        }
    }
    // Nothing was created or changed by any of those calls.
    let (status, _) = app
        .call(
            Method::POST,
            &app.internal_url(&format!("/internal/mitras/{some_mitra}/deactivate")),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(!app.store.account_email_exists("x@y.id").await.expect("lookup"));
}

#[tokio::test]
async fn a_token_without_a_signature_or_with_another_algorithm_is_refused() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = chrono::Utc::now().timestamp();
    let claims = b64(&format!(
        r#"{{"sub":"{}","role":"cc","exp":{},"iat":{now},"jti":"{}","iss":"bestie"}}"#,
        Uuid::new_v4(),
        now + 600,
        Uuid::new_v4()
    ));
    for header in [
        r#"{"alg":"none","kid":"dev-1"}"#,
        r#"{"alg":"HS512","kid":"dev-1"}"#,
        r#"{"alg":"RS256","kid":"dev-1"}"#,
    ] {
        let token = format!("{}.{claims}.", b64(header));
        let (status, body) = app.post(&app.internal_url("/internal/mitras"), Some(&token), json!({})).await;
        assert_error(status, &body, 401, "invalid_token");
    }
}

#[tokio::test]
async fn a_customer_signs_in_with_a_one_time_code() {
    let app = TestApp::spawn().await;
    let phone = unique_phone();
    let (status, sent) =
        app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    assert_eq!(status, 202);
    assert_eq!(sent["expires_in_s"], 300);
    let code = sent["dev_code"].as_str().expect("dev sender returns the code").to_owned();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));

    // Stored as a MAC, never in clear.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT code_hash FROM otp_codes WHERE phone = $1")
        .bind(&phone)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("row");
    assert_eq!(stored.len(), 32);
    assert!(!stored.windows(6).any(|w| w == code.as_bytes()));

    let body = json!({"phone": phone, "code": code, "call_name": "  Rani  "});
    let (status, session) = app.post(&app.public_url("/api/auth/customer/verify"), None, body.clone()).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["call_name"], "Rani");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in_s"], 900);
    let access = session["access_token"].as_str().expect("access");
    let (status, _) = app
        .call(
            Method::PUT,
            &app.public_url("/api/shared/devices"),
            Some(access),
            Some(json!({"fcm_token": "fcm-1", "platform": "ios"})),
        )
        .await;
    assert_eq!(status, 200);

    // A code works once.
    let (status, again) = app.post(&app.public_url("/api/auth/customer/verify"), None, body).await;
    assert_error(status, &again, 401, "otp_invalid");
}

#[tokio::test]
async fn five_wrong_codes_burn_the_code() {
    let app = TestApp::spawn().await;
    let phone = unique_phone();
    let (_, sent) = app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    let code = sent["dev_code"].as_str().expect("code").to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for attempts_left in (1..=4).rev() {
        let (status, body) = app
            .post(&app.public_url("/api/auth/customer/verify"), None, json!({"phone": phone, "code": wrong}))
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "otp_incorrect");
        assert_eq!(body["error"]["attempts_left"], attempts_left);
    }
    let (status, body) = app
        .post(&app.public_url("/api/auth/customer/verify"), None, json!({"phone": phone, "code": wrong}))
        .await;
    assert_error(status, &body, 401, "otp_locked");
    let (status, body) = app
        .post(&app.public_url("/api/auth/customer/verify"), None, json!({"phone": phone, "code": code}))
        .await;
    assert_error(status, &body, 401, "otp_locked");
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers WHERE phone = $1")
        .bind(&phone)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
    assert_eq!(customers, 0);
}

#[tokio::test]
async fn concurrent_wrong_guesses_are_each_counted() {
    let app = TestApp::spawn().await;
    let phone = unique_phone();
    let (_, sent) = app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    let code = sent["dev_code"].as_str().expect("code").to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let url = app.public_url("/api/auth/customer/verify");
    let guesses = (0..10).map(|_| app.post(&url, None, json!({"phone": phone, "code": wrong})));
    let answers = futures::future::join_all(guesses).await;
    let incorrect = answers.iter().filter(|(_, b)| b["error"]["code"] == "otp_incorrect").count();
    let locked = answers.iter().filter(|(_, b)| b["error"]["code"] == "otp_locked").count();
    assert_eq!((incorrect, locked), (4, 6));
    let (status, body) = app.post(&url, None, json!({"phone": phone, "code": code})).await;
    assert_error(status, &body, 401, "otp_locked");
}

#[tokio::test]
async fn an_expired_code_is_refused_and_only_the_newest_code_counts() {
    let app = TestApp::spawn_with(|s| s.auth.otp_resend_interval_s = 0).await;
    let phone = unique_phone();
    let url = app.public_url("/api/auth/customer/otp");
    let (_, first) = app.post(&url, None, json!({"phone": phone})).await;
    let (_, second) = app.post(&url, None, json!({"phone": phone})).await;
    let (first, second) =
        (first["dev_code"].as_str().expect("code"), second["dev_code"].as_str().expect("code"));
    let verify = app.public_url("/api/auth/customer/verify");
    if first != second {
        let (status, body) = app.post(&verify, None, json!({"phone": phone, "code": first})).await;
        assert_error(status, &body, 401, "otp_incorrect");
    }
    // Age the newest code past its expiry.
    sqlx::query(
        "UPDATE otp_codes SET created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes'
         WHERE phone = $1",
    )
    .bind(&phone)
    .execute(app.store.pg_pool())
    .await
    .expect("age codes");
    let (status, body) = app.post(&verify, None, json!({"phone": phone, "code": second})).await;
    assert_error(status, &body, 401, "otp_invalid");
}

#[tokio::test]
async fn codes_are_throttled_per_phone_and_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.auth.otp_max_per_address_per_hour = 3;
        s.auth.otp_max_per_phone_per_hour = 2;
    })
    .await;
    let url = app.public_url("/api/auth/customer/otp");
    let phone = unique_phone();
    let (status, _) = app.post(&url, None, json!({"phone": phone})).await;
    assert_eq!(status, 202);
    let (status, body) = app.post(&url, None, json!({"phone": phone})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "otp_resend_too_soon");
    let retry = body["error"]["retry_after_s"].as_u64().expect("retry_after_s");
    assert!((1..=30).contains(&retry), "{retry}");

    // Past the resend interval, the per-phone hourly cap holds.
    sqlx::query("UPDATE otp_codes SET created_at = now() - interval '40 seconds' WHERE phone = $1")
        .bind(&phone)
        .execute(app.store.pg_pool())
        .await
        .expect("age");
    let (status, _) = app.post(&url, None, json!({"phone": phone})).await;
    assert_eq!(status, 202);
    sqlx::query("UPDATE otp_codes SET created_at = now() - interval '40 seconds' WHERE phone = $1")
        .bind(&phone)
        .execute(app.store.pg_pool())
        .await
        .expect("age");
    let (status, body) = app.post(&url, None, json!({"phone": phone})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "otp_rate_limited");

    // This address has asked 2 codes; one more phone reaches its cap of 3, the next is refused.
    let (status, _) = app.post(&url, None, json!({"phone": unique_phone()})).await;
    assert_eq!(status, 202);
    let (status, body) = app.post(&url, None, json!({"phone": unique_phone()})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "otp_rate_limited");
}

#[tokio::test]
async fn concurrent_code_requests_for_one_phone_issue_one_code() {
    let app = TestApp::spawn().await;
    let phone = unique_phone();
    let url = app.public_url("/api/auth/customer/otp");
    let requests = (0..8).map(|_| app.post(&url, None, json!({"phone": phone})));
    let answers = futures::future::join_all(requests).await;
    assert_eq!(answers.iter().filter(|(status, _)| *status == 202).count(), 1);
    assert_eq!(answers.iter().filter(|(status, _)| *status == 429).count(), 7);
}

#[tokio::test]
async fn bad_sign_in_input_gets_400_with_a_code() {
    let app = TestApp::spawn().await;
    let otp = app.public_url("/api/auth/customer/otp");
    let verify = app.public_url("/api/auth/customer/verify");
    let cases = [
        (&otp, json!({"phone": "12345"}), 400, "invalid_phone"),
        (&otp, json!({"phone": "+62abcdefghij"}), 400, "invalid_phone"),
        (&otp, json!({}), 400, "invalid_json"),
        (&otp, json!({"phone": 6281234567_i64}), 400, "invalid_json"),
        (&otp, json!({"phone": "+6281234567", "extra": true}), 400, "invalid_json"),
        // serde reads a struct from an array of its fields in order; bodies are objects.
        (&otp, json!([unique_phone()]), 400, "invalid_json"),
        (&verify, json!([unique_phone(), "123456", null]), 400, "invalid_json"),
        (&verify, json!({"phone": unique_phone(), "code": "12ab56"}), 400, "otp_malformed"),
        (
            &verify,
            json!({"phone": unique_phone(), "code": "123456", "call_name": ""}),
            400,
            "invalid_call_name",
        ),
        (
            &verify,
            json!({"phone": unique_phone(), "code": "123456", "call_name": "x".repeat(51)}),
            400,
            "invalid_call_name",
        ),
        (&verify, json!({"phone": unique_phone(), "code": "123456"}), 401, "otp_invalid"),
    ];
    for (url, body, status, code) in cases {
        let (got, answer) = app.post(url, None, body.clone()).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body}: {answer}");
    }
    // Not JSON, no content type, too large.
    let raw = app
        .http
        .post(&otp)
        .header("content-type", "application/json")
        .body("{\"phone\":")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.expect("json")["error"]["code"], "invalid_json");
    let untyped = app.http.post(&otp).body(r#"{"phone":"+6281234567"}"#).send().await.expect("send");
    assert_eq!(untyped.status(), 415);
    let huge = json!({"phone": "9".repeat(api::MAX_BODY_BYTES)});
    let (status, body) = app.post(&otp, None, huge).await;
    assert_error(status, &body, 413, "payload_too_large");
}

/// Postgres text cannot hold NUL: a sign-in whose email had one reached the query and
/// answered 500 `internal_error` (found by tests/e2e/hostile.rs).
#[tokio::test]
async fn a_password_sign_in_with_nul_in_the_email_is_invalid_credentials() {
    let app = TestApp::spawn().await;
    for url in [app.public_url("/api/auth/mitra/login"), app.internal_url("/internal/auth/login")] {
        let body = json!({"email": "ayu\u{0}@bestie.test", "password": "listen-well-1"});
        let (status, answer) = app.post(&url, None, body).await;
        assert_error(status, &answer, 401, "invalid_credentials");
    }
}

#[tokio::test]
async fn the_log_sender_never_returns_the_code() {
    let app = TestApp::spawn_with(|s| s.auth.otp_sender = Some(OtpSenderKind::Log)).await;
    let (status, body) =
        app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": unique_phone()})).await;
    assert_eq!(status, 202);
    assert!(body.get("dev_code").is_none(), "{body}");
}

/// A fake SMS gateway: records what it receives and answers with `status`.
async fn fake_gateway(
    status: u16,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Value)>) {
    use axum::http::HeaderMap;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
        let tx = tx.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let _ = tx.send((auth, body));
            axum::http::StatusCode::from_u16(status).expect("status")
        }
    };
    let router = axum::Router::new().route("/sms", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, rx)
}

#[tokio::test]
async fn the_webhook_sender_delivers_the_code_to_the_gateway() {
    let (url, mut received) = fake_gateway(200).await;
    let app = TestApp::spawn_with(|s| {
        s.auth.otp_sender = Some(OtpSenderKind::Webhook);
        s.auth.otp_webhook_url = Some(url);
        s.auth.otp_webhook_token = Some(Secret::new("gateway-key"));
    })
    .await;
    let phone = unique_phone();
    let (status, body) =
        app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    assert_eq!(status, 202);
    assert!(body.get("dev_code").is_none());
    let (auth, sms) = received.recv().await.expect("the gateway got a message");
    assert_eq!(auth.as_deref(), Some("Bearer gateway-key"));
    assert_eq!(sms["phone"], phone);
    let code = sms["code"].as_str().expect("code");
    let (status, _) = app
        .post(&app.public_url("/api/auth/customer/verify"), None, json!({"phone": phone, "code": code}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_failed_delivery_answers_503_and_does_not_hold_the_throttle() {
    let (url, mut received) = fake_gateway(500).await;
    let app = TestApp::spawn_with(|s| {
        s.auth.otp_sender = Some(OtpSenderKind::Webhook);
        s.auth.otp_webhook_url = Some(url);
    })
    .await;
    let phone = unique_phone();
    for _ in 0..2 {
        let (status, body) =
            app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "otp_delivery_failed");
        assert!(received.recv().await.is_some());
    }
}

#[tokio::test]
async fn mitras_and_operators_sign_in_with_email_and_password() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let body = json!({"email": "Ayu@Bestie.Test", "password": "listen-well-1", "display_name": "Bestie Ayu"});
    let (status, mitra) = app.post(&app.internal_url("/internal/mitras"), Some(&operator), body).await;
    assert_eq!(status, 201, "{mitra}");
    assert_eq!(mitra["email"], "ayu@bestie.test");
    assert_eq!(mitra["active"], true);

    let login = app.public_url("/api/auth/mitra/login");
    let (status, session) =
        app.post(&login, None, json!({"email": "AYU@bestie.test", "password": "listen-well-1"})).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["mitra"]["display_name"], "Bestie Ayu");
    assert_eq!(session["mitra"]["id"], mitra["id"]);

    for (email, password) in [("ayu@bestie.test", "listen-well-2"), ("nobody@bestie.test", "listen-well-1")] {
        let (status, body) = app.post(&login, None, json!({"email": email, "password": password})).await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    // A mitra is not an operator, and an operator is not a mitra.
    let (status, body) = app
        .post(
            &app.internal_url("/internal/auth/login"),
            None,
            json!({"email": "ayu@bestie.test", "password": "listen-well-1"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let admin = json!({"email": app.settings.seed.admin_email, "password": app.settings.seed.admin_password.expose()});
    let (status, body) = app.post(&login, None, admin).await;
    assert_error(status, &body, 401, "invalid_credentials");

    let audit: (String, String) =
        sqlx::query_as("SELECT action, target_id FROM audit_log WHERE action = 'mitra.create'")
            .fetch_one(app.store.pg_pool())
            .await
            .expect("audit row");
    assert_eq!(audit.1, mitra["id"].as_str().expect("id"));
}

#[tokio::test]
async fn creating_a_mitra_validates_and_refuses_a_taken_email() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let url = app.internal_url("/internal/mitras");
    let cases = [
        (
            json!({"email": "not-an-email", "password": "listen-well-1", "display_name": "A"}),
            400,
            "invalid_email",
        ),
        (json!({"email": "a@b.id", "password": "short", "display_name": "A"}), 400, "invalid_password"),
        (
            json!({"email": "a@b.id", "password": "listen-well-1", "display_name": "  "}),
            400,
            "invalid_display_name",
        ),
        (json!({"email": "a@b.id", "password": "listen-well-1"}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = app.post(&url, Some(&operator), body).await;
        assert_error(got, &answer, status, code);
    }
    let body = json!({"email": "a@b.id", "password": "listen-well-1", "display_name": "A"});
    assert_eq!(app.post(&url, Some(&operator), body).await.0, 201);
    let (status, answer) = app
        .post(
            &url,
            Some(&operator),
            json!({"email": "A@B.ID", "password": "listen-well-1", "display_name": "B"}),
        )
        .await;
    assert_error(status, &answer, 409, "email_taken");
    let (status, answer) = app
        .post(&app.internal_url("/internal/mitras/not-a-uuid/deactivate"), Some(&operator), json!({}))
        .await;
    assert_error(status, &answer, 400, "invalid_path");
}

#[tokio::test]
async fn a_deactivated_mitra_is_locked_out_everywhere_at_once() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let (mitra, access, refresh) = app.sign_in_new_mitra(&operator).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url_with_token(app.public, &access)).await.expect("socket");

    let (status, body) = app
        .post(&app.internal_url(&format!("/internal/mitras/{mitra}/deactivate")), Some(&operator), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], false);

    // The live socket is closed with 4003.
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::from(4003)));
    // The access token, the refresh token and the password no longer work.
    let (status, body) = app
        .call(
            Method::PUT,
            &app.public_url("/api/shared/devices"),
            Some(&access),
            Some(json!({"fcm_token": "t", "platform": "ios"})),
        )
        .await;
    assert_error(status, &body, 401, "token_revoked");
    let (status, body) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": refresh})).await;
    assert_error(status, &body, 401, "invalid_refresh_token");
    let email: String = sqlx::query_scalar("SELECT email FROM mitras WHERE id = $1")
        .bind(mitra)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("email");
    let login = json!({"email": email, "password": "listen-well-1"});
    let (status, body) = app.post(&app.public_url("/api/auth/mitra/login"), None, login.clone()).await;
    assert_error(status, &body, 403, "account_deactivated");
    let ws = tokio_tungstenite::connect_async(ws_url_with_token(app.public, &access)).await;
    assert!(
        matches!(ws, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401),
        "{ws:?}"
    );

    // Reactivated, the mitra signs in again.
    let (status, _) = app
        .post(&app.internal_url(&format!("/internal/mitras/{mitra}/reactivate")), Some(&operator), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.post(&app.public_url("/api/auth/mitra/login"), None, login).await;
    assert_eq!(status, 200);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id")
            .bind(mitra.to_string())
            .fetch_all(app.store.pg_pool())
            .await
            .expect("audit");
    assert_eq!(actions, ["mitra.create", "mitra.deactivate", "mitra.reactivate"]);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let app = TestApp::spawn().await;
    let (_, _, first) = app.sign_in_customer(&unique_phone()).await;
    let url = app.public_url("/api/auth/refresh");
    let (status, rotated) = app.post(&url, None, json!({"refresh_token": first})).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(second, first);

    let (status, body) = app.post(&url, None, json!({"refresh_token": first})).await;
    assert_error(status, &body, 401, "refresh_token_reused");
    // The whole family is gone, including the token the thief or the app got last.
    let (status, body) = app.post(&url, None, json!({"refresh_token": second})).await;
    assert_error(status, &body, 401, "invalid_refresh_token");
}

#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_rotate_once() {
    let app = TestApp::spawn().await;
    let (_, _, refresh) = app.sign_in_customer(&unique_phone()).await;
    let url = app.public_url("/api/auth/refresh");
    let (a, b) = tokio::join!(
        app.post(&url, None, json!({"refresh_token": refresh})),
        app.post(&url, None, json!({"refresh_token": refresh}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
    let loser = if a.0 == 401 { a.1 } else { b.1 };
    assert_eq!(loser["error"]["code"], "refresh_token_reused");
}

#[tokio::test]
async fn each_listener_refreshes_only_its_own_callers() {
    let app = TestApp::spawn().await;
    let (_, _, customer_refresh) = app.sign_in_customer(&unique_phone()).await;
    domain::seed::run(&app.store, &app.settings.seed).await.expect("seed");
    let admin = json!({"email": app.settings.seed.admin_email, "password": app.settings.seed.admin_password.expose()});
    let (_, session) = app.post(&app.internal_url("/internal/auth/login"), None, admin).await;
    let operator_refresh = session["refresh_token"].as_str().expect("refresh");

    let (status, body) = app
        .post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": operator_refresh}))
        .await;
    assert_error(status, &body, 401, "invalid_refresh_token");
    let (status, body) = app
        .post(&app.internal_url("/internal/auth/refresh"), None, json!({"refresh_token": customer_refresh}))
        .await;
    assert_error(status, &body, 401, "invalid_refresh_token");
    // Refused on the wrong listener, both still work on their own.
    assert_eq!(
        app.post(
            &app.internal_url("/internal/auth/refresh"),
            None,
            json!({"refresh_token": operator_refresh})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": customer_refresh}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_refresh_family() {
    let app = TestApp::spawn().await;
    // A `null` body is no body, as the document's optional body allows.
    let (_, other, _) = app.sign_in_customer(&unique_phone()).await;
    let (status, body) = app.post(&app.public_url("/api/auth/logout"), Some(&other), Value::Null).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app.post(&app.public_url("/api/auth/logout"), Some(&other), Value::Null).await;
    assert_error(status, &body, 401, "token_revoked");
    let (_, access, refresh) = app.sign_in_customer(&unique_phone()).await;
    let (status, body) =
        app.post(&app.public_url("/api/auth/logout"), Some(&access), json!({"refresh_token": refresh})).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app.post(&app.public_url("/api/auth/logout"), Some(&access), json!({})).await;
    assert_error(status, &body, 401, "token_revoked");
    let (status, body) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": refresh})).await;
    assert_error(status, &body, 401, "invalid_refresh_token");
}

/// Each process answers revocation from memory; a logout or deactivation in one process
/// must reach the others through Redis within moments.
#[tokio::test]
async fn a_logout_or_deactivation_in_one_process_is_refused_by_the_others() {
    let app = TestApp::spawn().await;
    let other = app.spawn_sibling().await;
    let poll = |app: &TestApp, token: String| {
        let url = app.public_url("/api/client/mitra-availability");
        let http = app.http.clone();
        async move { http.get(url).bearer_auth(token).send().await.expect("sent").status().as_u16() }
    };
    async fn refused_within(check: impl Fn() -> futures::future::BoxFuture<'static, u16>) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while check().await != 401 {
            assert!(tokio::time::Instant::now() < deadline, "still accepted 1 s after the revocation");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let (_, access, _) = app.sign_in_customer(&unique_phone()).await;
    assert_eq!(poll(&other, access.clone()).await, 200);
    let (status, _) = app.post(&app.public_url("/api/auth/logout"), Some(&access), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(poll(&app, access.clone()).await, 401, "the revoking process refuses it at once");
    refused_within(|| Box::pin(poll(&other, access.clone()))).await;

    let operator = app.sign_in_operator().await;
    let (mitra, mitra_access, _) = app.sign_in_new_mitra(&operator).await;
    let status_url = other.public_url("/api/mitra/status");
    let (status, _) = other.call(Method::GET, &status_url, Some(&mitra_access), None).await;
    assert_eq!(status, 200);
    let deactivate = app.internal_url(&format!("/internal/mitras/{mitra}/deactivate"));
    assert_eq!(app.post(&deactivate, Some(&operator), json!({})).await.0, 200);
    let http = other.http.clone();
    refused_within(|| {
        let (http, url, token) = (http.clone(), status_url.clone(), mitra_access.clone());
        Box::pin(
            async move { http.get(url).bearer_auth(token).send().await.expect("sent").status().as_u16() },
        )
    })
    .await;
}

#[tokio::test]
async fn logging_out_with_someone_elses_refresh_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, mine, _) = app.sign_in_customer(&unique_phone()).await;
    let (_, _, theirs) = app.sign_in_customer(&unique_phone()).await;
    let (status, body) =
        app.post(&app.public_url("/api/auth/logout"), Some(&mine), json!({"refresh_token": theirs})).await;
    assert_error(status, &body, 404, "refresh_token_not_found");
    // Their session and my access token both still work.
    let (status, _) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": theirs})).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            Method::PUT,
            &app.public_url("/api/shared/devices"),
            Some(&mine),
            Some(json!({"fcm_token": "x", "platform": "web"})),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_socket_endpoint_checks_the_token_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let ws = |token: Option<String>| {
        let url = match token {
            Some(token) => ws_url_with_token(app.public, &token),
            None => format!("ws://{}/ws", app.public),
        };
        async move {
            match tokio_tungstenite::connect_async(url).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    let body: Value =
                        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).expect("json");
                    (
                        response.status().as_u16(),
                        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
                    )
                }
                Ok(_) => (101, String::new()),
                Err(other) => panic!("{other:?}"),
            }
        }
    };
    for (what, token, status, code) in bad_tokens(&app) {
        assert_eq!(ws(token).await, (status, code.to_owned()), "{what}");
    }
    assert_eq!(ws(Some(app.token_for(Uuid::new_v4(), Role::Cc))).await, (403, "wrong_role".to_owned()));
    assert_eq!(ws(Some(app.token_for(Uuid::new_v4(), Role::Mitra))).await.0, 101);

    // The Authorization header works as well as the query string.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws", app.public).into_client_request().expect("request");
    let bearer = format!("Bearer {}", app.token_for(Uuid::new_v4(), Role::Customer));
    request.headers_mut().insert("authorization", bearer.parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn a_socket_closes_with_4001_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let keys = TokenKeys::new(&app.settings.auth);
    let ttl = i64::try_from(app.settings.auth.access_token_ttl_s).expect("ttl");
    // A token with two seconds left.
    let token = keys
        .issue_at(UserId(Uuid::new_v4()), Role::Customer, chrono::Utc::now().timestamp() - ttl + 2)
        .expect("sign")
        .token;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url_with_token(app.public, &token)).await.expect("socket");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = socket.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) = frame {
                return Some((u16::from(frame.code), frame.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(closed, Some((4001, "token_expired".to_owned())));
}

#[tokio::test]
async fn sign_in_routes_are_rate_limited_per_client_address() {
    let app = TestApp::spawn_with(|s| {
        s.auth.rate_limit_burst = 3;
        s.auth.rate_limit_per_minute = 1;
    })
    .await;
    let login = app.public_url("/api/auth/mitra/login");
    let body = json!({"email": "nobody@bestie.test", "password": "whatever-1"});
    for _ in 0..3 {
        assert_eq!(app.post(&login, None, body.clone()).await.0, 401);
    }
    let response = app.http.post(&login).json(&body).send().await.expect("send");
    assert_eq!(response.status(), 429);
    let retry_header: u64 =
        response.headers()["retry-after"].to_str().expect("ascii").parse().expect("number");
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "rate_limited");
    assert_eq!(answer["error"]["retry_after_s"], retry_header);
    assert!(retry_header >= 1);
    // Other routes are not limited by it.
    assert_eq!(app.http.get(app.public_url("/healthz")).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn a_device_token_moves_to_its_latest_owner() {
    let app = TestApp::spawn().await;
    let (customer, customer_token, _) = app.sign_in_customer(&unique_phone()).await;
    let operator = app.sign_in_operator().await;
    let (mitra, mitra_token, _) = app.sign_in_new_mitra(&operator).await;
    let url = app.public_url("/api/shared/devices");
    let device = json!({"fcm_token": "shared-phone-token", "platform": "android"});
    assert_eq!(app.call(Method::PUT, &url, Some(&customer_token), Some(device.clone())).await.0, 200);
    assert_eq!(
        app.store.device_owner("shared-phone-token").await.expect("owner"),
        Some(("customer".into(), customer))
    );
    assert_eq!(app.call(Method::PUT, &url, Some(&mitra_token), Some(device)).await.0, 200);
    assert_eq!(
        app.store.device_owner("shared-phone-token").await.expect("owner"),
        Some(("mitra".into(), mitra))
    );

    for (body, code) in [
        (json!({"fcm_token": "t", "platform": "symbian"}), "invalid_platform"),
        (json!({"fcm_token": "  ", "platform": "ios"}), "invalid_fcm_token"),
        (json!({"fcm_token": "t"}), "invalid_json"),
    ] {
        let (status, answer) = app.call(Method::PUT, &url, Some(&mitra_token), Some(body)).await;
        assert_error(status, &answer, 400, code);
    }
}
