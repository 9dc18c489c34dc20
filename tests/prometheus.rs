//! Flint's monitoring, checked against the real thing: a real `prometheus` server (the Debian
//! package `prometheus`) scrapes a real fleet (`flint enqueuer` and two `flint worker`
//! processes, Redis, the sandbox as processor, a webhook receiver) every second while a small
//! load runs (successes, soft and hard declines, radar blocks, an idempotent replay, processor
//! 429s and 5xx, a low fleet rate limit, failing webhook deliveries), and loads
//! deploy/prometheus/rules.yml and alerts.yml. Then, through Prometheus's query API:
//!
//! - every expression (recording rules, alerts, the Grafana dashboard's panel targets with its
//!   template variables filled in) evaluates without error;
//! - every recording rule's and every panel's expression returns data;
//! - for each alert, which is rightly empty while healthy, every series it reads (its vector
//!   selectors, recorded series included) has data.
//!
//! And `promtool check metrics` (same package) accepts the enqueuer's and the workers'
//! `/metrics`.

#[path = "prometheus/expressions.rs"]
mod expressions;
#[expect(
    dead_code,
    reason = "this test runs the API as its own `flint enqueuer` process, not fleet::api"
)]
mod fleet;
#[path = "prometheus/load.rs"]
mod load;
#[path = "prometheus/promql.rs"]
mod promql;
#[path = "prometheus/server.rs"]
mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use expressions::{dashboard_vars, evaluate, panel_targets, rule_checks, rule_file};
use load::Fleet;
use serde_json::Value;
use server::Prometheus;

/// How long the expressions may take to all return data once the load has run.
const DATA_DEADLINE: Duration = Duration::from_secs(90);
const ENQUEUER_JOB: &str = "flint-enqueuer";
const WORKER_JOB: &str = "flint-worker";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rule_alert_and_dashboard_expression_works_in_a_real_prometheus() {
    let rule_files = [
        repo("deploy/prometheus/rules.yml"),
        repo("deploy/prometheus/alerts.yml"),
    ];
    let checks = rule_checks(&rule_files);
    let dashboard_file = repo("deploy/grafana/flint.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_file)
            .unwrap_or_else(|e| panic!("{}: {e}", dashboard_file.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dashboard_file.display()));
    let panels = panel_targets(&dashboard);
    assert!(!panels.is_empty(), "no panel targets in flint.json");

    let http = reqwest::Client::new();
    let fleet = Fleet::start(&http).await;
    let prometheus_dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(
        prometheus_dir.path(),
        &[
            (ENQUEUER_JOB, vec![fleet.enqueuer.addr.clone()]),
            (
                WORKER_JOB,
                fleet.workers.iter().map(|w| w.addr.clone()).collect(),
            ),
        ],
        &rule_files,
    )
    .await;
    prometheus.wait_for_targets(3).await;
    let (loaded, _) = prometheus.rules().await;
    let in_files: usize = rule_files
        .iter()
        .map(|f| {
            rule_file(f)
                .groups
                .iter()
                .map(|g| g.rules.len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(loaded.len(), in_files, "prometheus loaded {loaded:?}");

    fleet.drive_load(&http).await;

    let deadline = Instant::now() + DATA_DEADLINE;
    let problems = loop {
        let vars = dashboard_vars(&dashboard, &prometheus).await;
        let (mut problems, parse_error) = evaluate(&prometheus, &checks, &panels, &vars).await;
        let (_, failing_rules) = prometheus.rules().await;
        problems.extend(failing_rules);
        if problems.is_empty() || parse_error || Instant::now() >= deadline {
            break problems;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        problems.is_empty(),
        "{} of {} expressions (rules, alerts and their selectors: {}, panel targets: {}) \
         failed after the load (waited up to {DATA_DEADLINE:?} for data):\n{}",
        problems.len(),
        checks.len() + panels.len(),
        checks.len(),
        panels.len(),
        problems.join("\n")
    );
    eprintln!(
        "{} rule and alert checks and {} panel targets passed; {} rules loaded",
        checks.len(),
        panels.len(),
        loaded.len()
    );
}

/// `promtool check metrics` on `text`: its exit status and output.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run `promtool` ({e}): install the Debian package `prometheus` \
             (apt-get install prometheus), which provides /usr/bin/promtool"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promtool_accepts_the_metrics_of_the_enqueuer_and_the_workers() {
    let http = reqwest::Client::new();
    let fleet = Fleet::start(&http).await;
    fleet.drive_load(&http).await;
    let mut failures = Vec::new();
    let targets = std::iter::once(("enqueuer", &fleet.enqueuer))
        .chain(fleet.workers.iter().map(|w| ("worker", w)));
    for (role, process) in targets {
        let text = process.metrics(&http).await;
        assert!(
            text.contains("# TYPE flint_"),
            "{role} {}: no Flint metrics in\n{text}",
            process.addr
        );
        let (ok, report) = promtool_check_metrics(&text);
        if !ok {
            failures.push(format!("{role} {}/metrics:\n{report}", process.addr));
        }
    }
    assert!(
        failures.is_empty(),
        "promtool check metrics failed:\n{}",
        failures.join("\n")
    );
}
