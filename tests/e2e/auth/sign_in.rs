//! Signing in: the customer's one-time code (attempts, expiry, throttles, delivery through
//! the log or a gateway) and the input a sign-in refuses.

use super::*;

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
/// answered 500 `internal_error` (found by tests/e2e/hostile/).
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
