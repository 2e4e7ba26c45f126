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

mod sessions;
mod sign_in;

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
