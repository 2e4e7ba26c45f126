//! `wsbench panels`: evaluates every query of every Grafana dashboard through a Prometheus's
//! HTTP API (`/api/v1/query`), as Grafana would at the end of a run, and fails on a query
//! Prometheus refuses (a parse error, an unknown function) or one that returns no data: an
//! empty result, or only NaN (a quantile or ratio over a window where nothing happened).
//!
//! Grafana's variables are substituted first: `$__rate_interval`, `$__interval` and
//! `$__range` by `--window` (the check sets it to cover the whole run), the dashboard's own
//! template variables by their "All" value (`.*`). Queries are evaluated as of `--at`
//! (default: now). With `--rules`, it also asks the same
//! Prometheus for its alerting and recording rules and fails on any whose last evaluation
//! errored (an expression that parses but cannot run against the real series).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::Value;

pub struct Options {
    /// Prometheus' base URL, on 127.0.0.0/8.
    pub prometheus: String,
    pub dashboards: PathBuf,
    /// What `$__rate_interval`, `$__interval` and `$__range` become, e.g. `3m`.
    pub window: String,
    /// Wait until Prometheus holds a sample of `bestie_build_info` scraped at or after this
    /// unix time (the end of the load), so the last scrape is in.
    pub fresh_after: Option<u64>,
    /// Evaluate as of this unix time (default: now), e.g. just before the load's end, while
    /// its sockets are still open.
    pub at: Option<u64>,
    pub rules: bool,
}

/// One query of one panel.
struct Query {
    dashboard: String,
    panel: String,
    ref_id: String,
    expr: String,
}

/// Every `expr` of every panel of `dashboard` (rows' nested panels included).
fn queries(dashboard: &Value, file: &str, window: &str) -> Vec<Query> {
    fn walk(panels: &Value, out: &mut Vec<Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel.clone());
            walk(&panel["panels"], out);
        }
    }
    let mut panels = Vec::new();
    walk(&dashboard["panels"], &mut panels);
    let title = dashboard["title"].as_str().unwrap_or(file).to_owned();
    let variables = variables(dashboard, window);
    panels
        .iter()
        .flat_map(|panel| {
            let panel_title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
            let title = title.clone();
            let variables = &variables;
            panel["targets"].as_array().into_iter().flatten().filter_map(move |target| {
                let expr = target["expr"].as_str()?;
                Some(Query {
                    dashboard: title.clone(),
                    panel: panel_title.clone(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: substitute(expr, variables),
                })
            })
        })
        .collect()
}

/// The variables and what they stand for: Grafana's interval variables, and each template
/// variable (but the datasource) by its "All" value.
fn variables(dashboard: &Value, window: &str) -> Vec<(String, String)> {
    let mut variables: Vec<(String, String)> = ["__rate_interval", "__interval", "__range"]
        .iter()
        .map(|name| ((*name).to_owned(), window.to_owned()))
        .collect();
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "datasource" {
            continue;
        }
        let Some(name) = variable["name"].as_str() else { continue };
        let value = variable["allValue"].as_str().filter(|_| variable["includeAll"] == true).unwrap_or(".*");
        variables.push((name.to_owned(), value.to_owned()));
    }
    // Longer names first, so `$__range` is not read as `$__r...` of another.
    variables.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    variables
}

/// Replaces `${name}`, `[[name]]` and `$name` (not followed by a name character).
fn substitute(expr: &str, variables: &[(String, String)]) -> String {
    let mut text = expr.to_owned();
    for (name, value) in variables {
        text = text.replace(&format!("${{{name}}}"), value).replace(&format!("[[{name}]]"), value);
        let needle = format!("${name}");
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&needle) {
            let after = &rest[at + needle.len()..];
            out.push_str(&rest[..at]);
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                out.push_str(&needle);
            } else {
                out.push_str(value);
            }
            rest = after;
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// What one query returned: the series count and the largest finite value, or why it failed.
fn verdict(body: &Value) -> Result<(usize, f64), String> {
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"].as_str().unwrap_or("error"), body["error"]));
    }
    let data = &body["data"];
    let values: Vec<f64> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| series["value"][1].as_str()?.parse().ok())
            .collect(),
        Some("scalar") => data["result"][1].as_str().and_then(|v| v.parse().ok()).into_iter().collect(),
        other => return Err(format!("unexpected result type {other:?}")),
    };
    if values.is_empty() {
        return Err("empty result".to_owned());
    }
    let largest = values.iter().copied().filter(|v| v.is_finite()).reduce(f64::max);
    match largest {
        Some(largest) => Ok((values.len(), largest)),
        None => Err(format!("no data: {} series, all NaN or infinite", values.len())),
    }
}

fn dashboards(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no dashboards in {}", dir.display());
    Ok(files)
}

async fn get(client: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
    let response = client.get(url).query(query).send().await.with_context(|| format!("GET {url}"))?;
    response.json().await.with_context(|| format!("GET {url}: body"))
}

/// Waits until a scrape at or after `after` (unix seconds) is in.
async fn wait_fresh(client: &reqwest::Client, base: &str, after: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let body =
            get(client, &format!("{base}/api/v1/query"), &[("query", "max(timestamp(bestie_build_info))")])
                .await?;
        let newest = verdict(&body).map(|(_, value)| value).unwrap_or(0.0);
        if newest >= after as f64 {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "no scrape after {after} within 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every rule's health, once each has been evaluated. Returns the failures.
async fn check_rules(client: &reqwest::Client, base: &str) -> anyhow::Result<(usize, Vec<String>)> {
    let started = Instant::now();
    loop {
        let body = get(client, &format!("{base}/api/v1/rules"), &[]).await?;
        let rules: Vec<Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        anyhow::ensure!(!rules.is_empty(), "Prometheus has no rules loaded");
        let evaluated = rules.iter().all(|rule| rule["health"] != "unknown");
        if evaluated || started.elapsed() > Duration::from_secs(30) {
            let failures = rules
                .iter()
                .filter(|rule| rule["health"] != "ok")
                .map(|rule| format!("rule {}: {} {}", rule["name"], rule["health"], rule["lastError"]))
                .collect();
            return Ok((rules.len(), failures));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&options.prometheus).context("--prometheus")?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(loopback, "the panels check only queries a Prometheus on 127.0.0.0/8");
    let base = options.prometheus.trim_end_matches('/');
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    if let Some(after) = options.fresh_after {
        wait_fresh(&client, base, after).await?;
    }
    let now =
        options.at.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let mut failures = Vec::new();
    let mut zero = Vec::new();
    let mut evaluated = 0;
    for file in dashboards(&options.dashboards)? {
        let name = file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("parsing {}", file.display()))?;
        for query in queries(&dashboard, &name, &options.window) {
            evaluated += 1;
            let at = now.to_string();
            let body =
                get(&client, &format!("{base}/api/v1/query"), &[("query", &query.expr), ("time", &at)])
                    .await?;
            let place = format!("{} / {} / {}", query.dashboard, query.panel, query.ref_id);
            match verdict(&body) {
                Ok((series, largest)) => {
                    println!("ok    {place}: {series} series, largest {largest}");
                    if largest == 0.0 {
                        zero.push(place);
                    }
                }
                Err(why) => {
                    println!("FAIL  {place}: {why}\n      {}", query.expr);
                    failures.push(format!("{place}: {why}"));
                }
            }
        }
    }
    if options.rules {
        let (count, rule_failures) = check_rules(&client, base).await?;
        println!("rules: {count} evaluated by Prometheus, {} unhealthy", rule_failures.len());
        failures.extend(rule_failures);
    }
    // Zero is data (nothing of that kind happened in the run), but worth seeing.
    println!(
        "{evaluated} panel queries evaluated, {} failed; all zero in this run: {}",
        failures.len(),
        zero.len()
    );
    for place in &zero {
        println!("      zero: {place}");
    }
    anyhow::ensure!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{substitute, verdict};
    use serde_json::json;

    #[test]
    fn variables_are_substituted_whole() {
        let variables =
            vec![("__rate_interval".to_owned(), "3m".to_owned()), ("instance".to_owned(), ".*".to_owned())];
        let expr =
            r#"rate(x{instance=~"$instance", i="$instances"}[$__rate_interval]) + y[${__rate_interval}]"#;
        assert_eq!(substitute(expr, &variables), r#"rate(x{instance=~".*", i="$instances"}[3m]) + y[3m]"#);
    }

    #[test]
    fn empty_and_nan_results_fail() {
        let vector = |values: &[&str]| {
            let result: Vec<_> = values.iter().map(|v| json!({"metric": {}, "value": [1, v]})).collect();
            json!({"status": "success", "data": {"resultType": "vector", "result": result}})
        };
        assert!(verdict(&vector(&[])).is_err());
        assert!(verdict(&vector(&["NaN", "NaN"])).is_err());
        assert_eq!(verdict(&vector(&["NaN", "0.5", "0.25"])), Ok((3, 0.5)));
        assert!(
            verdict(&json!({"status": "error", "errorType": "bad_data", "error": "parse error"})).is_err()
        );
    }
}
