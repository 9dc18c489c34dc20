//! `flint bench cost` as a process: a short run whose JSON summary holds plausible figures.

use std::process::Command;

use serde_json::Value;

const FLINT: &str = env!("CARGO_BIN_EXE_flint");

#[test]
fn bench_cost_reports_memory_and_cpu_per_payment() {
    let out = Command::new(FLINT)
        .args([
            "bench",
            "cost",
            "--pending",
            "200",
            "--payments",
            "100",
            "--card",
            "default",
            "--json",
        ])
        .env("FLINT__LOG__LEVEL", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    let storages: Vec<(&str, bool)> = runs
        .iter()
        .map(|r| {
            (
                r["storage_format"].as_str().unwrap(),
                r["unfiltered_indexes"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        storages,
        [("json", true), ("compact", true), ("compact", false)]
    );
    let bytes = |r: &Value| r["memory"]["bytes_per_payment"].as_f64().unwrap();
    assert!(
        bytes(&runs[2]) < bytes(&runs[1]) && bytes(&runs[1]) < bytes(&runs[0]),
        "compact without the unfiltered indexes {} bytes, compact {}, json {}",
        bytes(&runs[2]),
        bytes(&runs[1]),
        bytes(&runs[0])
    );
    for run in runs {
        check_run(run);
    }
}

fn check_run(run: &Value) {
    let memory = &run["memory"];
    let bytes = memory["bytes_per_payment"].as_f64().unwrap();
    assert!((100.0..100_000.0).contains(&bytes), "{memory}");
    let kinds = memory["kinds"].as_array().unwrap();
    assert!(
        kinds.iter().any(|k| k["kind"] == "pay:*"),
        "no payment records among {kinds:?}"
    );

    let cpu = &run["cpu"];
    assert!(
        cpu["redis_cpu_us_per_payment"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    assert!(
        cpu["ceiling_payments_per_sec"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    let commands = cpu["commandstats"].as_array().unwrap();
    let evalsha = commands
        .iter()
        .find(|c| c["command"] == "evalsha")
        .unwrap_or_else(|| panic!("no evalsha in {commands:?}"));
    assert!(
        evalsha["calls_per_payment"].as_f64().unwrap() >= 1.0,
        "{evalsha}"
    );
}
