//! Hostile input over real HTTP and real sockets (issue 11): generated malformed bodies for
//! every operation the listeners' OpenAPI documents give a request body, hostile query strings
//! and path segments for every GET operation, hostile text and binary frames over the hub.
//! Nothing answers 5xx; every refusal carries the JSON error body with a code the operation
//! documents (and docs/ERRORS.md explains); the socket answers each frame with a documented
//! `error` frame and stays open; and bad input changes nothing in the database.
//!
//! The cases are drawn by proptest strategies from a seed printed with any failure;
//! `HOSTILE_SEED=<64 hex digits>` replays one run. Shrinking is not used (the requests are
//! async): a failure lists each offending case in full.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{TestApp, unique_phone, ws_url_with_token};
use crate::openapi::{FALLBACK_CODES, errors_md, operations};
use crate::tidy::root;

mod bodies;
mod frames;
mod queries;

/// Generated malformed bodies per operation with a request body, besides one with NUL in
/// every string (25 operations: 325 requests).
const BODY_CASES: usize = 12;
/// Generated query strings and path segments per GET operation, besides each documented
/// parameter with each corner value (25 operations: 458 requests).
const GET_CASES: usize = 10;
/// Generated frames over one socket (then a ping and an oversized frame).
const FRAME_CASES: usize = 200;

/// The codes a refused body gets from the extractors, before any handler runs.
const DECODE_CODES: [&str; 2] = ["invalid_json", "invalid_body"];

// ---------------------------------------------------------------------------------------
// The application under attack, its documents and what it holds.

/// A running application with a signed-in customer, mitra and operator.
struct Target {
    app: TestApp,
    customer: String,
    mitra: String,
    operator: String,
    listeners: Vec<(&'static str, SocketAddr, Value)>,
}

impl Target {
    async fn spawn() -> Self {
        let app = TestApp::spawn_with(|settings| {
            // Every generated frame must reach the decoder, not the command rate limit.
            settings.hub.commands_per_second = 10_000;
            settings.hub.command_burst = 10_000;
        })
        .await;
        let operator = app.sign_in_operator().await;
        let (_, customer, _) = app.sign_in_customer(&unique_phone()).await;
        let (_, mitra, _) = app.sign_in_new_mitra(&operator).await;
        let mut listeners = Vec::new();
        for (name, addr, path) in [
            ("public", app.public, "/api/openapi.json"),
            ("internal", app.internal, "/internal/openapi.json"),
        ] {
            let url = format!("http://{addr}{path}");
            let document: Value =
                app.http.get(url).send().await.expect("document").json().await.expect("JSON document");
            listeners.push((name, addr, document));
        }
        Self { app, customer, mitra, operator, listeners }
    }

    /// A token of the first role the operation's security names, `None` when it takes none.
    fn token_for(&self, operation: &Value) -> Option<&str> {
        let scheme = operation["security"].as_array()?.first()?.as_object()?.values().next()?;
        match scheme.as_array()?.first()?.as_str()? {
            "customer" => Some(&self.customer),
            "mitra" => Some(&self.mitra),
            "cc" | "admin" => Some(&self.operator),
            other => panic!("unknown role {other:?} in {operation}"),
        }
    }

    /// Every table of the database with its row count and a digest of its rows.
    async fn database(&self) -> BTreeMap<String, (i64, String)> {
        let pool = self.app.store.pg_pool();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(pool)
        .await
        .expect("tables");
        let mut state = BTreeMap::new();
        for table in tables {
            let digest = format!(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
            );
            // The table names come from pg_tables, not from input.
            let digest = sqlx::AssertSqlSafe(digest);
            let row: (i64, String) = sqlx::query_as(digest).fetch_one(pool).await.expect("digest");
            state.insert(table, row);
        }
        assert!(state.len() > 10, "the tables were not found: {state:?}");
        state
    }

    /// Fails when a table's rows changed since `before`.
    async fn assert_unchanged(&self, before: &BTreeMap<String, (i64, String)>) {
        let after = self.database().await;
        let changed: Vec<String> = after
            .iter()
            .filter(|(table, state)| before.get(*table) != Some(*state))
            .map(|(table, (rows, _))| format!("{table} ({} → {rows} rows)", before[table].0))
            .collect();
        assert!(changed.is_empty(), "bad input changed the database: {changed:?}");
    }

    /// The tokens still work: nothing generated logged anyone out.
    async fn assert_tokens_live(&self) {
        let app = &self.app;
        for (url, token) in [
            (app.public_url("/api/client/chat-sessions/active"), &self.customer),
            (app.public_url("/api/mitra/status"), &self.mitra),
            (app.internal_url("/internal/config"), &self.operator),
        ] {
            let (status, body) = app.call(reqwest::Method::GET, &url, Some(token), None).await;
            assert_eq!(status, 200, "{url}: {body}");
        }
    }
}

/// `status → codes` an operation documents.
fn documented_errors(operation: &Value) -> BTreeMap<u16, BTreeSet<String>> {
    let responses = operation["responses"].as_object().expect("responses");
    responses
        .iter()
        .filter_map(|(status, response)| {
            let codes = response["content"]["application/json"]["examples"].as_object()?;
            Some((status.parse().ok()?, codes.keys().cloned().collect()))
        })
        .collect()
}

/// What is wrong with an answer to hostile input, if anything: a 5xx, a 2xx when
/// `must_refuse`, a refusal without the JSON error body, or with a code the operation does
/// not document for its status (the routers' fallbacks aside) or docs/ERRORS.md does not
/// explain.
fn judge(
    status: u16,
    body: &[u8],
    operation: &Value,
    explained: &BTreeMap<String, BTreeSet<u16>>,
    must_refuse: bool,
) -> Result<Option<String>, String> {
    if status >= 500 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(body)));
    }
    if status < 400 {
        return if must_refuse { Err(format!("accepted with {status}")) } else { Ok(None) };
    }
    let error: Value =
        serde_json::from_slice(body).map_err(|_| format!("{status}: not a JSON error body"))?;
    let code = error["error"]["code"].as_str().ok_or(format!("{status}: no error.code in {error}"))?;
    if !error["error"]["message"].is_string() {
        return Err(format!("{status} {code}: no message"));
    }
    if !explained.get(code).is_some_and(|statuses| statuses.contains(&status)) {
        return Err(format!("{status} {code}: not in docs/ERRORS.md with that status"));
    }
    let documented = documented_errors(operation);
    if !FALLBACK_CODES.contains(&code) && !documented.get(&status).is_some_and(|codes| codes.contains(code)) {
        return Err(format!("{status} {code}: not among the operation's documented errors {documented:?}"));
    }
    Ok(Some(code.to_owned()))
}

/// A runner drawing from `HOSTILE_SEED` or a fresh seed, and that seed in hex.
fn runner() -> (TestRunner, String) {
    let seed: [u8; 32] = match std::env::var("HOSTILE_SEED") {
        Ok(hex) => {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("HOSTILE_SEED is hex"))
                .collect();
            bytes.try_into().expect("HOSTILE_SEED is 64 hex digits")
        }
        Err(_) => {
            let mut seed = [0; 32];
            seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            seed
        }
    };
    let hex = seed.iter().map(|b| format!("{b:02x}")).collect();
    (TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed)), hex)
}

fn draw<T: std::fmt::Debug>(runner: &mut TestRunner, strategy: &impl Strategy<Value = T>) -> T {
    strategy.new_tree(runner).expect("a case").current()
}

// ---------------------------------------------------------------------------------------
// Hostile values.

/// Strings no field accepts as they are, or that stress a decoder: empty, blank, control
/// characters and NUL, bidi and BOM, markup and SQL, long and very long, random text. None
/// holds `@` (no email) or is a phone number.
fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("   \t\r\n".to_owned()),
        "[\\x00-\\x1f\\x7f]{1,8}",
        "[a-z]{0,5}\\x00[a-z]{0,5}",
        Just("\u{202e}\u{feff}\u{200b}".to_owned()),
        Just("'; DROP TABLE customers; --".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("\\u0000 %00 %s %n {{}} ${x}".to_owned()),
        Just("😀".repeat(2_000)),
        // Long, yet five of them stay within the body limit.
        (4_097usize..12_000).prop_map(|n| "x".repeat(n)),
        "[^@]{1,40}",
    ]
    .boxed()
}

/// Raw JSON numbers an integer field cannot hold, or that sit at its edges.
fn hostile_number() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "-1",
        "0",
        "-0",
        "2147483648",
        "-2147483649",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "123456789012345678901234567890",
        "1.5",
        "1e400",
        "-1e400",
        "1E-400",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

/// A JSON value of each type, as raw text.
fn value_of_type(json_type: &'static str) -> BoxedStrategy<String> {
    match json_type {
        "null" => Just("null".to_owned()).boxed(),
        "boolean" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "integer" => any::<i64>().prop_map(|n| n.to_string()).boxed(),
        "number" => Just("0.25".to_owned()).boxed(),
        "string" => Just("\"s\"".to_owned()).boxed(),
        "array" => Just("[1,\"a\",null]".to_owned()).boxed(),
        _ => Just("{\"a\":{}}".to_owned()).boxed(),
    }
}

const JSON_TYPES: [&str; 7] = ["null", "boolean", "integer", "number", "string", "array", "object"];

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn object(fields: &[(String, String)]) -> String {
    let members: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}:{value}", quoted(name))).collect();
    format!("{{{}}}", members.join(","))
}

/// Fills each path parameter: a random UUID where the document says uuid, else a word no
/// key has.
fn concrete(path: &str, operation: &Value) -> String {
    let mut out = path.to_owned();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        if parameter["in"] == "path" {
            let name = parameter["name"].as_str().expect("name");
            let value = if parameter["schema"]["format"] == "uuid" {
                uuid::Uuid::new_v4().to_string()
            } else {
                "no_such_key".to_owned()
            };
            out = out.replace(&format!("{{{name}}}"), &value);
        }
    }
    out
}
