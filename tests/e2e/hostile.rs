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

// ---------------------------------------------------------------------------------------
// Bodies.

/// One field of a body's schema.
#[derive(Clone, Debug)]
struct Field {
    name: String,
    /// The JSON types the schema allows; empty: any.
    types: Vec<String>,
    uuid: bool,
    required: bool,
}

impl Field {
    /// A value of the right type that no handler takes: a hostile string or number, a
    /// random id nothing has. A boolean gets a string: both booleans are valid.
    fn hostile(&self) -> BoxedStrategy<String> {
        let allows = |t: &str| self.types.is_empty() || self.types.iter().any(|own| own == t);
        if self.uuid {
            any::<u128>().prop_map(|n| quoted(&uuid::Uuid::from_u128(n).to_string())).boxed()
        } else if allows("string") {
            hostile_string().prop_map(|s| quoted(&s)).boxed()
        } else if allows("integer") {
            hostile_number()
        } else {
            Just("\"true\"".to_owned()).boxed()
        }
    }

    /// A value of a type the schema does not allow (a string that is no id, for an id),
    /// `None` when it allows any.
    fn wrong_type(&self) -> Option<BoxedStrategy<String>> {
        let allowed = |t: &str| {
            (t != "string" || !self.uuid)
                && self.types.iter().any(|own| own == t || (t == "integer" && own == "number"))
        };
        let wrong: Vec<&'static str> = JSON_TYPES.into_iter().filter(|t| !allowed(t)).collect();
        if self.types.is_empty() || wrong.is_empty() {
            return None;
        }
        Some(prop::sample::select(wrong).prop_flat_map(value_of_type).boxed())
    }
}

/// A request body as the document describes it.
#[derive(Clone, Debug)]
struct BodySpec {
    schema: String,
    fields: Vec<Field>,
    /// The body may be left out (`OptionalJson`): no content type needed.
    optional: bool,
}

impl BodySpec {
    fn of(operation: &Value, document: &Value) -> Option<Self> {
        let request_body = operation.get("requestBody")?;
        let schema = request_body["content"]["application/json"]["schema"].to_string();
        let name = schema.split("#/components/schemas/").nth(1)?.split('"').next()?.to_owned();
        let component = &document["components"]["schemas"][&name];
        // A body of several shapes (`oneOf`, each an `allOf` of its fields and a rule such as
        // "name a tier") counts as one object of every field any shape has: a field's types
        // are those of any shape, and it is required when every shape requires it.
        let shapes: Vec<&Value> = match component["oneOf"].as_array() {
            Some(variants) => variants
                .iter()
                .map(|variant| {
                    let parts =
                        variant["allOf"].as_array().map_or(std::slice::from_ref(variant), Vec::as_slice);
                    parts.iter().find(|part| part["properties"].is_object()).unwrap_or(variant)
                })
                .collect(),
            None => vec![component],
        };
        let mut fields: Vec<Field> = Vec::new();
        for shape in &shapes {
            let required: BTreeSet<&str> =
                shape["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let properties =
                shape["properties"].as_object().unwrap_or_else(|| panic!("{name}: no properties"));
            for (field, property) in properties {
                let types: Vec<String> = match &property["type"] {
                    Value::String(t) => vec![t.clone()],
                    Value::Array(types) => {
                        types.iter().filter_map(Value::as_str).map(str::to_owned).collect()
                    }
                    _ => Vec::new(),
                };
                let seen = Field {
                    name: field.clone(),
                    types,
                    uuid: property["format"] == "uuid",
                    required: required.contains(field.as_str()),
                };
                match fields.iter_mut().find(|known| known.name == *field) {
                    Some(known) => {
                        for t in seen.types {
                            if !known.types.contains(&t) {
                                known.types.push(t);
                            }
                        }
                        known.uuid |= seen.uuid;
                        known.required &= seen.required;
                    }
                    None => fields.push(seen),
                }
            }
        }
        for field in &mut fields {
            if shapes.iter().any(|shape| shape["properties"].get(&field.name).is_none()) {
                field.required = false;
            }
        }
        Some(Self { schema: name, fields, optional: request_body["required"] != true })
    }

    /// An object with a hostile value of the right type in every field.
    fn template(&self) -> BoxedStrategy<Vec<(String, String)>> {
        let names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        let values: Vec<BoxedStrategy<String>> = self.fields.iter().map(Field::hostile).collect();
        values.prop_map(move |values| names.iter().cloned().zip(values).collect()).boxed()
    }
}

fn object(fields: &[(String, String)]) -> String {
    let members: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}:{value}", quoted(name))).collect();
    format!("{{{}}}", members.join(","))
}

/// One generated request body and what the api must answer it.
#[derive(Clone, Debug)]
struct BodyCase {
    what: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// The codes it must get; empty: any the operation documents.
    expect: Vec<&'static str>,
}

impl BodyCase {
    fn json(what: &'static str, body: String, expect: Vec<&'static str>) -> Self {
        Self { what, content_type: Some("application/json"), body: body.into_bytes(), expect }
    }
}

fn body_cases(spec: &BodySpec) -> BoxedStrategy<BodyCase> {
    let template = spec.template();
    let decode = DECODE_CODES.to_vec();
    let mut cases: Vec<BoxedStrategy<BodyCase>> = vec![
        // Random bytes, never a JSON object (an empty or `{}` body is a valid logout).
        prop::collection::vec(any::<u8>(), 1..512)
            .prop_filter("not a JSON object", |bytes| {
                !bytes.iter().all(u8::is_ascii_whitespace)
                    && serde_json::from_slice::<Value>(bytes).map_or(true, |v| !v.is_object())
            })
            .prop_map({
                let decode = decode.clone();
                move |bytes| BodyCase {
                    what: "random bytes",
                    content_type: Some("application/json"),
                    body: bytes,
                    expect: decode.clone(),
                }
            })
            .boxed(),
        // JSON that is not an object (`null` is no body, which an optional one may be).
        prop::sample::select(if spec.optional {
            vec!["true", "1", "\"{}\"", "[]", "[1,2,3,4,5,6,7]", "1e400"]
        } else {
            vec!["null", "true", "1", "\"{}\"", "[]", "[1,2,3,4,5,6,7]", "1e400"]
        })
        .prop_map({
            let decode = decode.clone();
            move |text| BodyCase::json("not an object", text.to_owned(), decode.clone())
        })
        .boxed(),
        // The right values in an array, in field order (serde reads a struct from one).
        template
            .clone()
            .prop_map({
                let decode = decode.clone();
                move |fields| {
                    let values: Vec<&str> = fields.iter().map(|(_, value)| value.as_str()).collect();
                    BodyCase::json(
                        "an array of the fields",
                        format!("[{}]", values.join(",")),
                        decode.clone(),
                    )
                }
            })
            .boxed(),
        // Deep nesting, within the body limit (serde_json stops at 128 levels).
        (100usize..10_000, any::<bool>())
            .prop_map({
                let decode = decode.clone();
                move |(depth, as_object)| {
                    let body = if as_object {
                        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
                    } else {
                        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
                    };
                    BodyCase::json("deep nesting", body, decode.clone())
                }
            })
            .boxed(),
        // An unknown field next to hostile values (every body denies unknown fields).
        (template.clone(), "[a-z_]{1,16}")
            .prop_filter_map("a new name", {
                let names: Vec<String> = spec.fields.iter().map(|f| f.name.clone()).collect();
                let decode = decode.clone();
                move |(mut fields, extra)| {
                    (!names.contains(&extra)).then(|| {
                        fields.push((extra, "1".to_owned()));
                        BodyCase::json("unknown field", object(&fields), decode.clone())
                    })
                }
            })
            .boxed(),
        // Over the body limit.
        template
            .clone()
            .prop_map(|fields| {
                let mut body = object(&fields);
                body.push_str(&" ".repeat(api::MAX_BODY_BYTES));
                BodyCase::json("over the body limit", body, vec!["payload_too_large"])
            })
            .boxed(),
        // A huge string inside the limit.
        (template.clone(), 0..spec.fields.len())
            .prop_map(|(mut fields, index)| {
                fields[index].1 = quoted(&"A".repeat(60_000));
                BodyCase::json("huge string", object(&fields), Vec::new())
            })
            .boxed(),
        // Hostile values of the right types: refused by the rules, whichever.
        template
            .clone()
            .prop_map(|fields| BodyCase::json("hostile values", object(&fields), Vec::new()))
            .boxed(),
    ];
    // A content type that is not JSON (an optional body needs none: any documented answer).
    let wrong_types =
        vec![None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml")];
    let optional = spec.optional;
    cases.push(
        (template.clone(), prop::sample::select(wrong_types))
            .prop_map(move |(fields, content_type)| BodyCase {
                what: "not JSON's content type",
                content_type,
                body: object(&fields).into_bytes(),
                expect: if optional { Vec::new() } else { vec!["unsupported_media_type"] },
            })
            .boxed(),
    );
    // A required field left out.
    let required: Vec<usize> = (0..spec.fields.len()).filter(|i| spec.fields[*i].required).collect();
    if !required.is_empty() {
        let decode = decode.clone();
        cases.push(
            (template.clone(), prop::sample::select(required))
                .prop_map(move |(mut fields, index)| {
                    fields.remove(index);
                    BodyCase::json("missing field", object(&fields), decode.clone())
                })
                .boxed(),
        );
    }
    // A field of the wrong type.
    for (index, field) in spec.fields.iter().enumerate() {
        if let Some(wrong) = field.wrong_type() {
            let decode = decode.clone();
            cases.push(
                (template.clone(), wrong)
                    .prop_map(move |(mut fields, value)| {
                        fields[index].1 = value;
                        BodyCase::json("wrong type", object(&fields), decode.clone())
                    })
                    .boxed(),
            );
        }
    }
    prop::strategy::Union::new(cases).boxed()
}

/// NUL (which Postgres text cannot hold) in every string field, the other fields hostile.
fn nul_everywhere(spec: &BodySpec) -> BodyCase {
    let fields: Vec<(String, String)> = spec
        .fields
        .iter()
        .map(|field| {
            let value = if field.uuid {
                quoted(&uuid::Uuid::new_v4().to_string())
            } else if field.types.is_empty() || field.types.iter().any(|t| t == "string") {
                quoted("x\u{0}y")
            } else if field.types.iter().any(|t| t == "integer") {
                "-1".to_owned()
            } else {
                "\"true\"".to_owned()
            };
            (field.name.clone(), value)
        })
        .collect();
    BodyCase::json("NUL in every string", object(&fields), Vec::new())
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

#[tokio::test]
async fn malformed_bodies_are_refused_with_documented_codes_and_change_nothing() {
    let target = Target::spawn().await;
    let explained = errors_md();
    let (mut runner, seed) = runner();
    let before = target.database().await;

    let mut schemas = BTreeSet::new();
    let (mut sent, mut wrong) = (0, Vec::new());
    for (listener, addr, document) in &target.listeners {
        for (method, path, operation) in operations(document) {
            let Some(spec) = BodySpec::of(operation, document) else { continue };
            schemas.insert(spec.schema.clone());
            let strategy = body_cases(&spec);
            let mut cases = vec![nul_everywhere(&spec)];
            cases.extend((0..BODY_CASES).map(|_| draw(&mut runner, &strategy)));
            for case in cases {
                let url = format!("http://{addr}{}", concrete(path, operation));
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let mut request = target.app.http.request(method.clone(), &url).body(case.body.clone());
                if let Some(token) = target.token_for(operation) {
                    request = request.bearer_auth(token);
                }
                if let Some(content_type) = case.content_type {
                    request = request.header("content-type", content_type);
                }
                let response = request.send().await.expect("an answer");
                let status = response.status().as_u16();
                let body = response.bytes().await.expect("body");
                sent += 1;
                // Hostile values of the right types may be well-formed: a DELETE of what does
                // not exist (a device token made of `<script>…`) is a 204 that changes nothing,
                // which the comparison of the database after the run checks. Anything else
                // must be refused.
                let must_refuse = !(method == "DELETE" && case.what == "hostile values");
                let verdict = judge(status, &body, operation, &explained, must_refuse).and_then(|code| {
                    let code = code.unwrap_or_default();
                    if case.expect.is_empty() || case.expect.contains(&code.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("{status} {code}, expected one of {:?}", case.expect))
                    }
                });
                if let Err(problem) = verdict {
                    let shown = String::from_utf8_lossy(&case.body);
                    let shown: String = shown.chars().take(300).collect();
                    wrong.push(format!(
                        "{listener} {method} {path} [{}] {:?} {shown:?}: {problem}",
                        case.what, case.content_type
                    ));
                }
            }
        }
    }
    assert!(sent >= 20 * (BODY_CASES + 1), "too few operations with a body were found: {sent} requests");
    assert!(
        wrong.is_empty(),
        "HOSTILE_SEED={seed}: {} of {sent} answers wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The fuzz target `request_bodies` reaches every body the documents name.
    let listed: BTreeSet<String> = api::bodies::REQUEST_BODIES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(schemas, listed, "api::bodies::REQUEST_BODIES and the documents' request bodies differ");
    target.assert_unchanged(&before).await;
    target.assert_tokens_live().await;
}

// ---------------------------------------------------------------------------------------
// Query strings and path segments.

/// Query values no parameter takes as they are, percent-encoded or raw.
fn hostile_query_value() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "-1",
            "0",
            "abc",
            "99999999999999999999999999",
            "1e400",
            "NaN",
            "%00",
            "%FF%FE",
            "%zz",
            "%",
            "%E2%80%AE",
            "2026-13-45T25:61:00Z",
            "true",
            "[]",
            "a,b,,c",
            "%26%3D%3F",
        ])
        .prop_map(str::to_owned),
        (1usize..8_000).prop_map(|n| "9".repeat(n)),
        "[a-zA-Z0-9%._~+-]{1,60}",
    ]
    .boxed()
}

/// Path segments that are no id: malformed, encoded separators and dots, NUL, long.
fn hostile_segment() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "not-a-uuid",
            "%00",
            "%FF%FE",
            "%",
            "%zz",
            "%2F",
            "%2e%2e",
            "00000000-0000-0000-0000-00000000000g",
            "0d5e6a8e6f2b4c1a9a573a1f0c2b9e44ff",
            "-1",
            "%E2%80%AE",
            "'%20OR%201=1--",
        ])
        .prop_map(str::to_owned),
        (1usize..4_000).prop_map(|n| "a".repeat(n)),
        "[a-zA-Z0-9%._~-]{1,80}",
    ]
    .boxed()
}

/// Values every documented query parameter and path parameter gets, besides the drawn ones.
const QUERY_CORNERS: [&str; 7] = ["%00", "a%00b", "%FF%FE", "", "-1", "99999999999999999999", "1e400"];
const SEGMENT_CORNERS: [&str; 3] = ["%00", "a%00b", "%FF%FE"];

/// Each documented parameter of a GET operation with each corner value, one at a time.
fn corner_cases(path: &str, operation: &Value) -> Vec<GetCase> {
    let mut cases = Vec::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str().expect("name");
        match parameter["in"].as_str() {
            Some("query") => {
                cases.extend(QUERY_CORNERS.iter().map(|value| GetCase {
                    path: concrete(path, operation),
                    query: format!("{name}={value}"),
                }))
            }
            Some("path") => cases.extend(SEGMENT_CORNERS.iter().map(|segment| GetCase {
                path: concrete(&path.replace(&format!("{{{name}}}"), segment), operation),
                query: String::new(),
            })),
            _ => {}
        }
    }
    cases
}

#[derive(Clone, Debug)]
struct GetCase {
    path: String,
    query: String,
}

fn get_cases(path: &str, operation: &Value) -> BoxedStrategy<GetCase> {
    let parameters: Vec<(String, String)> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["in"].as_str()?.to_owned(), p["name"].as_str()?.to_owned())))
        .collect();
    let query_names: Vec<String> =
        parameters.iter().filter(|(place, _)| place == "query").map(|(_, name)| name.clone()).collect();
    let path_names: Vec<String> =
        parameters.iter().filter(|(place, _)| place == "path").map(|(_, name)| name.clone()).collect();
    let base = concrete(path, operation);
    let with_query = {
        let base = base.clone();
        move |query: String| GetCase { path: base.clone(), query }
    };
    let mut cases: Vec<BoxedStrategy<GetCase>> = vec![
        // An unknown parameter, repeated and empty parameters, random query text.
        ("[a-z_]{1,12}", hostile_query_value())
            .prop_map(|(name, value)| format!("{name}={value}"))
            .prop_map(with_query.clone())
            .boxed(),
        "[!-~&&[^#]]{0,200}".prop_map(with_query.clone()).boxed(),
        Just("&&&=&==&".to_owned()).prop_map(with_query.clone()).boxed(),
    ];
    if !query_names.is_empty() {
        let names = query_names.clone();
        cases.push(
            (prop::sample::select(names), hostile_query_value())
                .prop_map(|(name, value)| format!("{name}={value}"))
                .prop_map(with_query.clone())
                .boxed(),
        );
        cases.push(
            (prop::sample::select(query_names), hostile_query_value(), hostile_query_value())
                .prop_map(|(name, first, second)| format!("{name}={first}&{name}={second}&{name}[]={first}"))
                .prop_map(with_query.clone())
                .boxed(),
        );
    }
    if !path_names.is_empty() {
        let path = path.to_owned();
        let operation = operation.clone();
        cases.push(
            (prop::sample::select(path_names), hostile_segment())
                .prop_map(move |(name, segment)| {
                    let filled = concrete(&path.replace(&format!("{{{name}}}"), &segment), &operation);
                    GetCase { path: filled, query: String::new() }
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(cases).boxed()
}

#[tokio::test]
async fn hostile_queries_and_path_segments_get_documented_answers_and_change_nothing() {
    let target = Target::spawn().await;
    let explained = errors_md();
    let (mut runner, seed) = runner();
    let before = target.database().await;

    let (mut sent, mut wrong) = (0, Vec::new());
    for (listener, addr, document) in &target.listeners {
        for (method, path, operation) in operations(document) {
            if method != "GET" {
                continue;
            }
            let strategy = get_cases(path, operation);
            let mut cases = corner_cases(path, operation);
            cases.extend((0..GET_CASES).map(|_| draw(&mut runner, &strategy)));
            for case in cases {
                let url = format!("http://{addr}{}?{}", case.path, case.query);
                let mut request = target.app.http.get(&url);
                if let Some(token) = target.token_for(operation) {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.expect("an answer");
                let status = response.status().as_u16();
                let body = response.bytes().await.expect("body");
                sent += 1;
                if let Err(problem) = judge(status, &body, operation, &explained, false) {
                    let shown: String = url.chars().take(300).collect();
                    wrong.push(format!("{listener} GET {path}: {shown}: {problem}"));
                }
            }
        }
    }
    assert!(sent >= 15 * GET_CASES, "too few GET operations were found: {sent} requests");
    assert!(
        wrong.is_empty(),
        "HOSTILE_SEED={seed}: {} of {sent} answers wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    target.assert_unchanged(&before).await;
    target.assert_tokens_live().await;
}

// ---------------------------------------------------------------------------------------
// Frames.

/// The codes of `error` frames: docs/PROTOCOL.md §10, and (for refused commands) ERRORS.md.
fn frame_codes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/PROTOCOL.md")).expect("docs/PROTOCOL.md");
    let section = text.split("## 10. Error frame codes").nth(1).expect("PROTOCOL.md §10");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut codes: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect();
    assert!(codes.contains("invalid_frame"), "PROTOCOL.md §10 was not read: {codes:?}");
    codes.extend(errors_md().into_keys());
    codes
}

/// The commands and the fields of their `data` (PROTOCOL.md §4): name, JSON type.
const COMMANDS: [(&str, &[(&str, &str)]); 4] = [
    ("send_message", &[("session_id", "uuid"), ("client_msg_id", "string"), ("body", "string")]),
    ("mark_delivered", &[("session_id", "uuid"), ("up_to_seq", "integer")]),
    ("mark_read", &[("session_id", "uuid"), ("up_to_seq", "integer")]),
    ("typing", &[("session_id", "uuid")]),
];

/// One generated frame and the error codes it must get (empty: any documented one).
#[derive(Clone, Debug)]
struct FrameCase {
    what: &'static str,
    frame: Message,
    expect: Vec<&'static str>,
    /// The `ref` the answer must echo.
    reference: Option<Value>,
}

fn command_data(fields: &[(&str, &str)]) -> BoxedStrategy<Vec<(String, String)>> {
    let values: Vec<BoxedStrategy<String>> = fields
        .iter()
        .map(|(_, kind)| match *kind {
            "uuid" => any::<u128>().prop_map(|n| quoted(&uuid::Uuid::from_u128(n).to_string())).boxed(),
            "integer" => hostile_number(),
            _ => hostile_string()
                .prop_filter("within a frame", |s| s.len() < 20_000)
                .prop_map(|s| quoted(&s))
                .boxed(),
        })
        .collect();
    let names: Vec<String> = fields.iter().map(|(name, _)| (*name).to_owned()).collect();
    values.prop_map(move |values| names.iter().cloned().zip(values).collect()).boxed()
}

fn frame_cases() -> BoxedStrategy<FrameCase> {
    let text = |what: &'static str, expect: Vec<&'static str>| {
        move |frame: String| FrameCase {
            what,
            frame: Message::Text(frame.into()),
            expect: expect.clone(),
            reference: None,
        }
    };
    let reference =
        prop::sample::select(vec![json!(1), json!("r-1"), json!({"a": [1, null]}), json!(-0.5), json!("😀")]);
    let mut cases: Vec<BoxedStrategy<FrameCase>> = vec![
        prop::collection::vec(any::<u8>(), 0..2_048)
            .prop_map(|bytes| FrameCase {
                what: "binary",
                frame: Message::Binary(bytes.into()),
                expect: vec!["binary_not_supported"],
                reference: None,
            })
            .boxed(),
        ".{0,300}".prop_map(text("random text", Vec::new())).boxed(),
        (100usize..20_000, any::<bool>())
            .prop_map(|(depth, in_data)| {
                let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                if in_data { format!("{{\"type\":\"mark_read\",\"data\":{nested}}}") } else { nested }
            })
            .prop_map(text("deep nesting", vec!["invalid_frame", "invalid_command"]))
            .boxed(),
        prop::sample::select(vec![
            "1",
            "null",
            "[]",
            "\"ping\"",
            "{\"type\":7}",
            "{\"type\":null}",
            "{\"data\":{}}",
            "{\"type\":\"ping\",\"type\":\"ping\"}",
            "[\"ping\",7]",
        ])
        .prop_map(str::to_owned)
        .prop_map(text("no string type", vec!["invalid_frame"]))
        .boxed(),
        ("[a-zA-Z_]{1,20}", reference.clone())
            .prop_filter("not a command", |(kind, _)| {
                kind != "ping" && !COMMANDS.iter().any(|(c, _)| c == kind)
            })
            .prop_map(|(kind, reference)| FrameCase {
                what: "unknown command",
                frame: Message::Text(json!({"type": kind, "ref": reference}).to_string().into()),
                expect: vec!["unknown_command"],
                reference: Some(reference),
            })
            .boxed(),
    ];
    for (command, fields) in COMMANDS {
        let data = command_data(fields);
        // Hostile values of the right types, about a session nothing has: the rules refuse
        // them (a second `typing` within 2 s is acknowledged as throttled instead).
        cases.push(
            (data.clone(), reference.clone())
                .prop_map(move |(data, reference)| FrameCase {
                    what: "hostile values",
                    frame: Message::Text(
                        format!("{{\"type\":\"{command}\",\"ref\":{reference},\"data\":{}}}", object(&data))
                            .into(),
                    ),
                    expect: Vec::new(),
                    reference: Some(reference),
                })
                .boxed(),
        );
        // A field of the wrong type, left out, or an unknown one; `data` not an object.
        let index = 0..fields.len();
        let wrong = prop::sample::select(JSON_TYPES.to_vec()).prop_flat_map(value_of_type);
        cases.push(
            (data, index, wrong, 0..4u8, reference.clone())
                .prop_filter_map("a wrong type", move |(mut data, index, value, how, reference)| {
                    let kind = fields[index].1;
                    let fits = match kind {
                        "integer" => value.parse::<i64>().is_ok(),
                        _ => value.starts_with('"'),
                    };
                    let data = match how {
                        0 if !fits => {
                            data[index].1 = value;
                            object(&data)
                        }
                        1 => {
                            data.remove(index);
                            object(&data)
                        }
                        2 => {
                            data.push(("extra".to_owned(), value));
                            object(&data)
                        }
                        3 if !value.starts_with('{') => value,
                        _ => return None,
                    };
                    let frame = format!("{{\"type\":\"{command}\",\"ref\":{reference},\"data\":{data}}}");
                    // A number past f64 (`1e400`) makes the whole frame unreadable.
                    let readable = serde_json::from_str::<Value>(&frame).is_ok();
                    Some(FrameCase {
                        what: "data that does not fit",
                        frame: Message::Text(frame.into()),
                        expect: vec![if readable { "invalid_command" } else { "invalid_frame" }],
                        reference: Some(reference),
                    })
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(cases).boxed()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, or what came instead (a close, an error, silence).
async fn answer(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Err(_) => return Err("no answer within 10 s".to_owned()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => return Err(format!("instead of an answer: {other:?}")),
        }
    }
}

#[tokio::test]
async fn hostile_frames_get_documented_error_frames_and_the_socket_stays_open() {
    let target = Target::spawn().await;
    let codes = frame_codes();
    let (mut runner, seed) = runner();
    let before = target.database().await;
    let url = ws_url_with_token(target.app.public, &target.customer);
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("socket opens");
    assert_eq!(answer(&mut socket).await.expect("welcome")["type"], "welcome");

    let strategy = frame_cases();
    let mut wrong = Vec::new();
    for _ in 0..FRAME_CASES {
        let case = draw(&mut runner, &strategy);
        socket.send(case.frame.clone()).await.expect("sent");
        let verdict = match answer(&mut socket).await {
            Err(problem) => Err(problem),
            Ok(frame) => {
                let code = frame["data"]["code"].as_str().unwrap_or_default().to_owned();
                let throttled = case.what == "hostile values"
                    && frame["type"] == "ack"
                    && frame["data"]["throttled"] == true
                    && case.frame.to_text().is_ok_and(|t| t.starts_with("{\"type\":\"typing\""));
                if throttled {
                    Ok(())
                } else if frame["type"] != "error" || !frame["data"]["message"].is_string() {
                    Err(format!("not an error frame: {frame}"))
                } else if !codes.contains(&code) {
                    Err(format!("{code} is documented neither in PROTOCOL.md §10 nor in ERRORS.md"))
                } else if !case.expect.is_empty() && !case.expect.contains(&code.as_str()) {
                    Err(format!("{code}, expected one of {:?}", case.expect))
                } else if case.reference.is_some()
                    && code != "invalid_frame"
                    && frame.get("ref") != case.reference.as_ref()
                {
                    Err(format!("the ref was not echoed: {frame}"))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(problem) = verdict {
            let shown: String = format!("{:?}", case.frame).chars().take(300).collect();
            wrong.push(format!("[{}] {shown}: {problem}", case.what));
            if problem.starts_with("instead") || problem.starts_with("no answer") {
                break;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "HOSTILE_SEED={seed}: {} frames answered wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Still open and answering; then a frame over the limit closes it with 1009.
    socket
        .send(Message::Text(json!({"type": "ping", "ref": "still-open"}).to_string().into()))
        .await
        .expect("ping");
    let pong = answer(&mut socket).await.expect("pong");
    assert_eq!((&pong["type"], &pong["ref"]), (&json!("pong"), &json!("still-open")));
    let oversized = "x".repeat(target.app.settings.hub.max_frame_bytes + 1);
    socket.send(Message::Text(oversized.into())).await.expect("sent");
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("closed within 10 s")
        {
            Some(Ok(Message::Close(Some(close)))) => break (u16::from(close.code), close.reason.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected the close, got {other:?}"),
        }
    };
    assert_eq!(closed, (1009, "frame_too_large".to_owned()));
    target.assert_unchanged(&before).await;
}
