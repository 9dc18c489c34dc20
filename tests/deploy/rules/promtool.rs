//! promtool validates the recording and alerting rules and runs their unit tests, which load
//! both rule files and evaluate the recording rules first.

use super::{
    ALERTS, RULES, TESTS, assert_success, prometheus_dir, promtool, rule_file, unit_tests,
};

const RECORDING_GROUP: &str = "flint.rules";
const ALERTING_GROUP: &str = "flint.alerts";

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
