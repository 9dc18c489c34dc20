//! What promtool cannot check in the rules: every alert is tested both firing and quiet and
//! carries a severity, a wait and what the on-call needs, and every recording rule is named
//! level:metric:operations.

use std::collections::{BTreeMap, BTreeSet};

use super::{ALERTS, RULES, Rule, TESTS, read, repo, rule_file, unit_tests};

const SEVERITIES: [&str; 2] = ["page", "ticket"];

/// Every alerting rule of alerts.yml.
fn alerts() -> Vec<Rule> {
    let file = rule_file(ALERTS);
    let rules: Vec<Rule> = file.groups.into_iter().flat_map(|g| g.rules).collect();
    assert!(!rules.is_empty(), "no alert in {ALERTS}");
    rules
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
