//! Hostile query strings and path segments for every GET operation.

use super::*;

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
