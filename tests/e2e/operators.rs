//! Control-center accounts and their roles: what an `operator` may do and an `admin` only,
//! the account lifecycle, one's own password and the audit log (docs/CONSOLE.md, "Roles").

use domain::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::openapi::{concrete, operations};

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    app.call(Method::GET, &app.internal_url(path), Some(token), None).await
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    app.post(&app.internal_url("/internal/auth/login"), None, json!({"email": email, "password": password}))
        .await
}

/// An admin creates a control-center account of `role`; returns its id and email.
async fn new_account(app: &TestApp, admin: &str, role: &str) -> (String, String) {
    let email = format!("op{}@bestie.test", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let body = json!({"email": email, "password": "operator-secret-1", "display_name": "Sari", "role": role});
    let (status, created) = app.post(&app.internal_url("/internal/operators"), Some(admin), body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["role"].as_str(), created["active"].as_bool()), (Some(role), Some(true)));
    (created["id"].as_str().expect("id").to_owned(), email)
}

async fn token_of(app: &TestApp, email: &str, password: &str) -> String {
    let (status, session) = sign_in(app, email, password).await;
    assert_eq!(status, 200, "{session}");
    session["access_token"].as_str().expect("access token").to_owned()
}

/// Every operation of the internal document, called with no token, an app user's, an
/// operator's and an admin's: the roles its `security` names get through (whatever the
/// handler then answers), the others get 401 or 403 with the documented code.
#[tokio::test]
async fn every_internal_route_takes_exactly_the_roles_its_document_names() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in_operator().await;
    let (_, email) = new_account(&app, &admin, "operator").await;
    let operator = token_of(&app, &email, "operator-secret-1").await;
    let customer = app.token_for(uuid::Uuid::new_v4(), Role::Customer);
    let mitra = app.token_for(uuid::Uuid::new_v4(), Role::Mitra);
    let url = format!("http://{}/internal/openapi.json", app.internal);
    let document: Value = app.http.get(url).send().await.expect("document").json().await.expect("JSON");

    let (mut wrong, mut admin_only, mut either) = (Vec::new(), 0, 0);
    for (method, path, operation) in operations(&document) {
        let Some(scopes) = operation["security"][0]["bearer"].as_array() else { continue };
        let scopes: Vec<&str> = scopes.iter().filter_map(Value::as_str).collect();
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let url = app.internal_url(&concrete(path, Some(operation)));
        let body = [Method::POST, Method::PUT, Method::PATCH].contains(&method).then(|| json!({}));
        let expect = |who: &'static str, token: Option<String>, refused: Option<(u16, &'static str)>| {
            probe(&app, method.clone(), url.clone(), body.clone(), who, token, refused)
        };
        let mut found = vec![
            expect("nobody", None, Some((401, "missing_token"))).await,
            expect("a customer", Some(customer.clone()), Some((403, "wrong_role"))).await,
            expect("a mitra", Some(mitra.clone()), Some((403, "wrong_role"))).await,
        ];
        // Logging out would end the token the rest of the probes use; tests/e2e/auth/sessions.rs has it.
        if operation["operationId"] != "operator_logout" {
            let for_operator = if scopes == ["admin"] {
                admin_only += 1;
                Some((403, "admin_required"))
            } else {
                assert_eq!(scopes, ["cc"], "{method} {path}");
                either += 1;
                None
            };
            found.push(expect("an operator", Some(operator.clone()), for_operator).await);
            found.push(expect("an admin", Some(admin.clone()), None).await);
        }
        wrong.extend(found.into_iter().flatten());
    }
    assert!(admin_only >= 7 && either >= 15, "{admin_only} admin-only and {either} shared routes found");
    assert!(
        wrong.is_empty(),
        "routes that let the wrong caller in or kept the right one out:\n{}",
        wrong.join("\n")
    );
}

/// Calls `method url` as `who`; a line saying what went wrong unless the answer was the
/// refusal expected, or (`refused` none) not a 401 or 403.
async fn probe(
    app: &TestApp,
    method: Method,
    url: String,
    body: Option<Value>,
    who: &str,
    token: Option<String>,
    refused: Option<(u16, &str)>,
) -> Option<String> {
    let mut request = app.http.request(method.clone(), &url);
    if let Some(token) = &token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    // Not every answer is JSON (the payments export is CSV); a refusal always is.
    let answer: Value = serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or_default();
    let code = answer["error"]["code"].as_str().unwrap_or_default();
    let ok = match refused {
        Some((want, want_code)) => status == want && code == want_code,
        None => status != 401 && status != 403,
    };
    (!ok).then(|| format!("{method} {url} as {who}: {status} {code}, expected {refused:?}"))
}

#[tokio::test]
async fn an_admin_manages_operators_and_every_action_is_audited() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in_operator().await;
    let (id, email) = new_account(&app, &admin, "operator").await;
    let create = app.internal_url("/internal/operators");
    let duplicate =
        json!({"email": email, "password": "operator-secret-2", "display_name": "S", "role": "admin"});
    let (status, answer) = app.post(&create, Some(&admin), duplicate).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("email_taken")));
    let as_mitra = json!({"email": "x@bestie.test", "password": "operator-secret-2", "display_name": "S", "role": "mitra"});
    let (status, answer) = app.post(&create, Some(&admin), as_mitra).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_role")));

    // An operator reads the settings but cannot change them, nor see the operators.
    let operator = token_of(&app, &email, "operator-secret-1").await;
    assert_eq!(get(&app, &operator, "/internal/config").await.0, 200);
    let key = app.internal_url("/internal/config/max_customers_per_mitra");
    let (status, answer) = app.call(Method::PUT, &key, Some(&operator), Some(json!({"value": 5}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("admin_required")));
    let (_, config) = get(&app, &admin, "/internal/config").await;
    let cap = config["keys"].as_array().expect("keys").iter().find(|k| k["key"] == "max_customers_per_mitra");
    assert_eq!(cap.and_then(|k| k["updated_by"].as_str()), None, "the refused change was stored: {cap:?}");
    let (status, answer) = get(&app, &operator, "/internal/operators").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("admin_required")));
    // The admin can.
    let (status, changed) = app.call(Method::PUT, &key, Some(&admin), Some(json!({"value": 5}))).await;
    assert_eq!((status, changed["value"].as_i64()), (200, Some(5)), "{changed}");
    let (status, listed) = get(&app, &admin, "/internal/operators").await;
    assert_eq!(status, 200);
    let rows = listed["rows"].as_array().expect("rows");
    assert_eq!((rows.len(), rows[0]["role"].as_str()), (2, Some("admin")), "{listed}");

    // Deactivation: not one's own; another's ends their sign-ins at once.
    let admin_id = rows[0]["id"].as_str().expect("the admin's id").to_owned();
    let own = app.internal_url(&format!("/internal/operators/{admin_id}/deactivate"));
    let (status, answer) = app.post(&own, Some(&admin), json!({})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("cannot_deactivate_self")));
    let deactivate = app.internal_url(&format!("/internal/operators/{id}/deactivate"));
    let (status, row) = app.post(&deactivate, Some(&admin), json!({})).await;
    assert_eq!((status, row["active"].as_bool()), (200, Some(false)), "{row}");
    let (status, answer) = get(&app, &operator, "/internal/config").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("token_revoked")));
    let (status, answer) = sign_in(&app, &email, "operator-secret-1").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("account_deactivated")));
    let reactivate = app.internal_url(&format!("/internal/operators/{id}/reactivate"));
    let (status, row) = app.post(&reactivate, Some(&admin), json!({})).await;
    assert_eq!((status, row["active"].as_bool()), (200, Some(true)));
    let operator = token_of(&app, &email, "operator-secret-1").await;
    assert_eq!(get(&app, &operator, "/internal/config").await.0, 200);
    let unknown = app.internal_url(&format!("/internal/operators/{}/deactivate", uuid::Uuid::new_v4()));
    let (status, answer) = app.post(&unknown, Some(&admin), json!({})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("operator_not_found")));

    // The audit log holds each of those, with who did it.
    let (status, log) = get(&app, &admin, "/internal/audit?limit=200").await;
    assert_eq!(status, 200, "{log}");
    let entries: Vec<(String, String)> = log["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().into(),
                e["actor"]["email"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let admin_email = app.settings.seed.admin_email.clone();
    for (action, by) in [
        ("operator.create", &admin_email),
        ("config.update", &admin_email),
        ("operator.deactivate", &admin_email),
        ("operator.reactivate", &admin_email),
        ("operator.sign_in", &email),
        ("operator.sign_in", &admin_email),
    ] {
        assert!(entries.contains(&(action.to_owned(), by.clone())), "no {action} by {by} in {entries:?}");
    }
    assert_eq!(
        entries.iter().filter(|(a, _)| a == "operator.create").count(),
        1,
        "refused creations were logged"
    );
    let (_, theirs) = get(&app, &admin, &format!("/internal/audit?operator_id={id}")).await;
    let actions: Vec<&str> =
        theirs["rows"].as_array().expect("rows").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["operator.sign_in", "operator.sign_in"], "{theirs}");
    let (status, answer) = get(&app, &admin, "/internal/audit?action=operator.fly").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_query")));
}

#[tokio::test]
async fn an_operator_changes_their_own_password_and_signs_in_again() {
    let app = TestApp::spawn().await;
    let admin = app.sign_in_operator().await;
    let (_, email) = new_account(&app, &admin, "operator").await;
    let operator = token_of(&app, &email, "operator-secret-1").await;
    let change = app.internal_url("/internal/auth/password");
    let (status, answer) = app
        .post(
            &change,
            Some(&operator),
            json!({"current_password": "guess-guess", "new_password": "a-new-secret-9"}),
        )
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("wrong_password")));
    let (status, answer) = app
        .post(
            &change,
            Some(&operator),
            json!({"current_password": "operator-secret-1", "new_password": "short"}),
        )
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_password")));
    // Neither refusal changed anything.
    assert_eq!(get(&app, &operator, "/internal/config").await.0, 200);

    let (status, _) = app
        .post(
            &change,
            Some(&operator),
            json!({"current_password": "operator-secret-1", "new_password": "a-new-secret-9"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, answer) = get(&app, &operator, "/internal/config").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("token_revoked")));
    let (status, answer) = sign_in(&app, &email, "operator-secret-1").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("invalid_credentials")));
    let operator = token_of(&app, &email, "a-new-secret-9").await;
    assert_eq!(get(&app, &operator, "/internal/config").await.0, 200);
    let (_, log) = get(&app, &admin, "/internal/audit?action=operator.change_password").await;
    assert_eq!(
        (log["total"].as_i64(), log["rows"][0]["actor"]["email"].as_str()),
        (Some(1), Some(email.as_str()))
    );
}
