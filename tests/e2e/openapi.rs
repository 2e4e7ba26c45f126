//! The OpenAPI documents (`/api/openapi.json`, `/internal/openapi.json`): each lists exactly
//! the routes its listener serves, and every operation its errors, with codes that
//! docs/ERRORS.md explains.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bestie::ServiceRole;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::tidy::{root, sources};

/// The methods probed on every documented path (HEAD and OPTIONS are answered by axum and
/// the CORS layer for every route, so they say nothing about what a router serves).
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Operations that cannot fail, so they document no error response.
const CANNOT_FAIL: [(&str, &str); 2] = [("GET", "/healthz"), ("GET", "/metrics")];

/// Codes only the routers' fallbacks answer: no operation has them.
pub(crate) const FALLBACK_CODES: [&str; 2] = ["route_not_found", "method_not_allowed"];

/// Where the routers are built: every route path in them is a string literal.
const ROUTER_CRATES: [&str; 3] = ["api/src", "hub/src", "bestie/src"];

/// One listener: its address and its document.
struct Listener {
    name: &'static str,
    addr: SocketAddr,
    document: Value,
}

impl Listener {
    async fn fetch(app: &TestApp, name: &'static str, addr: SocketAddr, path: &str) -> Self {
        let response = app.http.get(format!("http://{addr}{path}")).send().await.expect("document");
        assert_eq!(response.status(), 200, "{name} {path}");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/json"), "{name} {path}");
        let document: Value = response.json().await.expect("a JSON document");
        let version = document["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3."), "{name}: not OpenAPI 3.x: {version:?}");
        Self { name, addr, document }
    }

    /// Every documented `(METHOD, path)`.
    fn operations(&self) -> BTreeSet<(String, String)> {
        operations(&self.document).map(|(method, path, _)| (method, path.to_owned())).collect()
    }

    fn paths(&self) -> BTreeSet<String> {
        self.document["paths"].as_object().expect("paths").keys().cloned().collect()
    }
}

async fn both_listeners(app: &TestApp) -> [Listener; 2] {
    [
        Listener::fetch(app, "public", app.public, "/api/openapi.json").await,
        Listener::fetch(app, "internal", app.internal, "/internal/openapi.json").await,
    ]
}

/// `(METHOD, path, operation)` of every operation of a document.
pub(crate) fn operations(document: &Value) -> impl Iterator<Item = (String, &str, &Value)> {
    document["paths"].as_object().expect("paths").iter().flat_map(|(path, item)| {
        item.as_object().expect("path item").iter().filter_map(move |(method, operation)| {
            let method = method.to_uppercase();
            METHODS.contains(&method.as_str()).then_some((method, path.as_str(), operation))
        })
    })
}

/// `path` with each parameter filled: a random UUID where the document says uuid, else a
/// word no key has.
pub(crate) fn concrete(path: &str, operation: Option<&Value>) -> String {
    let uuid_params: BTreeSet<&str> = operation
        .and_then(|op| op["parameters"].as_array())
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path" && p["schema"]["format"] == "uuid")
        .filter_map(|p| p["name"].as_str())
        .collect();
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closing brace") + open;
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        if uuid_params.contains(name) {
            out.push_str(&uuid::Uuid::new_v4().to_string());
        } else {
            out.push_str("no_such_key");
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Sends `method path` without a token (and `{}` as the body where one can go); returns
/// the status and the error code, if the answer has one.
async fn probe(app: &TestApp, addr: SocketAddr, method: &str, path: &str) -> (u16, Option<String>) {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app.http.request(method.clone(), format!("http://{addr}{path}"));
    if [Method::POST, Method::PUT, Method::PATCH].contains(&method) {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn each_listener_documents_exactly_the_routes_it_serves() {
    let app = TestApp::spawn().await;
    let listeners = both_listeners(&app).await;
    let all_paths: BTreeSet<String> = listeners.iter().flat_map(Listener::paths).collect();
    // An operation of either document, for its path parameters.
    let any_operation = |path: &str| {
        listeners.iter().find_map(|l| l.document["paths"][path].as_object()?.values().next().cloned())
    };

    // Every method on every path either document names, on both listeners: a documented
    // operation is served (whatever it answers, it is not a fallback's answer); another
    // method of a documented path is 405; a path of the other listener is 404 here.
    let mut wrong = Vec::new();
    for listener in &listeners {
        let documented = listener.operations();
        let own_paths = listener.paths();
        for path in &all_paths {
            let url = concrete(path, any_operation(path).as_ref());
            for method in METHODS {
                let (status, code) = probe(&app, listener.addr, method, &url).await;
                let code = code.as_deref();
                let expected = if documented.contains(&(method.to_owned(), path.clone())) {
                    if FALLBACK_CODES.iter().any(|f| code == Some(*f)) { Some("served") } else { None }
                } else if own_paths.contains(path) {
                    (code != Some("method_not_allowed")).then_some("405 method_not_allowed")
                } else {
                    (code != Some("route_not_found")).then_some("404 route_not_found")
                };
                if let Some(expected) = expected {
                    wrong.push(format!(
                        "{} {method} {path}: expected {expected}, got {status} {code:?}",
                        listener.name
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the documents and the routers disagree:\n{}", wrong.join("\n"));

    // A route added without `routes!` (a plain `.route("/api/...")`, a nested router)
    // brings a path literal the documents do not list.
    let undocumented: Vec<String> = ROUTER_CRATES
        .iter()
        .flat_map(|dir| sources(dir))
        .flat_map(|(file, text)| {
            route_literals(&text).into_iter().map(move |literal| (file.clone(), literal))
        })
        .filter(|(_, literal)| {
            !all_paths.contains(literal) && !api::console::PATHS.contains(&literal.as_str())
        })
        .map(|(file, literal)| format!("{file}: {literal}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "route paths in the router code that no document lists (register routes with \
         `.routes(routes!(handler))` and a `#[utoipa::path]`):\n{}",
        undocumented.join("\n")
    );

    // Each listener serves its own routes only, and the health routes.
    let public = listeners[0].paths();
    let internal = listeners[1].paths();
    for (name, paths, own) in
        [("public", &public, ["/api/", "/ws"]), ("internal", &internal, ["/internal/", "/metrics"])]
    {
        let foreign: Vec<&String> = paths
            .iter()
            .filter(|p| !own.iter().any(|prefix| p.starts_with(prefix)))
            .filter(|p| !["/healthz", "/readyz"].contains(&p.as_str()))
            .collect();
        assert!(foreign.is_empty(), "{name} documents routes of another listener: {foreign:?}");
    }
    for path in ["/ws", "/api/openapi.json", "/healthz", "/readyz"] {
        assert!(public.contains(path), "public lacks {path}");
    }
    for path in ["/metrics", "/internal/openapi.json", "/healthz", "/readyz"] {
        assert!(internal.contains(path), "internal lacks {path}");
    }
}

/// String literals that look like route paths (`"/api/..."`, `"/ws"`).
fn route_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.starts_with('/')
                && literal[1..].starts_with(|c: char| c.is_ascii_lowercase())
                && literal.chars().all(|c| c.is_ascii_alphanumeric() || "/{}_-.".contains(c))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_process_documents_only_the_roles_it_runs() {
    let app = TestApp::spawn_roles([ServiceRole::Hub].into(), |_| {}).await;
    let [public, internal] = both_listeners(&app).await;
    let expected: BTreeSet<String> =
        ["/ws", "/api/openapi.json", "/healthz", "/readyz"].map(str::to_owned).into();
    assert_eq!(public.paths(), expected);
    let expected: BTreeSet<String> =
        ["/metrics", "/internal/openapi.json", "/healthz", "/readyz"].map(str::to_owned).into();
    assert_eq!(internal.paths(), expected);
    let (status, code) = probe(&app, app.public, "POST", "/api/client/payment-sessions").await;
    assert_eq!((status, code.as_deref()), (404, Some("route_not_found")));
}

/// `code → statuses` from the table of docs/ERRORS.md.
pub(crate) fn errors_md() -> BTreeMap<String, BTreeSet<u16>> {
    let text = std::fs::read_to_string(root().join("docs/ERRORS.md")).expect("docs/ERRORS.md");
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let statuses = cells.next()?.split('/').map(|s| s.trim().parse().ok()).collect::<Option<_>>()?;
            Some((code.to_owned(), statuses))
        })
        .collect()
}

#[tokio::test]
async fn every_operation_documents_its_errors_with_the_codes_of_errors_md() {
    let app = TestApp::spawn().await;
    let listeners = both_listeners(&app).await;
    let explained = errors_md();
    assert!(explained.len() > 50, "docs/ERRORS.md's table was not read: {explained:?}");

    let mut wrong = Vec::new();
    let mut documented: BTreeSet<String> = BTreeSet::new();
    for listener in &listeners {
        let document = &listener.document;
        let name = listener.name;
        assert!(document["components"]["schemas"]["ErrorBody"].is_object(), "{name}: no ErrorBody component");
        let mut operation_ids = BTreeSet::new();
        for (method, path, operation) in operations(document) {
            let at = format!("{name} {method} {path}");
            match operation["operationId"].as_str() {
                Some(id) if operation_ids.insert(id.to_owned()) => {}
                other => wrong.push(format!("{at}: operationId {other:?} missing or not unique")),
            }
            let responses = operation["responses"].as_object().expect("responses");
            let errors: Vec<(u16, &Value)> = responses
                .iter()
                .filter_map(|(status, response)| Some((status.parse::<u16>().ok()?, response)))
                .filter(|(status, _)| *status >= 400)
                .collect();
            if errors.is_empty() && !CANNOT_FAIL.contains(&(method.as_str(), path)) {
                wrong.push(format!("{at}: documents no error response"));
            }
            let mut codes_here = BTreeSet::new();
            for (status, response) in errors {
                let content = &response["content"]["application/json"];
                if content["schema"]["$ref"] != "#/components/schemas/ErrorBody" {
                    wrong.push(format!("{at} {status}: not the ErrorBody schema"));
                }
                let examples = content["examples"].as_object().into_iter().flatten().collect::<Vec<_>>();
                if examples.is_empty() {
                    wrong.push(format!("{at} {status}: names no code"));
                }
                for (code, example) in examples {
                    if example["value"]["error"]["code"] != code.as_str() {
                        wrong.push(format!("{at} {status} {code}: the example has another code"));
                    }
                    if status == 503 && example["value"]["error"]["retryable"] != true {
                        wrong.push(format!("{at} 503 {code}: not marked retryable"));
                    }
                    match explained.get(code) {
                        None => wrong.push(format!("{at}: {code} is not in docs/ERRORS.md")),
                        Some(statuses) if !statuses.contains(&status) => wrong.push(format!(
                            "{at}: {code} documented as {status}, docs/ERRORS.md says {statuses:?}"
                        )),
                        Some(_) => {}
                    }
                    codes_here.insert(code.clone());
                    documented.insert(code.clone());
                }
            }
            // A route that takes a token says so, and lists what a bad token gets.
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured != codes_here.contains("missing_token") {
                wrong.push(format!("{at}: security {secured} but missing_token listed: {}", !secured));
            }
            if secured && !codes_here.contains("wrong_role") {
                wrong.push(format!("{at}: takes a token but lists no wrong_role"));
            }
        }
    }
    // And the other way round: every code of ERRORS.md is answered by some operation.
    for code in explained.keys() {
        if !documented.contains(code) && !FALLBACK_CODES.contains(&code.as_str()) {
            wrong.push(format!("docs/ERRORS.md: {code} is documented by no operation"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every write an app user can make spends their budget (`api::caller`), so each such
/// operation documents its 429 `rate_limited`; reads and operators' routes do not spend it.
#[tokio::test]
async fn every_app_write_documents_the_users_budget() {
    let app = TestApp::spawn().await;
    let public = Listener::fetch(&app, "public", app.public, "/api/openapi.json").await;
    let (mut undocumented, mut writes) = (Vec::new(), 0);
    for (method, path, operation) in operations(&public.document) {
        let app_roles = operation["security"].as_array().into_iter().flatten().any(|requirement| {
            requirement
                .as_object()
                .into_iter()
                .flat_map(|r| r.values())
                .flat_map(|scopes| scopes.as_array().into_iter().flatten())
                .any(|scope| scope == "customer" || scope == "mitra")
        });
        if !app_roles || method == "GET" {
            continue;
        }
        writes += 1;
        let documented = operation["responses"]["429"]["content"]["application/json"]["examples"]
            .as_object()
            .is_some_and(|examples| examples.contains_key("rate_limited"));
        if !documented {
            undocumented.push(format!("{method} {path}"));
        }
    }
    assert!(writes >= 20, "only {writes} app writes found: the scan missed the documents' shape");
    assert!(undocumented.is_empty(), "app writes without 429 rate_limited: {undocumented:?}");
}

/// Every success body is typed: a client generated from either document gets a named shape
/// (a `$ref`, an array of them, or an object with properties), never a bare `object`. The
/// documents themselves are the one exception: an OpenAPI document is free-form JSON.
#[tokio::test]
async fn every_success_body_has_a_typed_schema() {
    let app = TestApp::spawn().await;
    let (mut untyped, mut bodies) = (Vec::new(), 0);
    for listener in both_listeners(&app).await {
        let components = &listener.document["components"]["schemas"];
        for (method, path, operation) in operations(&listener.document) {
            if path.ends_with("/openapi.json") {
                continue;
            }
            let responses = operation["responses"].as_object().into_iter().flatten();
            for (status, response) in responses.filter(|(status, _)| status.starts_with('2')) {
                let Some(schema) = response["content"]["application/json"].get("schema") else { continue };
                bodies += 1;
                let resolved = match schema["$ref"].as_str() {
                    Some(name) => &components[name.trim_start_matches("#/components/schemas/")],
                    None => schema,
                };
                let typed = resolved["properties"].is_object()
                    || resolved["items"].is_object()
                    || resolved["oneOf"].is_array()
                    || resolved["allOf"].is_array()
                    || resolved["type"].as_str().is_some_and(|t| t != "object");
                if !typed {
                    untyped.push(format!("{} {method} {path} {status}: {schema}", listener.name));
                }
            }
        }
    }
    assert!(bodies >= 50, "only {bodies} success bodies found: the scan missed the documents' shape");
    assert!(untyped.is_empty(), "success bodies without a typed schema:\n{}", untyped.join("\n"));
}
