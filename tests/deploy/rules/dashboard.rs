//! The Grafana dashboard: every panel has a title, a description, a unit and valid PromQL over
//! the allowed variables, and every datasource is the `datasource` variable.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Rule, RuleFile, RuleGroup, assert_success, dashboard, panel_exprs, panels, promtool};

const DASHBOARD_UID: &str = "flint-off-session";
/// The only template variables a panel query may use (besides the datasource's).
const DASHBOARD_VARIABLES: [&str; 2] = ["__rate_interval", "queue"];

/// A panel query as Prometheus would receive it: `$__rate_interval` = 1m, `$queue` = charges.
fn substituted(expr: &str) -> String {
    expr.replace("${__rate_interval}", "1m")
        .replace("$__rate_interval", "1m")
        .replace("${queue}", "charges")
        .replace("$queue", "charges")
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
