//! `grafana/` against the code and the docs: dashboards load by file provisioning (a
//! `datasource` variable, no `__inputs`), every panel has a unit, rates use
//! `$__rate_interval`, every metric a dashboard or rule names is one `domain::metrics`
//! defines and every defined metric is on a dashboard, and every alert has a promtool test
//! and a runbook entry. (`scripts/observability-check` proves the queries on a real run.)

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names `domain/src/metrics.rs` defines (its `"bestie_…"` literals).
fn defined_metrics() -> BTreeSet<String> {
    let source = read("domain/src/metrics.rs");
    let plain =
        |piece: &&str| piece.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let names: BTreeSet<String> = source
        .split('"')
        .filter(|piece| piece.starts_with("bestie_"))
        .filter(plain)
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 20, "{names:?}");
    names
}

/// Every `bestie_…` name in `text`, with a histogram's `_bucket`, `_count` and `_sum` series
/// named by their histogram.
fn metric_names(text: &str, defined: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("bestie_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|base| defined.contains(*base)))
            .map_or(name.clone(), str::to_owned);
        names.insert(base);
    }
    names
}

fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<_> = fs::read_dir(root().join("grafana/dashboards"))
        .expect("grafana/dashboards")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            let json =
                serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("dashboard JSON");
            (name, json)
        })
        .collect()
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The alert names of the rule files, with each one's text (from `- alert:` to the next).
fn alerts() -> Vec<(String, String)> {
    let rules = read("grafana/alerts/bestie.rules.yml");
    rules
        .split("- alert: ")
        .skip(1)
        .map(|block| {
            let name = block.lines().next().expect("alert name").trim().to_owned();
            (name, block.to_owned())
        })
        .collect()
}

#[test]
fn dashboards_load_by_file_provisioning_with_units_and_rate_intervals() {
    let expected = ["api.json", "chat.json", "hub.json", "jobs.json", "overview.json", "pairing.json"]
        .map(str::to_owned);
    let found: Vec<String> = dashboards().into_iter().map(|(name, _)| name).collect();
    assert_eq!(found, expected);
    let mut uids = BTreeSet::new();
    for (name, dashboard) in dashboards() {
        assert!(dashboard.get("__inputs").is_none(), "{name}: __inputs breaks file provisioning");
        assert!(uids.insert(dashboard["uid"].as_str().expect("uid").to_owned()), "{name}: uid repeated");
        let variables = dashboard["templating"]["list"].as_array().expect("templating");
        assert!(
            variables.iter().any(|v| v["type"] == "datasource"
                && v["name"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no datasource variable"
        );
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            if panel["type"] == "row" {
                continue;
            }
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{name} / {title}: no unit");
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name} / {title}");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name} / {title}: no query");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{name} / {title}");
                let expr = target["expr"].as_str().expect("expr");
                // Every range is Grafana's: $__rate_interval, or the dashboard's range.
                for range in expr.split('[').skip(1).map(|r| r.split(']').next().unwrap_or_default()) {
                    assert!(
                        range == "$__rate_interval" || range == "$__range",
                        "{name} / {title}: range [{range}] in {expr}"
                    );
                }
            }
        }
    }
}

#[test]
fn dashboards_and_rules_name_only_defined_metrics_and_show_every_one() {
    let defined = defined_metrics();
    let mut shown = BTreeSet::new();
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let used = metric_names(target["expr"].as_str().unwrap_or_default(), &defined);
                let unknown: Vec<_> = used.difference(&defined).collect();
                assert!(unknown.is_empty(), "{name}: {unknown:?} are not in domain::metrics");
                shown.extend(used);
            }
        }
    }
    let not_shown: Vec<_> = defined.difference(&shown).collect();
    assert!(not_shown.is_empty(), "metrics on no dashboard: {not_shown:?}");
    let rules = read("grafana/alerts/bestie.rules.yml");
    let used = metric_names(&rules, &defined);
    let unknown: Vec<_> = used.difference(&defined).collect();
    assert!(unknown.is_empty(), "alert rules name {unknown:?}, not in domain::metrics");
}

#[test]
fn every_alert_has_a_test_and_a_runbook_entry() {
    let tests = read("grafana/alerts/bestie.rules.test.yml");
    let runbook = read("docs/RUNBOOK.md");
    let alerts = alerts();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for (alert, block) in alerts {
        assert!(tests.contains(&format!("alertname: {alert}\n")), "{alert}: no promtool test");
        assert!(
            runbook.lines().any(|line| line == format!("## {alert}")),
            "{alert}: no `## {alert}` in the runbook"
        );
        let link = format!("runbook_url: \"docs/RUNBOOK.md#{}\"", alert.to_lowercase());
        assert!(block.contains(&link), "{alert}: no {link}");
        assert!(block.contains("severity:"), "{alert}: no severity");
    }
}
