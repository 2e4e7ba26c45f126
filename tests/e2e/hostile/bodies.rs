//! Generated malformed request bodies for every operation with a body.

use super::*;

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
