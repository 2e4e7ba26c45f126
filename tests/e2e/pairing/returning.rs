//! The returning chat: a blast to one bestie, its failure when they are offline, declined or
//! silent, and the fallback to a general blast on the same payment.

use super::*;

/// A customer who already chatted with `mitra` (a blast the mitra accepted), with a new
/// paid payment targeting them.
async fn returning_customer(app: &TestApp, mitra: &mut OnlineMitra) -> (Customer, Value) {
    let mut rani = customer(app).await;
    let first = paid(app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(app, &rani.token, &first).await;
    next_event(&mut mitra.socket, "chat_request").await;
    let (status, _) = accept(app, &mitra.token, &id_of(&request)).await;
    assert_eq!(status, 200);
    next_event(&mut rani.socket, "paired").await;
    let again = paid(app, &rani.token, json!({"tier_id": "30m", "targeted_mitra_id": mitra.id})).await;
    assert_eq!((again["is_free_trial"].as_bool(), again["amount"].as_i64()), (Some(false), Some(25_000)));
    (rani, again)
}

async fn start_returning(app: &TestApp, token: &str, payment: &Value, mitra: Uuid) -> (u16, Value) {
    app.post(
        &app.public_url("/api/client/chat-requests/returning"),
        Some(token),
        json!({"payment_session_id": payment["id"], "mitra_id": mitra}),
    )
    .await
}

#[tokio::test]
async fn a_returning_chat_goes_to_its_bestie_only_and_starts_on_accept() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let (mut rani, payment) = returning_customer(&app, &mut ayu).await;
    let mut budi = new_online_mitra(&app, &operator).await;

    // Another customer cannot target a bestie they never talked to.
    let sari = customer(&app).await;
    let (status, body) = app
        .post(
            &app.public_url("/api/client/payment-sessions"),
            Some(&sari.token),
            json!({"tier_id": "15m", "targeted_mitra_id": ayu.id}),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_targeted_mitra")));
    let (status, body) = start_returning(&app, &rani.token, &payment, budi.id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("targeted_mitra_mismatch")));

    let (status, request) = start_returning(&app, &rani.token, &payment, ayu.id).await;
    assert_eq!(status, 201, "{request}");
    let offer = next_event(&mut ayu.socket, "chat_request").await;
    assert_eq!(
        (offer["request_type"].as_str(), offer["duration_minutes"].as_i64()),
        (Some("returning"), Some(30))
    );
    assert!(offer["countdown_s"].as_i64().is_some_and(|s| s > 0 && s <= 20), "{offer}");
    let (status, _) = accept(&app, &budi.token, &id_of(&request)).await;
    assert_eq!(status, 404, "only the targeted mitra is offered a returning chat");

    let (status, _) = accept(&app, &ayu.token, &id_of(&request)).await;
    assert_eq!(status, 200);
    let paired = next_event(&mut rani.socket, "paired").await;
    assert_eq!(paired["request_type"], "returning");
    assert_eq!(payment_status(pool, &payment).await, "consumed");
    // Nothing reached Budi.
    budi.socket.send_json(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(budi.socket.next_json().await["type"], "pong");
}

#[tokio::test]
async fn a_returning_chat_to_an_offline_bestie_fails_at_once_and_falls_back_on_the_same_payment() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let (mut rani, payment) = returning_customer(&app, &mut ayu).await;
    // Ayu switches off.
    app.post(&app.public_url("/api/mitra/status"), Some(&ayu.token), json!({"online": false})).await;

    let (status, body) = start_returning(&app, &rani.token, &payment, ayu.id).await;
    assert_eq!(status, 409, "{body}");
    // The reason is in `error` and, where the old backend's apps read it, at the top.
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["reason"].as_str(), body["reason"].as_str()),
        (Some("targeted_mitra_offline"), Some("targeted_mitra_offline"), Some("targeted_mitra_offline"))
    );
    assert_eq!(
        ledger(pool, &payment).await,
        vec![("targeted_mitra_offline".into(), "failed_pairing".into())]
    );

    // "Chat dengan bestie lain": the same payment runs a blast; Budi takes it.
    let mut budi = new_online_mitra(&app, &operator).await;
    let url = app.public_url(&format!(
        "/api/client/chat-requests/{}/fallback-to-blast",
        payment["id"].as_str().expect("id")
    ));
    let (status, request) = app.post(&url, Some(&rani.token), json!({})).await;
    assert_eq!(status, 201, "{request}");
    assert_eq!(request["request_type"], "general");
    next_event(&mut budi.socket, "chat_request").await;
    let (status, _) = accept(&app, &budi.token, &id_of(&request)).await;
    assert_eq!(status, 200);
    next_event(&mut rani.socket, "paired").await;

    // The ledger row now shows the payment was served: no refund is due. One charge only.
    assert_eq!(ledger(pool, &payment).await, vec![("targeted_mitra_offline".into(), "consumed".into())]);
    let charges: i64 = sqlx::query_scalar("SELECT count(*) FROM charges WHERE payment_session_id = $1::uuid")
        .bind(payment["id"].as_str())
        .fetch_one(pool)
        .await
        .expect("charges");
    assert_eq!(charges, 1);
    // A served payment cannot fall back again.
    let (status, body) = app.post(&url, Some(&rani.token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_paired")));
}

#[tokio::test]
async fn a_returning_chat_declined_or_unanswered_tells_the_customer() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    set_config(pool, "returning_chat_confirmation_timeout_seconds", json!(5)).await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let (mut rani, payment) = returning_customer(&app, &mut ayu).await;

    let (_, request) = start_returning(&app, &rani.token, &payment, ayu.id).await;
    next_event(&mut ayu.socket, "chat_request").await;
    let (status, _) = decline(&app, &ayu.token, &id_of(&request)).await;
    assert_eq!(status, 200);
    let rejected = next_event(&mut rani.socket, "returning_chat_rejected").await;
    assert_eq!(
        (rejected["cause_tag"].as_str(), rejected["fallback_offered"].as_bool()),
        (Some("targeted_mitra_rejected"), Some(true))
    );
    assert_eq!(
        ledger(pool, &payment).await,
        vec![("targeted_mitra_rejected".into(), "failed_pairing".into())]
    );
    // Rani does not want another bestie: her cancel records the failure as hers and closes
    // the fallback; a second cancel changes nothing.
    let cancel = app.public_url("/api/client/chat-requests/cancel");
    for _ in 0..2 {
        let (status, cancelled) =
            app.post(&cancel, Some(&rani.token), json!({"payment_session_id": payment["id"]})).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(
            (cancelled["payment_session"]["status"].as_str(), &cancelled["chat_request"]),
            (Some("failed_pairing"), &Value::Null)
        );
        assert_eq!(
            ledger(pool, &payment).await,
            vec![
                ("targeted_mitra_rejected".into(), "failed_pairing".into()),
                ("customer_cancelled".into(), "failed_pairing".into())
            ]
        );
    }
    let fallback = app.public_url(&format!(
        "/api/client/chat-requests/{}/fallback-to-blast",
        payment["id"].as_str().expect("id")
    ));
    let (status, body) = app.post(&fallback, Some(&rani.token), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("fallback_not_available")));

    // A second payment for Ayu, left unanswered: the window (5 s) ends it.
    let second = paid(&app, &rani.token, json!({"tier_id": "15m", "targeted_mitra_id": ayu.id})).await;
    let (status, request) = start_returning(&app, &rani.token, &second, ayu.id).await;
    assert_eq!(status, 201, "{request}");
    next_event(&mut ayu.socket, "chat_request").await;
    let timeout = next_event(&mut rani.socket, "returning_chat_timeout").await;
    assert_eq!(timeout["cause_tag"], "targeted_mitra_timeout");
    assert_eq!(
        next_event(&mut ayu.socket, "chat_request_expired").await["request_id"],
        id_of(&request).as_str()
    );
    assert_eq!(ledger(pool, &second).await, vec![("targeted_mitra_timeout".into(), "failed_pairing".into())]);
    let rows = activity(pool, &id_of(&request)).await;
    assert_eq!(rows.iter().map(|r| r.1.as_deref()).collect::<Vec<_>>(), vec![Some("ignored")]);
    assert!(app.metrics().await.contains(
        r#"bestie_pairing_outcomes_total{outcome="targeted_mitra_timeout",request_type="returning"} 1"#
    ));
}
