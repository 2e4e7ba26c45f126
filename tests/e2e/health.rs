//! `/healthz`, `/readyz`, `/metrics`, the JSON error body and request ids.

use serde_json::Value;

use crate::harness::TestApp;

#[tokio::test]
async fn healthz_and_readyz_answer_on_both_listeners() {
    let app = TestApp::spawn().await;
    for base in [app.public_url(""), app.internal_url("")] {
        let health = app.http.get(format!("{base}/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), 200);
        let ready = app.http.get(format!("{base}/readyz")).send().await.expect("readyz");
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.expect("json");
        assert_eq!(body["checks"]["postgres"], "ok");
        assert_eq!(body["checks"]["redis"], "ok");
    }
}

#[tokio::test]
async fn readyz_says_not_ready_when_postgres_is_gone() {
    let app = TestApp::spawn().await;
    domain::store::database::drop(app.settings.database.url.expose()).await.expect("drop database");

    let response = app.http.get(app.internal_url("/readyz")).send().await.expect("readyz");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(body["error"]["retryable"], true);
    assert_eq!(body["error"]["checks"]["postgres"], "down");
    assert_eq!(body["error"]["checks"]["redis"], "ok");
    // The process itself is alive.
    let health = app.http.get(app.internal_url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn metrics_are_served_on_the_internal_listener_only() {
    let app = TestApp::spawn().await;
    app.http.get(app.public_url("/healthz")).send().await.expect("healthz");

    let public = app.http.get(app.public_url("/metrics")).send().await.expect("public metrics");
    assert_eq!(public.status(), 404);

    let internal = app.http.get(app.internal_url("/metrics")).send().await.expect("metrics");
    assert_eq!(internal.status(), 200);
    let text = internal.text().await.expect("text");
    assert!(
        text.contains(
            r#"bestie_http_requests_total{listener="public",method="GET",route="/healthz",status="2xx"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("bestie_build_info"));
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_json_error_body() {
    let app = TestApp::spawn().await;
    let missing = app.http.get(app.public_url("/api/nope")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "route_not_found");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));

    let wrong_method = app.http.post(app.internal_url("/healthz")).send().await.expect("request");
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.expect("json");
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_client_id_is_kept() {
    let app = TestApp::spawn().await;
    let generated = app.http.get(app.public_url("/healthz")).send().await.expect("request");
    let id = generated.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let given = app
        .http
        .get(app.public_url("/api/nope"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("request");
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42");
}
