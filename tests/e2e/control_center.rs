//! The control center's configuration and failed-pairings ledger, with data from the real
//! flows.

use domain::ids::MitraId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::pairing::{customer, new_online_mitra, next_event, paid, start_blast};

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    app.call(Method::GET, &app.internal_url(path), Some(token), None).await
}

#[tokio::test]
async fn operators_read_and_change_the_configuration_with_an_audit_trail() {
    let app = TestApp::spawn().await;
    let other = app.spawn_sibling().await;
    let operator = app.sign_in_operator().await;
    let (status, listed) = get(&app, &operator, "/internal/config").await;
    assert_eq!(status, 200);
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), domain::app_config::KEYS.len());
    let timeout = keys.iter().find(|k| k["key"] == "pairing_blast_timeout_seconds").expect("key");
    assert_eq!(
        (timeout["type"].as_str(), timeout["default"].as_i64(), timeout["value"].as_i64()),
        (Some("integer"), Some(60), Some(60))
    );
    assert!(timeout["label"].as_str().is_some_and(|l| !l.is_empty()) && timeout["explanation"].is_string());

    let url = app.internal_url("/internal/config/pairing_blast_timeout_seconds");
    for (value, code) in [(json!(5), "invalid_config_value"), (json!("90"), "invalid_config_value")] {
        let (status, body) =
            app.call(Method::PUT, &url, Some(&operator), Some(json!({"value": value}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)));
    }
    let (status, body) = app
        .call(
            Method::PUT,
            &app.internal_url("/internal/config/no_such_key"),
            Some(&operator),
            Some(json!({"value": 1})),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_config_key")));
    let (status, body) = app.call(Method::PATCH, &url, Some(&operator), Some(json!({"value": 90}))).await;
    assert_eq!((status, body["value"].as_i64()), (200, Some(90)), "{body}");
    let tiers = json!([{"id": "20m", "duration_minutes": 20, "price": 20000}]);
    let tiers_url = app.internal_url("/internal/config/price_tiers");
    let (status, _) = app.call(Method::PUT, &tiers_url, Some(&operator), Some(json!({"value": tiers}))).await;
    assert_eq!(status, 200);
    // Another process sees it at once (the configuration is read where it is used).
    let (_, public) = other.call(Method::GET, &other.public_url("/api/shared/config"), None, None).await;
    assert_eq!(public["price_tiers"], tiers);

    let (status, trail) =
        get(&app, &operator, "/internal/config/changes?key=pairing_blast_timeout_seconds").await;
    assert_eq!(status, 200);
    let change = &trail["changes"][0];
    assert_eq!((change["old_value"].as_i64(), change["new_value"].as_i64()), (Some(60), Some(90)));
    assert!(change["changed_by"]["email"].is_string() && change["changed_at"].is_string());

    let customer = app.token_for(uuid::Uuid::new_v4(), domain::auth::Role::Customer);
    let (status, body) = app.call(Method::PUT, &url, Some(&customer), Some(json!({"value": 30}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
}

#[tokio::test]
async fn lowering_the_cap_takes_a_busy_mitra_out_of_availability_at_once() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let crate::chat::Paired { mitra, .. } = crate::chat::paired(&app).await;
    assert!(app.store.mitra_presence(MitraId(mitra.id), 3).await.expect("presence").available);
    let url = app.internal_url("/internal/config/max_customers_per_mitra");
    let (status, _) = app.call(Method::PUT, &url, Some(&operator), Some(json!({"value": 1}))).await;
    assert_eq!(status, 200);
    assert_eq!(app.store.available_mitra_count().await.expect("count"), 0, "one session is the cap now");
}

#[tokio::test]
async fn failed_pairings_are_listed_with_their_payment_state_and_settled_once() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;

    // A search the customer cancelled.
    let rani = customer(&app).await;
    let cancelled = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    start_blast(&app, &rani.token, &cancelled).await;
    next_event(&mut ayu.socket, "chat_request").await;
    app.post(
        &app.public_url("/api/client/chat-requests/cancel"),
        Some(&rani.token),
        json!({"payment_session_id": cancelled["id"]}),
    )
    .await;
    // A returning chat to an offline bestie, then served by a fallback blast.
    let crate::chat::Paired { customer: mut sari, mitra: budi, .. } = crate::chat::paired(&app).await;
    let again = paid(&app, &sari.token, json!({"tier_id": "15m", "targeted_mitra_id": budi.id})).await;
    app.post(&app.public_url("/api/mitra/status"), Some(&budi.token), json!({"online": false})).await;
    let returning = json!({"payment_session_id": again["id"], "mitra_id": budi.id});
    let (status, _) =
        app.post(&app.public_url("/api/client/chat-requests/returning"), Some(&sari.token), returning).await;
    assert_eq!(status, 409);
    let fallback = app.public_url(&format!(
        "/api/client/chat-requests/{}/fallback-to-blast",
        again["id"].as_str().expect("id")
    ));
    let (_, request) = app.post(&fallback, Some(&sari.token), json!({})).await;
    next_event(&mut ayu.socket, "chat_request").await;
    crate::pairing::accept(&app, &ayu.token, request["id"].as_str().expect("id")).await;
    next_event(&mut sari.socket, "paired").await;

    let (status, all) = get(&app, &operator, "/internal/failed-pairings").await;
    assert_eq!((status, all["total"].as_i64()), (200, Some(2)), "{all}");
    let (_, offline) =
        get(&app, &operator, "/internal/failed-pairings?cause_tags[]=targeted_mitra_offline").await;
    let served = &offline["rows"][0];
    assert_eq!(
        (offline["total"].as_i64(), served["payment_status"].as_str(), served["served_after_all"].as_bool()),
        (Some(1), Some("consumed"), Some(true))
    );
    assert_eq!(served["targeted_mitra"]["id"], json!(budi.id));
    assert_eq!(served["customer"]["call_name"], "Rani");
    let (_, both) = get(&app, &operator, "/internal/failed-pairings?cause_tags[]=targeted_mitra_offline&cause_tags[]=customer_cancelled&limit=1&offset=1").await;
    assert_eq!((both["total"].as_i64(), both["rows"].as_array().map(Vec::len)), (Some(2), Some(1)));
    let (_, past_end) = get(&app, &operator, "/internal/failed-pairings?offset=5").await;
    assert_eq!((past_end["total"].as_i64(), past_end["rows"].as_array().map(Vec::len)), (Some(2), Some(0)));
    let (_, future) = get(&app, &operator, "/internal/failed-pairings?date_from=2099-01-01").await;
    assert_eq!(future["total"], 0);
    let (status, inverted) =
        get(&app, &operator, "/internal/failed-pairings?date_from=2099-01-01&date_to=2000-01-01").await;
    assert_eq!(
        (status, inverted["total"].as_i64()),
        (200, Some(0)),
        "a range that ends before it starts is empty"
    );
    for (query, code) in [
        ("?cause_tags[]=bored", "unknown_cause_tag"),
        ("?limit=0", "invalid_page"),
        ("?limit=x", "invalid_query"),
        ("?date_from=yesterday", "invalid_query"),
        ("?sort=amount", "invalid_query"),
    ] {
        let (status, body) = get(&app, &operator, &format!("/internal/failed-pairings{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }

    let action = |id: &Value| {
        app.internal_url(&format!("/internal/failed-pairings/{}/action", id.as_str().expect("id")))
    };
    let (status, body) =
        app.post(&action(&served["id"]), Some(&operator), json!({"action": "refunded"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("payment_served")));
    let (status, body) =
        app.post(&action(&served["id"]), Some(&operator), json!({"action": "no_action"})).await;
    assert_eq!((status, body["operator_action"].as_str()), (200, Some("no_action")));
    let (_, cancelled_rows) =
        get(&app, &operator, "/internal/failed-pairings?cause_tags[]=customer_cancelled").await;
    let row = &cancelled_rows["rows"][0];
    let (status, body) = app.post(&action(&row["id"]), Some(&operator), json!({"action": "refund"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_action")));
    let (status, body) = app.post(&action(&row["id"]), Some(&operator), json!({"action": "refunded"})).await;
    assert_eq!((status, body["operator_action"].as_str()), (200, Some("refunded")));
    assert!(body["actioned_by"].is_string() && body["actioned_at"].is_string());
    let (status, body) = app.post(&action(&row["id"]), Some(&operator), json!({"action": "credited"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["operator_action"].as_str()),
        (409, Some("already_actioned"), Some("refunded"))
    );
}

#[tokio::test]
async fn the_activity_report_counts_each_mitras_answers() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let mut ayu = new_online_mitra(&app, &operator).await;
    let mut budi = new_online_mitra(&app, &operator).await;
    // Ayu takes the first request (Budi misses it); both decline the second.
    for round in 0..2 {
        let rani = customer(&app).await;
        let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
        let (_, request) = start_blast(&app, &rani.token, &payment).await;
        let id = request["id"].as_str().expect("id");
        next_event(&mut ayu.socket, "chat_request").await;
        next_event(&mut budi.socket, "chat_request").await;
        if round == 0 {
            crate::pairing::accept(&app, &ayu.token, id).await;
        } else {
            for token in [&ayu.token, &budi.token] {
                let url = app.public_url(&format!("/api/mitra/chat-requests/{id}/decline"));
                assert_eq!(app.post(&url, Some(token), json!({})).await.0, 200);
            }
        }
    }
    let (status, report) =
        get(&app, &operator, "/internal/mitra-activity?sort=acceptance_rate&order=desc").await;
    assert_eq!(status, 200, "{report}");
    let rows = report["rows"].as_array().expect("rows");
    let counts = |row: &Value| {
        ["notified", "accepted", "rejected", "ignored", "missed"].map(|k| row[k].as_i64().unwrap_or(-1))
    };
    assert_eq!(rows[0]["mitra"]["id"], json!(ayu.id));
    assert_eq!((counts(&rows[0]), rows[0]["acceptance_rate"].as_f64()), ([2, 1, 1, 0, 0], Some(0.5)));
    assert_eq!((counts(&rows[1]), rows[1]["acceptance_rate"].as_f64()), ([2, 0, 1, 0, 1], Some(0.0)));
    assert!(rows[0]["avg_response_seconds"].as_f64().is_some_and(|s| (0.0..60.0).contains(&s)));
    let (_, only) = get(&app, &operator, &format!("/internal/mitra-activity?mitra_id={}", budi.id)).await;
    assert_eq!(only["rows"].as_array().map(Vec::len), Some(1));
    let (_, none) = get(&app, &operator, "/internal/mitra-activity?date_to=2020-01-01").await;
    assert_eq!(none["rows"], json!([]));
    for (query, code) in
        [("?sort=phone", "invalid_sort"), ("?order=up", "invalid_sort"), ("?date_from=x", "invalid_query")]
    {
        let (status, body) = get(&app, &operator, &format!("/internal/mitra-activity{query}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }
}

#[tokio::test]
async fn the_control_centers_origin_may_use_every_method_its_pages_need() {
    let app = TestApp::spawn_with(|s| s.api.cc_origins = vec!["https://cc.bestie.test".into()]).await;
    let preflight = |origin: &'static str, method: &'static str| {
        app.http
            .request(Method::OPTIONS, app.internal_url("/internal/config/price_tiers"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let response = preflight("https://cc.bestie.test", method).await.expect("preflight");
        let headers = response.headers();
        assert_eq!(
            headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
            Some("https://cc.bestie.test")
        );
        let methods =
            headers.get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(methods.contains(method), "{method} not in {methods}");
    }
    let foreign = preflight("https://evil.test", "PATCH").await.expect("preflight");
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
}

/// A NUL in a search or filter reached Postgres, whose text cannot hold it, and answered 500
/// `internal_error` (found by tests/e2e/hostile/).
#[tokio::test]
async fn a_query_parameter_with_nul_is_invalid_query() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    for path in ["/internal/mitras?q=%00", "/internal/mitras?q=a%00b", "/internal/config/changes?key=a%00b"] {
        let (status, body) = get(&app, &operator, path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{path}: {body}");
    }
}

#[tokio::test]
async fn operators_list_mitras_reset_passwords_and_watch_live_sessions_and_early_ends() {
    let app = TestApp::spawn().await;
    let operator = app.sign_in_operator().await;
    let crate::chat::Paired { mitra, session, .. } = crate::chat::paired(&app).await;

    let (status, list) = get(&app, &operator, "/internal/mitras?q=ayu&limit=1").await;
    assert_eq!(
        (status, list["total"].as_i64(), list["rows"][0]["id"].clone()),
        (200, Some(1), json!(mitra.id))
    );
    let (_, none) = get(&app, &operator, "/internal/mitras?q=%25").await;
    assert_eq!(none["total"], 0, "a % in the search is a character, not a wildcard");
    let (status, body) = get(&app, &operator, "/internal/mitras?limit=0").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_page")));

    let (status, live) = get(&app, &operator, "/internal/sessions/live").await;
    assert_eq!(status, 200);
    let row = &live["rows"][0];
    assert_eq!((row["id"].as_str(), row["status"].as_str()), (Some(session.as_str()), Some("active")));
    assert!(row["seconds_left"].as_i64().is_some_and(|s| s > 14 * 60 && s <= 15 * 60), "{row}");

    let pool = app.store.pg_pool();
    crate::pairing::set_config(pool, "early_end_mitra_enabled", json!(true)).await;
    crate::pairing::set_config(pool, "early_end_mitra_daily_cap", json!(0)).await;
    let end = app.public_url(&format!("/api/mitra/chat-requests/sessions/{session}/end"));
    app.post(&end, Some(&mitra.token), json!({"reason_code": "unsafe_chat", "reason_text": "ancaman"})).await;
    let (_, ends) = get(&app, &operator, "/internal/early-ends").await;
    assert_eq!(
        (ends["rows"][0]["reason_code"].as_str(), ends["rows"][0]["mitra"]["id"].clone()),
        (Some("unsafe_chat"), json!(mitra.id))
    );
    let (_, flags) = get(&app, &operator, "/internal/review-flags").await;
    assert_eq!(
        (flags["rows"][0]["mitra"]["id"].clone(), flags["rows"][0]["count"].as_i64()),
        (json!(mitra.id), Some(1))
    );

    // An operator resolves the flag, once; the open list no longer shows it, the full one does.
    let flag = flags["rows"][0]["id"].as_str().expect("flag id").to_owned();
    assert_eq!(flags["rows"][0]["reviewed_at"], Value::Null);
    let resolve = app.internal_url(&format!("/internal/review-flags/{flag}/resolve"));
    let (status, resolved) = app.post(&resolve, Some(&operator), json!({})).await;
    assert_eq!(status, 200, "{resolved}");
    assert!(resolved["reviewed_by"].is_string() && resolved["reviewed_at"].is_string(), "{resolved}");
    let (status, again) = app.post(&resolve, Some(&operator), json!({})).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("review_flag_already_resolved")));
    let unknown = app.internal_url(&format!("/internal/review-flags/{}/resolve", uuid::Uuid::new_v4()));
    let (status, missing) = app.post(&unknown, Some(&operator), json!({})).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("review_flag_not_found")));
    let (_, open) = get(&app, &operator, "/internal/review-flags").await;
    assert_eq!(open["rows"].as_array().map(Vec::len), Some(0), "{open}");
    let (_, all) = get(&app, &operator, "/internal/review-flags?include_resolved=true").await;
    assert_eq!(all["rows"][0]["id"].as_str(), Some(flag.as_str()));
    let (_, audit) = get(&app, &operator, "/internal/audit?action=review_flag.resolve").await;
    assert_eq!(
        (audit["total"].as_i64(), audit["rows"][0]["target_id"].as_str()),
        (Some(1), Some(flag.as_str()))
    );

    // A reset password: the old one stops working, the new one works.
    let email = list["rows"][0]["email"].as_str().expect("email").to_owned();
    let reset = app.internal_url(&format!("/internal/mitras/{}/reset-password", mitra.id));
    let (status, _) = app.post(&reset, Some(&operator), json!({"password": "short"})).await;
    assert_eq!(status, 400);
    let (status, _) = app.post(&reset, Some(&operator), json!({"password": "a-new-secret-1"})).await;
    assert_eq!(status, 204);
    let login = app.public_url("/api/auth/mitra/login");
    let (status, _) = app.post(&login, None, json!({"email": email, "password": "listen-well-1"})).await;
    assert_eq!(status, 401);
    let (status, _) = app.post(&login, None, json!({"email": email, "password": "a-new-secret-1"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_console_is_served_from_the_internal_listener_with_its_policy_and_nothing_else() {
    let app = TestApp::spawn().await;
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let index = no_redirects.get(app.internal_url("/console/")).send().await.expect("index");
    assert_eq!(index.status().as_u16(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    assert!(header(&index, "content-type").starts_with("text/html"));
    let policy = header(&index, "content-security-policy");
    for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert_eq!(header(&index, "x-content-type-options"), "nosniff");
    let etag = header(&index, "etag");
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    assert!(index.text().await.expect("html").contains("app.js"));
    let again = no_redirects
        .get(app.internal_url("/console/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("again");
    assert_eq!(again.status().as_u16(), 304, "unchanged: not sent again");
    let script = no_redirects.get(app.internal_url("/console/app.js")).send().await.expect("app.js");
    assert_eq!(
        (script.status().as_u16(), header(&script, "content-type").starts_with("text/javascript")),
        (200, true)
    );

    // `/` and `/console` lead to it; nothing outside console/src is reachable through it.
    for path in ["/", "/console"] {
        let response = no_redirects.get(app.internal_url(path)).send().await.expect("redirect");
        assert!(response.status().is_redirection(), "{path}: {}", response.status());
        assert_eq!(header(&response, "location"), "/console/");
    }
    for path in [
        "/console/nope.js",
        "/console/..%2fCargo.toml",
        "/console/%2e%2e/%2e%2e/Cargo.toml",
        "/console/..%5c..%5cCargo.toml",
    ] {
        let response = no_redirects.get(app.internal_url(path)).send().await.expect("probe");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert!(status == 404 && !body.contains("[workspace]"), "{path}: {status} {body}");
    }
    // The apps' listener has no console.
    let public = no_redirects.get(app.public_url("/console/")).send().await.expect("public");
    assert_eq!(public.status().as_u16(), 404);
}
