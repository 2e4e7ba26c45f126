//! Sessions over their life: password sign-in, deactivation, refresh rotation and reuse,
//! logout across processes, the socket's token checks, rate limits, and device tokens.

use super::*;

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
