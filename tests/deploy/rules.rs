//! The Prometheus rules (deploy/prometheus/rules.yml, alerts.yml), their unit tests
//! (deploy/prometheus/tests.yml) and the Grafana dashboard (deploy/grafana/flint.json), checked
//! without a running Prometheus: `promtool` (Debian's package `prometheus`) validates the rules
//! and runs the unit tests, and these tests check what promtool cannot: every alert is tested
//! both firing and quiet and carries what the on-call needs, every dashboard panel has a
//! query, and every metric Flint exports is watched somewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flint_shared::telemetry::catalogue::{self, Kind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const RULES: &str = "rules.yml";
const ALERTS: &str = "alerts.yml";
const TESTS: &str = "tests.yml";
const RECORDING_GROUP: &str = "flint.rules";
const ALERTING_GROUP: &str = "flint.alerts";
const SEVERITIES: [&str; 2] = ["page", "ticket"];
const DASHBOARD_UID: &str = "flint-off-session";
/// The only template variables a panel query may use (besides the datasource's).
const DASHBOARD_VARIABLES: [&str; 2] = ["__rate_interval", "queue"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn prometheus_dir() -> PathBuf {
    repo("deploy/prometheus")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `promtool ARGS` in `dir` (`PROMTOOL` overrides the program).
fn promtool(dir: &Path, args: &[&str]) -> Output {
    let program = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    match Command::new(&program).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` not found ({e}): install it with `apt-get install -y prometheus` \
             (Debian's package ships /usr/bin/promtool), or point PROMTOOL at it"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[derive(Debug, Deserialize, Serialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize, Serialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn rule_file(name: &str) -> RuleFile {
    let path = prometheus_dir().join(name);
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every alerting rule of alerts.yml.
fn alerts() -> Vec<Rule> {
    let file = rule_file(ALERTS);
    let rules: Vec<Rule> = file.groups.into_iter().flat_map(|g| g.rules).collect();
    assert!(!rules.is_empty(), "no alert in {ALERTS}");
    rules
}

#[derive(Debug, Deserialize)]
struct UnitTests {
    rule_files: Vec<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    tests: Vec<UnitTest>,
}

#[derive(Debug, Deserialize)]
struct UnitTest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    alert_rule_test: Vec<AlertCase>,
}

#[derive(Debug, Deserialize)]
struct AlertCase {
    alertname: String,
    eval_time: String,
    /// Missing and `[]` both mean promtool expects the alert not to be firing.
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

fn unit_tests() -> UnitTests {
    let path = prometheus_dir().join(TESTS);
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    let path = repo("deploy/grafana/flint.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' collapsed panels included.
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

fn panel_exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

/// A panel query as Prometheus would receive it: `$__rate_interval` = 1m, `$queue` = charges.
fn substituted(expr: &str) -> String {
    expr.replace("${__rate_interval}", "1m")
        .replace("$__rate_interval", "1m")
        .replace("${queue}", "charges")
        .replace("$queue", "charges")
}

#[test]
fn promtool_accepts_the_recording_and_alerting_rules() {
    let output = promtool(&prometheus_dir(), &["check", "rules", RULES, ALERTS]);
    assert_success(&format!("promtool check rules {RULES} {ALERTS}"), &output);
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let output = promtool(&prometheus_dir(), &["test", "rules", TESTS]);
    assert_success(&format!("promtool test rules {TESTS}"), &output);
}

#[test]
fn the_unit_tests_load_both_rule_files_recording_rules_first() {
    let tests = unit_tests();
    assert_eq!(tests.rule_files, [RULES, ALERTS]);
    // Without a fixed order promtool evaluates the groups in a random one, and an alert that
    // reads a recorded series may see it one evaluation late: flaky expectations.
    assert_eq!(tests.group_eval_order, [RECORDING_GROUP, ALERTING_GROUP]);
    let groups: Vec<String> = [RULES, ALERTS]
        .into_iter()
        .flat_map(|f| rule_file(f).groups)
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, [RECORDING_GROUP, ALERTING_GROUP]);
}

#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let tests = unit_tests();
    let mut firing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut quiet: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let alerts = alerts();
    let known: BTreeSet<&str> = alerts.iter().filter_map(|a| a.alert.as_deref()).collect();
    for test in &tests.tests {
        for case in &test.alert_rule_test {
            let at = format!("{:?} at {}", test.name, case.eval_time);
            if !known.contains(case.alertname.as_str()) {
                problems.push(format!("{at}: no alert named {}", case.alertname));
            }
            if case.exp_alerts.is_empty() {
                quiet.entry(case.alertname.clone()).or_default().push(at);
                continue;
            }
            for expected in &case.exp_alerts {
                // A firing case pins the severity and the rendered annotations, so a broken
                // template or a changed threshold in a description shows up.
                if !expected.exp_labels.contains_key("severity") {
                    problems.push(format!(
                        "{at}: {} expected without severity",
                        case.alertname
                    ));
                }
                for key in ["summary", "description", "runbook"] {
                    if !expected.exp_annotations.contains_key(key) {
                        problems.push(format!("{at}: {} expected without {key}", case.alertname));
                    }
                }
            }
            firing.entry(case.alertname.clone()).or_default().push(at);
        }
    }
    for name in known {
        if !firing.contains_key(name) {
            problems.push(format!("{name}: no case in {TESTS} where it fires"));
        }
        if !quiet.contains_key(name) {
            problems.push(format!(
                "{name}: no case in {TESTS} where it must stay quiet (exp_alerts: [])"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_has_a_severity_a_wait_and_what_the_on_call_needs() {
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for rule in alerts() {
        let Some(name) = rule.alert.as_deref() else {
            problems.push(format!("a recording rule in {ALERTS}: {:?}", rule.record));
            continue;
        };
        if !names.insert(name.to_owned()) {
            problems.push(format!("{name}: defined twice"));
        }
        if !name.starts_with("Flint") || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!("{name}: not a FlintCamelCase name"));
        }
        if rule.for_.as_deref().is_none_or(str::is_empty) {
            problems.push(format!("{name}: no `for:`"));
        }
        match rule.labels.get("severity") {
            Some(s) if SEVERITIES.contains(&s.as_str()) => {}
            other => problems.push(format!(
                "{name}: severity {other:?}, not one of {SEVERITIES:?}"
            )),
        }
        for key in ["summary", "description"] {
            if rule
                .annotations
                .get(key)
                .is_none_or(|v| v.trim().is_empty())
            {
                problems.push(format!("{name}: no {key}"));
            }
        }
        // The runbook is the README section headed `#### <alert name>`.
        let runbook = format!("README.md#{}", name.to_lowercase());
        if rule.annotations.get("runbook") != Some(&runbook) {
            problems.push(format!(
                "{name}: runbook {:?}, expected {runbook:?}",
                rule.annotations.get("runbook")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
#[ignore = "until README.md has a `#### <alert name>` runbook entry per alert"]
fn every_alert_has_a_runbook_entry_in_the_readme() {
    let readme = read(&repo("README.md"));
    let headings: BTreeSet<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("#### "))
        .map(str::trim)
        .collect();
    let missing: Vec<String> = alerts()
        .into_iter()
        .filter_map(|a| a.alert)
        .filter(|name| !headings.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "alerts without a `#### <name>` runbook entry in README.md: {missing:?}"
    );
}

#[test]
fn recording_rules_follow_the_level_metric_operations_convention() {
    let mut seen = BTreeSet::new();
    for rule in rule_file(RULES).groups.into_iter().flat_map(|g| g.rules) {
        let name = rule
            .record
            .unwrap_or_else(|| panic!("an alert in {RULES}: {:?}", rule.alert));
        let parts: Vec<&str> = name.split(':').collect();
        assert!(
            parts.len() == 3 && parts[0] == "flint" && parts.iter().all(|p| !p.is_empty()),
            "{name}: not flint:metric:operations"
        );
        assert!(seen.insert(name.clone()), "{name}: recorded twice");
    }
}

#[test]
fn the_dashboard_has_a_query_title_description_and_unit_on_every_panel() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], DASHBOARD_UID);
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {}",
        dashboard["schemaVersion"]
    );
    let variables = dashboard["templating"]["list"].as_array().cloned();
    let variables = variables.unwrap_or_default();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no `datasource` variable of type datasource for prometheus: {variables:?}"
    );
    let mut problems = Vec::new();
    let panels = panels(&dashboard);
    assert!(!panels.is_empty(), "no panel");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        if title.trim().is_empty() {
            problems.push(format!("panel {}: no title", panel["id"]));
        }
        if !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{title}: id {} twice", panel["id"]));
        }
        if panel["type"] == "row" {
            continue;
        }
        if panel["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            problems.push(format!("{title}: no description"));
        }
        if panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            problems.push(format!("{title}: no unit in fieldConfig.defaults"));
        }
        let exprs = panel_exprs(panel);
        if exprs.is_empty() || exprs.iter().any(|e| e.trim().is_empty()) {
            problems.push(format!("{title}: a target without a PromQL expr"));
        }
        for expr in exprs {
            // Template variables: only $__rate_interval and $queue.
            for (i, _) in expr.match_indices('$') {
                let name: String = expr[i + 1..]
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !DASHBOARD_VARIABLES.contains(&name.as_str()) {
                    problems.push(format!("{title}: variable ${name} in {expr}"));
                }
            }
            // Rates and increases over Grafana's $__rate_interval, never a fixed window.
            for (i, _) in expr.match_indices('[') {
                if !expr[i..].starts_with("[$__rate_interval]") {
                    problems.push(format!(
                        "{title}: a range other than $__rate_interval in {expr}"
                    ));
                }
            }
        }
    }
    // No hard-coded datasource: every reference is the `datasource` variable.
    fn datasources<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "datasource" {
                        out.push(v);
                    }
                    datasources(v, out);
                }
            }
            Value::Array(values) => values.iter().for_each(|v| datasources(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    datasources(&dashboard, &mut refs);
    for ds in refs {
        if !matches!(ds["uid"].as_str(), Some("${datasource}" | "$datasource")) {
            problems.push(format!("a datasource that is not ${{datasource}}: {ds}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool checks PromQL only inside rule files: one recording rule per panel query.
    let dashboard = dashboard();
    let rules: Vec<Rule> = panels(&dashboard)
        .into_iter()
        .flat_map(panel_exprs)
        .enumerate()
        .map(|(i, expr)| Rule {
            record: Some(format!("dashboard:query_{i}:check")),
            expr: substituted(expr),
            ..Rule::default()
        })
        .collect();
    assert!(!rules.is_empty(), "no panel query");
    let file = RuleFile {
        groups: vec![RuleGroup {
            name: "flint.json".to_owned(),
            rules,
        }],
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashboard.yml"),
        serde_norway::to_string(&file).unwrap(),
    )
    .unwrap();
    let output = promtool(dir.path(), &["check", "rules", "dashboard.yml"]);
    assert_success(
        "promtool check rules on flint.json's panel queries",
        &output,
    );
}

/// Whether `text` reads `metric` (a histogram through its `_bucket`, `_sum` or `_count`
/// series), as a whole name: `flint_payments_requiring_attention` is not read by a query of
/// `flint_payments_requiring_attention_total`.
fn reads(text: &str, metric: &str, histogram: bool) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.match_indices(metric).any(|(i, _)| {
        if text[..i].chars().next_back().is_some_and(ident) {
            return false;
        }
        let rest = &text[i + metric.len()..];
        let rest = if histogram {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| rest.strip_prefix(s))
                .unwrap_or(rest)
        } else {
            rest
        };
        !rest.chars().next().is_some_and(ident)
    })
}

#[test]
fn every_exported_metric_is_in_a_rule_or_on_the_dashboard() {
    let mut exprs: Vec<String> = [RULES, ALERTS]
        .into_iter()
        .flat_map(|f| rule_file(f).groups)
        .flat_map(|g| g.rules)
        .map(|r| r.expr)
        .collect();
    let dashboard = dashboard();
    exprs.extend(
        panels(&dashboard)
            .into_iter()
            .flat_map(panel_exprs)
            .map(str::to_owned),
    );
    let text = exprs.join("\n");
    let unwatched: Vec<&str> = catalogue::ALL
        .iter()
        .filter(|m| !reads(&text, m.name, matches!(m.kind, Kind::Histogram(_))))
        .map(|m| m.name)
        .collect();
    assert!(
        unwatched.is_empty(),
        "exported but in no rule and on no dashboard panel: {unwatched:?}"
    );
}

#[test]
fn a_metric_is_read_only_under_its_whole_name() {
    assert!(reads(
        "max(flint_webhook_pending)",
        "flint_webhook_pending",
        false
    ));
    assert!(!reads(
        "rate(flint_payments_requiring_attention_total[5m])",
        "flint_payments_requiring_attention",
        false
    ));
    assert!(reads(
        "rate(flint_charge_attempt_duration_seconds_bucket[5m])",
        "flint_charge_attempt_duration_seconds",
        true
    ));
    assert!(!reads("flint:queue_jobs:max", "flint_queue_jobs", false));
}
