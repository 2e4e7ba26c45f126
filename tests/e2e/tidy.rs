//! Architecture invariants (ARCHITECTURE.md), checked on the source tree. Each check names
//! the rule, so a failure says which line of ARCHITECTURE.md the change broke.

use std::fs;
use std::path::{Path, PathBuf};

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Every `.rs` file under `dir`, relative to the workspace root, with its text.
pub(crate) fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut paths = Vec::new();
    walk(&root.join(dir), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("read source");
            (path.strip_prefix(&root).expect("under root").display().to_string(), text)
        })
        .collect()
}

const PRODUCTION_CRATES: [&str; 5] = ["domain/src", "api/src", "hub/src", "workers/src", "bestie/src"];

fn production_sources() -> Vec<(String, String)> {
    PRODUCTION_CRATES.iter().flat_map(|dir| sources(dir)).collect()
}

fn offenders(files: &[(String, String)], allowed: impl Fn(&str) -> bool, needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| !allowed(path))
        .flat_map(|(path, text)| {
            needles
                .iter()
                .filter(|needle| text.contains(**needle))
                .map(move |needle| format!("{path}: {needle}"))
        })
        .collect()
}

/// SQL and Redis are spoken by `domain::store` (the handle, its pools, keys and errors) and
/// by each area's `store` module beside its flows (`domain/src/<area>/store.rs` or
/// `store/`), nowhere else.
#[test]
fn only_the_stores_speak_sql_or_redis() {
    let store_code = |path: &str| {
        path.starts_with("domain/src/")
            && (path.starts_with("domain/src/store/")
                || path.ends_with("/store.rs")
                || path.contains("/store/"))
    };
    let found = offenders(
        &production_sources(),
        store_code,
        &["sqlx::query", "query_as(", "query_scalar(", "redis::", "use redis", "use sqlx"],
    );
    assert!(found.is_empty(), "SQL or Redis outside the stores: {found:#?}");
}

#[test]
fn the_domain_crate_knows_no_web_framework() {
    let found = offenders(&sources("domain/src"), |_| false, &["axum", "tower", "http::", "StatusCode"]);
    assert!(found.is_empty(), "web framework in domain: {found:#?}");
    let manifest = fs::read_to_string(root().join("domain/Cargo.toml")).expect("manifest");
    for forbidden in ["axum", "tower", "hyper"] {
        assert!(!manifest.contains(forbidden), "domain/Cargo.toml depends on {forbidden}");
    }
}

#[test]
fn only_the_hub_holds_sockets() {
    let found = offenders(
        &production_sources(),
        |path| path.starts_with("hub/src/"),
        &["extract::ws", "WebSocketUpgrade", "tungstenite"],
    );
    assert!(found.is_empty(), "sockets outside hub: {found:#?}");
}

#[test]
fn only_the_settings_loader_reads_the_environment() {
    let found = offenders(
        &production_sources(),
        |path| path == "bestie/src/settings.rs",
        &["std::env::var", "env::var(", "env::vars(", "Env::prefixed"],
    );
    assert!(found.is_empty(), "environment read outside bestie::settings: {found:#?}");
}

#[test]
fn metric_names_live_in_one_module() {
    let found = offenders(&production_sources(), |path| path == "domain/src/metrics.rs", &["\"bestie_"]);
    assert!(found.is_empty(), "metric name literal outside domain::metrics: {found:#?}");
}

#[test]
fn every_module_says_what_it_is_for() {
    let undocumented: Vec<String> = production_sources()
        .into_iter()
        .chain(sources("tests/e2e"))
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(undocumented.is_empty(), "modules without a leading //! line: {undocumented:#?}");
}

/// The edges (handlers, the hub, the jobs, the binary) hold a `Store` and pass it to the
/// domain's functions; they neither name `domain::store` nor call the store's methods
/// themselves, so every rule (a page's limit, who may read what, what a hub instance's lease
/// renews) is the domain's, once. Holding the handle is theirs: `clone`, and at start and
/// stop `migrate` and `close`. The compiler holds the production build to it as well: the
/// store's methods are `pub(crate)`, and the few these tests and the load tester call are
/// public only with `domain`'s `test-support` feature (`.ci/run` lints `-p bestie` without it).
#[test]
fn the_edges_reach_the_store_only_through_the_domain() {
    const HANDLE: [&str; 3] = ["clone", "close", "migrate"];
    let edges: Vec<(String, String)> =
        production_sources().into_iter().filter(|(path, _)| !path.starts_with("domain/")).collect();
    let mut found = offenders(&edges, |_| false, &["domain::store", "::store::"]);
    for (path, text) in &edges {
        for (at, _) in text.match_indices("store.") {
            let method: String =
                text[at + 6..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let called = text[at + 6 + method.len()..].starts_with('(');
            let named_store = !text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            if called && named_store && !HANDLE.contains(&method.as_str()) {
                found.push(format!("{path}: store.{method}("));
            }
        }
    }
    assert!(found.is_empty(), "an edge calls the store: {found:#?}");
}

/// A production file a newcomer can read through: at most 600 lines (split by what the
/// parts do, as `store/pairing/answers.rs` and `pairing/views.rs` are).
#[test]
fn no_production_file_is_over_600_lines() {
    let long: Vec<String> = production_sources()
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .map(|(path, lines)| format!("{path}: {lines} lines"))
        .collect();
    assert!(long.is_empty(), "split these: {long:#?}");
}

/// A domain step answers one error, its area's: the store's code of that area refuses in the
/// same words (`store::error::takes_driver_errors!`), so no refusal rides inside a store
/// result and nothing maps one vocabulary into another.
#[test]
fn no_domain_result_nests_a_refusal() {
    let found = offenders(&sources("domain/src"), |_| false, &["Result<Result<", "??;"]);
    assert!(found.is_empty(), "nested results in the domain: {found:#?}");
}

#[test]
fn migrations_are_timestamped_and_never_renamed() {
    let mut names: Vec<String> = fs::read_dir(root().join("migrations"))
        .expect("migrations dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in &names {
        let (stamp, rest) = name.split_once('_').expect("TIMESTAMP_name.sql");
        assert!(stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()), "{name}");
        assert!(
            rest.ends_with(".sql")
                && rest.trim_end_matches(".sql").bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
    }
}

#[test]
fn no_handler_or_job_panics_on_purpose() {
    // unwrap/expect are allowed only where failure is a bug in a constant (metric
    // registration, a bound listener's address); those sit in the files listed here.
    let allowed = ["domain/src/metrics.rs", "bestie/src/lib.rs"];
    // Inline unit tests (after `#[cfg(test)]`) may unwrap.
    let without_unit_tests: Vec<(String, String)> = production_sources()
        .into_iter()
        .map(|(path, text)| {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            (path, code)
        })
        .collect();
    let found =
        offenders(&without_unit_tests, |path| allowed.contains(&path), &[".unwrap()", ".expect(", "panic!("]);
    assert!(found.is_empty(), "unwrap/expect/panic in production code: {found:#?}");
}

/// docs/PROTOCOL.md §5 lists exactly the kinds of server event, and each of them is sent
/// somewhere (made outside the module that declares them).
#[test]
fn the_protocol_lists_exactly_the_events_the_code_sends() {
    let text = fs::read_to_string(root().join("docs/PROTOCOL.md")).expect("docs/PROTOCOL.md");
    let section = text.split("## 5. Server events").nth(1).expect("PROTOCOL.md §5");
    let section = section.split("### 5.1").next().unwrap_or_default();
    let documented: std::collections::BTreeSet<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .filter(|name| *name != "type")
        .collect();
    let kinds: std::collections::BTreeSet<&str> =
        domain::event::EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(documented, kinds, "PROTOCOL.md §5 against EventKind");

    let sources: Vec<(String, String)> =
        production_sources().into_iter().filter(|(path, _)| path != "domain/src/event.rs").collect();
    for kind in kinds {
        let variant: String =
            kind.split('_').map(|word| word[..1].to_ascii_uppercase() + &word[1..]).collect();
        let path = format!("Event::{variant}");
        let sent = sources.iter().any(|(_, text)| {
            text.match_indices(&path)
                .any(|(at, _)| !text[at + path.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        });
        assert!(sent, "Event::{variant} ({kind}) is never made outside domain/src/event.rs");
    }
}

/// The domain's functions take typed ids (`domain::ids`), never a bare `Uuid`, so two ids
/// cannot be swapped at a call site: `ids.rs`, where the types cross to and from `Uuid`,
/// is the one exception.
#[test]
fn no_domain_function_takes_a_bare_uuid() {
    let mut found = Vec::new();
    for (path, text) in sources("domain/src") {
        if path == "domain/src/ids.rs" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, _) in code.match_indices("fn ") {
            let preceded = code[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let Some(open) = code[at..].find('(').map(|open| at + open) else { continue };
            if !preceded || code[at + 3..open].contains(|c: char| c.is_whitespace() || c == '{' || c == ';') {
                continue;
            }
            let mut depth = 0;
            let close = code[open..]
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(code.len(), |(offset, _)| open + offset);
            let params = &code[open + 1..close];
            let bare = params.match_indices("Uuid").any(|(i, _)| {
                let before = params[..i].chars().next_back();
                let after = params[i + 4..].chars().next();
                before.is_none_or(|c| !c.is_alphanumeric() && c != '_')
                    && after.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '(')
            });
            if bare {
                let line = code[..at].lines().count() + 1;
                found.push(format!("{path}:{line}: {}", &code[at..open]));
            }
        }
    }
    assert!(found.is_empty(), "functions taking a bare Uuid (take an id of domain::ids): {found:#?}");
}

/// A mitra's room for chats changes in one place, `domain::capacity::changed`: no other
/// production code moves the counters, so a change that made room always owes the mitra the
/// open requests, decided once (`Change::may_make_room`). Tests set counters up directly.
#[test]
fn a_mitras_capacity_changes_only_through_domain_capacity() {
    let found = offenders(
        &production_sources(),
        |path| path == "domain/src/capacity.rs" || path == "domain/src/store/presence.rs",
        &[
            ".set_mitra_status(",
            ".mitra_connected(",
            ".mitra_disconnected(",
            ".add_mitra_sessions(",
            ".set_mitra_sessions(",
        ],
    );
    assert!(found.is_empty(), "capacity changed outside domain::capacity: {found:#?}");
}
