//! Payment sessions through the REST routes: pricing and the free trial, confirm (charged
//! once), cancel, expiry checked inline, ownership and bad input.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::harness::TestApp;
use crate::pairing::{accept, customer, new_online_mitra, next_event, paid, set_config, start_blast};

async fn create(app: &TestApp, token: &str, order: Value) -> (u16, Value) {
    app.post(&app.public_url("/api/client/payment-sessions"), Some(token), order).await
}

async fn act(app: &TestApp, token: &str, payment: &Value, action: &str) -> (u16, Value) {
    let id = payment["id"].as_str().expect("id");
    app.post(&app.public_url(&format!("/api/client/payment-sessions/{id}/{action}")), Some(token), json!({}))
        .await
}

async fn charges(pool: &PgPool, payment: &Value) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, amount FROM charges WHERE payment_session_id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_all(pool)
        .await
        .expect("charges")
}

#[tokio::test]
async fn the_first_chat_is_the_free_trial_and_later_ones_are_priced() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let rani = customer(&app).await;
    let (status, trial) = create(&app, &rani.token, json!({"tier_id": "60m"})).await;
    assert_eq!(status, 201, "{trial}");
    assert_eq!(
        (
            trial["status"].as_str(),
            trial["amount"].as_i64(),
            trial["is_free_trial"].as_bool(),
            trial["duration_minutes"].as_i64()
        ),
        (Some("pending"), Some(0), Some(true), Some(15)),
        "the trial is free and lasts free_trial_duration_minutes"
    );
    let created: chrono::DateTime<chrono::Utc> =
        trial["created_at"].as_str().expect("t").parse().expect("time");
    let expires: chrono::DateTime<chrono::Utc> =
        trial["expires_at"].as_str().expect("t").parse().expect("time");
    assert_eq!((expires - created).num_minutes(), 20, "payment_session_timeout_minutes");
    let (status, confirmed) = act(&app, &rani.token, &trial, "confirm").await;
    assert_eq!((status, confirmed["status"].as_str()), (200, Some("confirmed")));
    assert!(charges(pool, &trial).await.is_empty(), "a free trial charges nothing");

    let (status, priced) = create(&app, &rani.token, json!({"duration_minutes": 30})).await;
    assert_eq!(status, 201);
    assert_eq!(
        (priced["amount"].as_i64(), priced["is_free_trial"].as_bool(), priced["tier_id"].as_str()),
        (Some(25_000), Some(false), Some("30m"))
    );
    let (status, got) = app
        .call(
            Method::GET,
            &app.public_url(&format!(
                "/api/client/payment-sessions/{}",
                priced["id"].as_str().unwrap_or_default()
            )),
            Some(&rani.token),
            None,
        )
        .await;
    assert_eq!(
        (status, got["id"].clone(), got["chat_requests"].clone()),
        (200, priced["id"].clone(), json!([]))
    );
    let other = customer(&app).await;
    let url = app
        .public_url(&format!("/api/client/payment-sessions/{}", priced["id"].as_str().unwrap_or_default()));
    let (status, body) = app.call(Method::GET, &url, Some(&other.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("payment_session_not_found")));
}

async fn pricing(app: &TestApp, token: &str) -> Value {
    let (status, body) =
        app.call(Method::GET, &app.public_url("/api/client/pricing"), Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn pricing_shows_the_trial_until_a_paid_chat_and_the_tiers_the_orders_are_priced_by() {
    let app = TestApp::spawn().await;
    let rani = customer(&app).await;
    let before = pricing(&app, &rani.token).await;
    assert_eq!(before["free_trial"], json!({"enabled": true, "applies": true, "duration_minutes": 15}));
    let tiers = before["tiers"].as_array().expect("tiers");
    let thirty = tiers.iter().find(|tier| tier["id"] == "30m").expect("a 30m tier");
    assert_eq!(thirty["duration_minutes"], 30);

    // A pending trial is not used yet; a confirmed one is.
    let (_, trial) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    assert_eq!(pricing(&app, &rani.token).await["free_trial"]["applies"], true, "only pending");
    let (status, _) = act(&app, &rani.token, &trial, "confirm").await;
    assert_eq!(status, 200);
    let after = pricing(&app, &rani.token).await;
    assert_eq!(after["free_trial"]["applies"], false, "{after}");
    // The next order costs what the answer said.
    let (_, priced) = create(&app, &rani.token, json!({"tier_id": "30m"})).await;
    assert_eq!(
        (priced["is_free_trial"].as_bool(), priced["amount"].clone()),
        (Some(false), thirty["price"].clone())
    );

    // Switched off by the operators: offered to nobody.
    set_config(app.store.pg_pool(), "free_trial_enabled", json!(false)).await;
    let budi = customer(&app).await;
    assert_eq!(
        pricing(&app, &budi.token).await["free_trial"],
        json!({"enabled": false, "applies": false, "duration_minutes": 15})
    );
    let (_, order) = create(&app, &budi.token, json!({"tier_id": "15m"})).await;
    assert_eq!(order["is_free_trial"], false);

    let operator = app.sign_in_operator().await;
    let (_, mitra_token, _) = app.sign_in_new_mitra(&operator).await;
    let (status, body) =
        app.call(Method::GET, &app.public_url("/api/client/pricing"), Some(&mitra_token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
}

#[tokio::test]
async fn a_double_confirm_charges_once() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let rani = customer(&app).await;
    paid(&app, &rani.token, json!({"tier_id": "15m"})).await; // the trial
    let (_, payment) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let confirms = (0..10).map(|_| act(&app, &rani.token, &payment, "confirm"));
    for (status, body) in futures::future::join_all(confirms).await {
        assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")), "{body}");
    }
    assert_eq!(charges(pool, &payment).await, vec![("succeeded".to_owned(), 15_000)]);
    let (status, _) = act(&app, &rani.token, &payment, "confirm").await;
    assert_eq!(status, 200);
    assert_eq!(charges(pool, &payment).await.len(), 1);
}

#[tokio::test]
async fn two_trials_confirmed_at_once_leave_one_in_use() {
    let app = TestApp::spawn().await;
    let rani = customer(&app).await;
    let (_, first) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, second) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    assert_eq!(
        (first["is_free_trial"].as_bool(), second["is_free_trial"].as_bool()),
        (Some(true), Some(true))
    );
    let (a, b) =
        tokio::join!(act(&app, &rani.token, &first, "confirm"), act(&app, &rani.token, &second, "confirm"));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { a.1 } else { b.1 };
    assert_eq!(refused["error"]["code"], "free_trial_used");
}

#[tokio::test]
async fn bad_orders_are_refused_with_codes_and_create_nothing() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let rani = customer(&app).await;
    let session = uuid::Uuid::new_v4();
    let cases = [
        (json!({}), 400, "tier_required"),
        (json!({"tier_id": "7m"}), 404, "unknown_tier"),
        (json!({"duration_minutes": 7}), 404, "unknown_tier"),
        (json!({"tier_id": "15m", "duration_minutes": 30}), 404, "unknown_tier"),
        (json!({"tier_id": "15m", "purpose": "gift"}), 400, "invalid_purpose"),
        (json!({"tier_id": "15m", "purpose": "extension"}), 400, "chat_session_mismatch"),
        (json!({"tier_id": "15m", "chat_session_id": session}), 400, "chat_session_mismatch"),
        (
            json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": session}),
            404,
            "chat_session_not_extendable",
        ),
        (json!({"tier_id": "15m", "targeted_mitra_id": session}), 404, "unknown_targeted_mitra"),
        (json!({"tier_id": 15}), 400, "invalid_json"),
        (json!({"tier_id": "15m", "price": 1}), 400, "invalid_json"),
        (json!({"tier_id": "15m", "targeted_mitra_id": "me"}), 400, "invalid_json"),
        (json!({"duration_minutes": 30.5}), 400, "invalid_json"),
        (json!({"duration_minutes": 1e12}), 400, "invalid_json"),
    ];
    for (order, status, code) in cases {
        let (got, body) = create(&app, &rani.token, order.clone()).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{order}: {body}");
    }
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_sessions WHERE customer_id = $1")
        .bind(rani.id)
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(made, 0);
    // JSON Schema's integer: a number without a fraction, however it is spelled.
    for spelled in [json!(30.0), serde_json::from_str::<Value>("3e1").expect("3e1")] {
        let (status, order) = create(&app, &rani.token, json!({"duration_minutes": spelled})).await;
        assert_eq!((status, order["tier_id"].as_str()), (201, Some("30m")), "{spelled}: {order}");
    }
    let (status, body) = app
        .call(
            Method::POST,
            &app.public_url("/api/client/payment-sessions/not-a-uuid/confirm"),
            Some(&rani.token),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn cancel_abandons_only_a_pending_payment() {
    let app = TestApp::spawn().await;
    let rani = customer(&app).await;
    let (_, payment) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, body) = act(&app, &rani.token, &payment, "cancel").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("abandoned")));
    let (status, body) = act(&app, &rani.token, &payment, "cancel").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("abandoned")), "cancel is idempotent");
    let (status, body) = act(&app, &rani.token, &payment, "confirm").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_session_abandoned")));

    let confirmed = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, body) = act(&app, &rani.token, &confirmed, "cancel").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_session_not_pending")));
    let sari = customer(&app).await;
    let (status, body) = act(&app, &sari.token, &confirmed, "cancel").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("payment_session_not_found")));
}

/// Moves a payment's expiry into the past (the clock cannot be advanced 20 minutes).
async fn overdue(pool: &PgPool, payment: &Value) {
    sqlx::query(
        "UPDATE payment_sessions SET created_at = now() - interval '30 minutes', expires_at = now() - interval '1 second'
         WHERE id = $1::uuid",
    )
    .bind(payment["id"].as_str())
    .execute(pool)
    .await
    .expect("overdue");
}

#[tokio::test]
async fn expiry_is_checked_inline_at_every_transition() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let rani = customer(&app).await;
    let (_, pending) = create(&app, &rani.token, json!({"tier_id": "15m"})).await;
    overdue(pool, &pending).await;
    let (status, body) = act(&app, &rani.token, &pending, "confirm").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_session_expired")));
    assert!(charges(pool, &pending).await.is_empty(), "an expired payment is never charged");

    let confirmed = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    overdue(pool, &confirmed).await;
    let (status, body) = start_blast(&app, &rani.token, &confirmed).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_session_expired")));
    let (status, got) = app
        .call(
            Method::GET,
            &app.public_url(&format!(
                "/api/client/payment-sessions/{}",
                confirmed["id"].as_str().unwrap_or_default()
            )),
            Some(&rani.token),
            None,
        )
        .await;
    assert_eq!((status, got["status"].as_str()), (200, Some("failed_pairing")));
    let causes: Vec<String> =
        sqlx::query_scalar("SELECT cause_tag FROM pairing_failures WHERE payment_session_id = $1::uuid")
            .bind(confirmed["id"].as_str())
            .fetch_all(pool)
            .await
            .expect("ledger");
    assert_eq!(causes, vec!["payment_session_expired".to_owned()]);
}

#[tokio::test]
async fn an_extension_is_never_a_free_trial() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    set_config(pool, "free_trial_enabled", json!(false)).await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    assert_eq!(payment["is_free_trial"], false);
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    next_event(&mut ayu.socket, "chat_request").await;
    let (_, accepted) = accept(&app, &ayu.token, request["id"].as_str().expect("id")).await;
    let session = accepted["chat_session"]["id"].clone();

    // With the trial on again and no trial ever used, an extension is still paid.
    set_config(pool, "free_trial_enabled", json!(true)).await;
    let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": session});
    let (status, extension) = create(&app, &rani.token, order).await;
    assert_eq!(status, 201, "{extension}");
    assert_eq!(
        (extension["is_free_trial"].as_bool(), extension["amount"].as_i64(), extension["purpose"].as_str()),
        (Some(false), Some(15_000), Some("extension"))
    );
    // It is charged when the mitra approves, not confirmed; and it cannot start a search.
    let (status, body) = act(&app, &rani.token, &extension, "confirm").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("extension_charged_on_approval")));
    let (status, body) = start_blast(&app, &rani.token, &extension).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_not_for_chat")));
    // Someone else's session cannot be extended.
    let sari = customer(&app).await;
    let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": session});
    let (status, body) = create(&app, &sari.token, order).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("chat_session_not_extendable")));
}
