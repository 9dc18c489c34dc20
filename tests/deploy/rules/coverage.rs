//! Every metric Flint exports is watched (read by a rule or shown on a dashboard panel) and
//! documented in the README's metrics reference.

use flint_shared::telemetry::catalogue::{self, Kind};

use super::{ALERTS, RULES, dashboard, panel_exprs, panels, read, repo, rule_file};

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
fn every_exported_metric_is_in_the_readmes_metrics_reference() {
    let readme = read(&repo("README.md"));
    let start = readme
        .find("## Metrics reference")
        .expect("README.md has a metrics reference");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let missing: Vec<&str> = catalogue::ALL
        .iter()
        .filter(|m| !section.contains(&format!("| `{}` |", m.name)))
        .map(|m| m.name)
        .collect();
    assert!(
        missing.is_empty(),
        "exported but not in the README's metrics reference table: {missing:?}"
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
