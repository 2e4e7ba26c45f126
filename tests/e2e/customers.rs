//! The control center's customers, payments ledger, activity log, overview and dates in the
//! marketplace's time zone, with data from the real flows.

use chrono::{TimeZone, Utc};
use domain::calendar::{Instants, Period, TimeBound};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestApp, WsClient, unique_phone, ws_url_with_token};
use crate::pairing::{customer, new_online_mitra, next_event, paid, start_blast};

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    app.call(Method::GET, &app.internal_url(path), Some(token), None).await
}

#[tokio::test]
async fn operators_find_a_customer_see_their_money_and_chats_and_block_them() {
    // The customer asks for new codes soon after the first.
    let app = TestApp::spawn_with(|s| s.auth.otp_resend_interval_s = 0).await;
    let operator = app.sign_in_operator().await;
    let crate::chat::Paired { customer: rani, mitra: mut ayu, .. } = crate::chat::paired(&app).await;
    let phone: String = sqlx::query_scalar("SELECT phone FROM customers WHERE id = $1")
        .bind(rani.id)
        .fetch_one(app.store.pg_pool())
        .await
        .expect("phone");
    let other = app.sign_in_customer(&unique_phone()).await;

    // Found by the full number, the national form, the id and the call name.
    let national = format!("0{}", &phone[3..]);
    for query in [phone.clone(), national, rani.id.to_string()] {
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let (status, found) = get(&app, &operator, &format!("/internal/customers?q={encoded}")).await;
        assert_eq!((status, found["total"].as_i64()), (200, Some(1)), "{query}: {found}");
        assert_eq!(
            (found["rows"][0]["id"].as_str(), found["rows"][0]["phone"].as_str()),
            (Some(&*rani.id.to_string()), Some(&*phone))
        );
    }
    let (_, by_name) = get(&app, &operator, "/internal/customers?q=ran&limit=200").await;
    let ids: Vec<&str> =
        by_name["rows"].as_array().expect("rows").iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(ids.contains(&&*rani.id.to_string()) && ids.contains(&&*other.0.to_string()), "{by_name}");
    let (_, nobody) = get(&app, &operator, "/internal/customers?q=%2B1999").await;
    assert_eq!(nobody["total"], 0);

    // The detail: the paid chat with its charge, and the chat with the bestie.
    let (status, detail) = get(&app, &operator, &format!("/internal/customers/{}", rani.id)).await;
    assert_eq!(status, 200, "{detail}");
    let payment = &detail["payments"][0];
    assert_eq!(
        (payment["status"].as_str(), payment["is_free_trial"].as_bool()),
        (Some("consumed"), Some(true))
    );
    assert_eq!(payment["charge"], Value::Null, "a free trial charges nothing");
    assert_eq!(detail["chats"][0]["mitra"]["id"], json!(ayu.id));
    assert_eq!(detail["chats"][0]["status"], "active");
    assert_eq!(payment["chat_session_id"], detail["chats"][0]["id"]);
    let (status, body) = get(&app, &operator, &format!("/internal/customers/{}", uuid::Uuid::new_v4())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("customer_not_found")));

    // Blocked: the socket closes with 4003, the token and a new sign-in are refused.
    let mut socket = rani.socket;
    let block = app.internal_url(&format!("/internal/customers/{}/block", rani.id));
    let (status, blocked) = app.post(&block, Some(&operator), json!({})).await;
    assert_eq!(status, 200, "{blocked}");
    assert!(blocked["blocked_at"].is_string());
    assert_eq!(socket.closed().await, (4003, "account_deactivated".to_owned()));
    let (status, body) = app
        .call(Method::GET, &app.public_url("/api/client/chat-sessions/active"), Some(&rani.token), None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("token_revoked")), "{body}");
    let (status, body) =
        app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("account_deactivated")),
        "no code is sent"
    );
    // Blocking again changes nothing and writes no second audit row.
    let (status, again) = app.post(&block, Some(&operator), json!({})).await;
    assert_eq!((status, &again["blocked_at"]), (200, &blocked["blocked_at"]));
    let (_, audit) = get(&app, &operator, "/internal/audit?action=customer.block").await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["rows"][0]["target_id"], json!(rani.id));

    // Another customer, blocked while searching: their refresh token is refused, and the
    // search they started finds no bestie (the accept is refused).
    let sari_phone = unique_phone();
    let (sari, sari_token, sari_refresh) = app.sign_in_customer(&sari_phone).await;
    let payment = paid(&app, &sari_token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &sari_token, &payment).await;
    assert_eq!(status, 201, "{request}");
    next_event(&mut ayu.socket, "chat_request").await;
    let (status, _) = app
        .post(&app.internal_url(&format!("/internal/customers/{sari}/block")), Some(&operator), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) =
        app.post(&app.public_url("/api/auth/refresh"), None, json!({"refresh_token": sari_refresh})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_refresh_token")), "{body}");
    let (status, body) = crate::pairing::accept(&app, &ayu.token, request["id"].as_str().expect("id")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("customer_blocked")), "{body}");
    let (_, detail) = get(&app, &operator, &format!("/internal/customers/{sari}")).await;
    assert_eq!(detail["chats"], json!([]), "no chat for a blocked customer");

    // Unblocked, they sign in again.
    let unblock = app.internal_url(&format!("/internal/customers/{}/unblock", rani.id));
    let (status, unblocked) = app.post(&unblock, Some(&operator), json!({})).await;
    assert_eq!((status, &unblocked["blocked_at"]), (200, &Value::Null));
    let (again_id, token, _) = app.sign_in_customer(&phone).await;
    assert_eq!(again_id, rani.id);
    let (status, _) =
        app.call(Method::GET, &app.public_url("/api/client/chat-sessions/active"), Some(&token), None).await;
    assert_eq!(status, 200);
    let ws = WsClient::connect_welcomed(&ws_url_with_token(app.public, &token)).await;
    drop(ws);
}

#[tokio::test]
async fn the_payments_ledger_lists_filters_and_exports_what_was_charged() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    crate::pairing::set_config(app.store.pg_pool(), "free_trial_enabled", json!(false)).await;
    // A customer whose call name a spreadsheet would run as a formula.
    let phone = unique_phone();
    let (_, sent) = app.post(&app.public_url("/api/auth/customer/otp"), None, json!({"phone": phone})).await;
    let verify = json!({"phone": phone, "code": sent["dev_code"], "call_name": "=HYPERLINK(\"x\")"});
    let (status, session) = app.post(&app.public_url("/api/auth/customer/verify"), None, verify).await;
    assert_eq!(status, 200, "{session}");
    let token = session["access_token"].as_str().expect("token").to_owned();
    let customer_id = session["user"]["id"].as_str().expect("id").to_owned();
    let confirmed = paid(&app, &token, json!({"tier_id": "15m"})).await;
    let (status, pending) = app
        .post(&app.public_url("/api/client/payment-sessions"), Some(&token), json!({"tier_id": "30m"}))
        .await;
    assert_eq!(status, 201, "{pending}");

    let (status, page) = get(&app, &operator, &format!("/internal/payments?customer_id={customer_id}")).await;
    assert_eq!((status, page["total"].as_i64()), (200, Some(2)), "{page}");
    assert_eq!(page["rows"][0]["id"], pending["id"], "newest first");
    assert_eq!(page["rows"][0]["charge"], Value::Null, "nothing charged before confirmation");
    let charged = &page["rows"][1];
    assert_eq!(
        (charged["status"].as_str(), charged["charge"]["status"].as_str()),
        (Some("confirmed"), Some("succeeded")),
        "{charged}"
    );
    assert_eq!(
        (charged["charge"]["provider"].as_str(), charged["failed_charges"].as_i64()),
        (Some("mock"), Some(0))
    );
    assert!(charged["charge"]["provider_ref"].is_string());
    let (_, confirmed_only) =
        get(&app, &operator, &format!("/internal/payments?customer_id={customer_id}&status=confirmed")).await;
    assert_eq!(
        (confirmed_only["total"].as_i64(), &confirmed_only["rows"][0]["id"]),
        (Some(1), &confirmed["id"])
    );
    let (_, future) =
        get(&app, &operator, &format!("/internal/payments?customer_id={customer_id}&date_from=2099-01-01"))
            .await;
    assert_eq!(future["total"], 0);
    for (query, code) in
        [("status=paid", "invalid_query"), ("limit=0", "invalid_page"), ("date_to=soon", "invalid_query")]
    {
        let (status, body) = get(&app, &operator, &format!("/internal/payments?{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }

    // The export: the same rows, oldest first, with the formula made inert.
    let response = app
        .http
        .get(app.internal_url(&format!("/internal/payments/export?customer_id={customer_id}")))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/csv")));
    let text = response.text().await.expect("csv");
    assert!(
        text.split_inclusive('\n').all(|line| line.ends_with("\r\n")),
        "RFC 4180 lines end in CRLF: {text:?}"
    );
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(header, domain::payment::CSV_HEADER.map(str::to_owned));
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("records");
    assert_eq!(rows.len(), 2, "{text}");
    let column = |row: &csv::StringRecord, name: &str| {
        row.get(header.iter().position(|h| h == name).expect(name)).expect(name).to_owned()
    };
    assert_eq!(column(&rows[0], "payment_id"), confirmed["id"].as_str().expect("id"));
    assert_eq!(column(&rows[0], "charge_status"), "succeeded");
    assert_eq!(column(&rows[0], "charged_amount"), confirmed["amount"].to_string());
    assert_eq!(column(&rows[0], "customer_call_name"), "'=HYPERLINK(\"x\")");
    assert_eq!(column(&rows[1], "charge_id"), "");
}

#[tokio::test]
async fn the_activity_log_has_a_row_per_offer_with_the_answer_and_its_speed() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut budi = new_online_mitra(&app, &operator).await;
    let rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!(status, 201, "{request}");
    let request_id = request["id"].as_str().expect("id");
    next_event(&mut ayu.socket, "chat_request").await;
    next_event(&mut budi.socket, "chat_request").await;

    let (_, overview) = get(&app, &operator, "/internal/overview").await;
    assert_eq!(
        (
            overview["mitras_online"].as_i64(),
            overview["mitras_available"].as_i64(),
            overview["searches"].as_i64()
        ),
        (Some(2), Some(2), Some(1)),
        "{overview}"
    );
    assert_eq!(overview["time_zone"], "Asia/Jakarta");

    let (status, _) = crate::pairing::decline(&app, &budi.token, request_id).await;
    assert_eq!(status, 200);
    let (status, _) = crate::pairing::accept(&app, &ayu.token, request_id).await;
    assert_eq!(status, 200);

    let (status, log) = get(&app, &operator, "/internal/mitra-activity/log").await;
    assert_eq!((status, log["total"].as_i64()), (200, Some(2)), "{log}");
    let row_of = |mitra: uuid::Uuid| {
        log["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["mitra"]["id"] == json!(mitra))
            .cloned()
            .expect("row")
    };
    let (accepted, rejected) = (row_of(ayu.id), row_of(budi.id));
    assert_eq!(
        (accepted["response"].as_str(), rejected["response"].as_str()),
        (Some("accepted"), Some("rejected"))
    );
    assert_eq!(
        (accepted["pairing_request_id"].as_str(), accepted["request_type"].as_str()),
        (Some(request_id), Some("general"))
    );
    assert!(rejected["response_seconds"].as_f64().is_some_and(|s| s >= 0.0), "{rejected}");
    assert_eq!(rejected["active_session_count"], 0);
    let (_, only) =
        get(&app, &operator, &format!("/internal/mitra-activity/log?response=rejected&mitra_id={}", budi.id))
            .await;
    assert_eq!((only["total"].as_i64(), &only["rows"][0]["id"]), (Some(1), &rejected["id"]));
    let (_, before) = get(&app, &operator, "/internal/mitra-activity/log?date_to=2000-01-01").await;
    assert_eq!(before["total"], 0);
    let (status, body) = get(&app, &operator, "/internal/mitra-activity/log?response=late").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_response")));

    let (_, overview) = get(&app, &operator, "/internal/overview").await;
    assert_eq!(
        (overview["searches"].as_i64(), overview["active_sessions"].as_i64()),
        (Some(0), Some(1)),
        "{overview}"
    );
}

#[tokio::test]
async fn a_date_is_a_day_in_the_marketplaces_time_zone() {
    let jakarta = TestApp::spawn().await;
    let utc = TestApp::spawn_with(|s| s.database.time_zone = "UTC".into()).await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).map(TimeBound::Day);
    let at = Utc.with_ymd_and_hms(2026, 12, 5, 3, 0, 0).single();
    let period = Period { from: day, to: at.map(TimeBound::At) };
    let instants = |from: (u32, u32)| Instants {
        from: Utc.with_ymd_and_hms(2026, 12, from.0, from.1, 0, 0).single(),
        to: at,
    };
    assert_eq!(jakarta.store.instants(period).await.expect("instants"), instants((4, 17)));
    assert_eq!(utc.store.instants(period).await.expect("instants"), instants((5, 0)));

    // A review flag's day and the early-end count are the marketplace's days too.
    let (day,): (chrono::NaiveDate,) = sqlx::query_as("SELECT '2026-12-04T18:00:00Z'::timestamptz::date")
        .fetch_one(jakarta.store.pg_pool())
        .await
        .expect("date");
    assert_eq!(day, chrono::NaiveDate::from_ymd_opt(2026, 12, 5).expect("date"), "01:00 in Jakarta");

    let mut settings = crate::harness::isolated_settings();
    settings.database.time_zone = "UTC+7".into();
    let refused = domain::store::Store::connect(&settings.database, &settings.redis).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("database.time_zone \"UTC+7\""), "{message}");
    crate::harness::drop_isolated(&settings);
}
