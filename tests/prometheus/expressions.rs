//! The expressions under test, read from the rule files and the Grafana dashboard, and one
//! round of evaluating them all through Prometheus's query API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::promql;
use crate::server::Prometheus;

#[derive(Debug, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
pub struct RuleGroup {
    name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
pub struct Rule {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
}

pub fn rule_file(path: &Path) -> RuleFile {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What an expression must do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Must {
    /// Evaluate without error and return data.
    HaveData,
    /// Evaluate without error (an alert's condition, rightly empty while healthy).
    Evaluate,
}

#[derive(Debug)]
pub struct Check {
    /// Where the expression comes from, for the failure message.
    origin: String,
    expr: String,
    must: Must,
}

/// The rules' and alerts' expressions, and each alert's selectors.
pub fn rule_checks(files: &[PathBuf]) -> Vec<Check> {
    let mut checks = Vec::new();
    for path in files {
        let file_name = path.file_name().unwrap().to_string_lossy();
        for group in rule_file(path).groups {
            for rule in group.rules {
                match (&rule.record, &rule.alert) {
                    (Some(record), _) => checks.push(Check {
                        origin: format!("{file_name} group {} record {record}", group.name),
                        expr: rule.expr,
                        must: Must::HaveData,
                    }),
                    (None, Some(alert)) => {
                        for selector in promql::selectors(&rule.expr) {
                            checks.push(Check {
                                origin: format!("{file_name} alert {alert}: selector"),
                                expr: selector,
                                must: Must::HaveData,
                            });
                        }
                        checks.push(Check {
                            origin: format!("{file_name} group {} alert {alert}", group.name),
                            expr: rule.expr,
                            must: Must::Evaluate,
                        });
                    }
                    (None, None) => panic!("{file_name}: a rule with neither record nor alert"),
                }
            }
        }
    }
    checks
}

/// Every panel target's `expr` in the dashboard (rows' nested panels included), with the
/// panel's title.
pub fn panel_targets(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let id = target["refId"].as_str().unwrap_or("?");
                    out.push((format!("panel {title:?} target {id}"), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Values for the dashboard's template variables: Grafana's built-ins at a 15 s interval and
/// a 5 m range, `queue` = charges, and for each variable the dashboard defines its current
/// or first value, asking Prometheus for a query variable's values (`label_values(…)`).
pub async fn dashboard_vars(dashboard: &Value, prometheus: &Prometheus) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__interval_ms", "15000"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("queue", "charges"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        if vars.contains_key(name) {
            continue;
        }
        let current = match &var["current"]["value"] {
            Value::String(s) if !s.is_empty() && s != "$__all" => Some(s.clone()),
            Value::Array(values) => values
                .iter()
                .filter_map(Value::as_str)
                .find(|v| *v != "$__all")
                .map(str::to_owned),
            _ => None,
        };
        let query = match &var["query"] {
            Value::String(q) => q.clone(),
            Value::Object(q) => q
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        let value = match var["type"].as_str().unwrap_or_default() {
            "query" => match label_values_query(&query) {
                Some((label, selector)) => prometheus
                    .label_values(&label, selector.as_deref())
                    .await
                    .into_iter()
                    .next()
                    .or(current),
                None => current,
            },
            "interval" => Some(current.unwrap_or_else(|| "1m".to_owned())),
            "datasource" => Some(current.unwrap_or_else(|| "prometheus".to_owned())),
            _ => current.or_else(|| {
                query
                    .split(',')
                    .map(str::trim)
                    .find(|v| !v.is_empty())
                    .map(str::to_owned)
            }),
        };
        if let Some(value) = value {
            vars.insert(name.to_owned(), value);
        }
    }
    vars
}

/// `label_values(selector, label)` or `label_values(label)` → (label, selector).
fn label_values_query(query: &str) -> Option<(String, Option<String>)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((label.trim().to_owned(), Some(selector.trim().to_owned())))
        }
        None => Some((inner.trim().to_owned(), None)),
    }
}

/// One round: each check's problem, if it has one (an error, no data, an unknown variable).
pub async fn evaluate(
    prometheus: &Prometheus,
    checks: &[Check],
    panels: &[(String, String)],
    vars: &HashMap<String, String>,
) -> (Vec<String>, bool) {
    let mut problems = Vec::new();
    let mut parse_error = false;
    let panel_checks = panels.iter().map(|(origin, expr)| {
        (
            format!("flint.json {origin}"),
            promql::substitute(expr, vars),
            Must::HaveData,
        )
    });
    let all = checks
        .iter()
        .map(|c| (c.origin.clone(), Ok(c.expr.clone()), c.must))
        .chain(panel_checks);
    for (origin, expr, must) in all {
        let expr = match expr {
            Ok(expr) => expr,
            Err(unknown) => {
                problems.push(format!(
                    "{origin}: no value for template variables {unknown:?}"
                ));
                continue;
            }
        };
        match prometheus.query(&expr).await {
            Err(e) => {
                parse_error |= e.kind == "bad_data";
                problems.push(format!(
                    "{origin}: error ({}) {}\n    {expr}",
                    e.kind, e.message
                ));
            }
            Ok(0) if must == Must::HaveData => {
                problems.push(format!("{origin}: no data\n    {expr}"));
            }
            Ok(_) => {}
        }
    }
    (problems, parse_error)
}
