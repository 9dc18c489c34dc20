//! The real `flint` binary: help texts, `config check`, and `flint sandbox` as a process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const FLINT: &str = env!("CARGO_BIN_EXE_flint");

/// A command with a clean Flint environment and an empty config dir, so the machine's own
/// environment cannot change the outcome.
fn flint(config_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(FLINT);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLINT") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("FLINT_CONFIG_DIR", config_dir);
    cmd
}

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/base.toml"),
        dir.path().join("base.toml"),
    )
    .unwrap();
    dir
}

#[test]
fn every_subcommand_explains_itself() {
    let dir = config_dir();
    for args in [
        vec!["--help"],
        vec!["sandbox", "--help"],
        vec!["config", "check", "--help"],
        vec!["config", "partitions", "--help"],
        vec!["bench", "sandbox", "--help"],
        vec!["payments", "--help"],
        vec!["payments", "create", "--help"],
        vec!["payments", "timeline", "--help"],
        vec!["events", "--help"],
        vec!["webhooks", "--help"],
        vec!["webhooks", "rotate-secret", "--help"],
        vec!["dead", "--help"],
        vec!["import", "--help"],
    ] {
        let out = flint(dir.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(text.len() > 200, "{args:?} help is too thin: {text}");
    }
    let top = String::from_utf8(flint(dir.path()).arg("--help").output().unwrap().stdout).unwrap();
    for word in ["sandbox", "config", "FLINT__", "--config"] {
        assert!(top.contains(word), "top-level help lacks {word}: {top}");
    }
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = config_dir();
    let out = flint(dir.path())
        .args(["config", "check"])
        .env("FLINT__REDIS__URL", "redis://:hunter2@127.0.0.1:6390")
        .env("FLINT__SANDBOX__LISTEN", "127.0.0.1:4242")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:4242\""), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("sk_test_flint") && !text.contains("whsec_"),
        "{text}"
    );
    assert!(text.contains("[redacted]"));
}

#[test]
fn the_local_and_production_overlays_load_and_production_keeps_the_safe_values() {
    let repo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"));
    let check = |env: &str| {
        let out = flint(repo)
            .args(["config", "check"])
            .env("FLINT_ENV", env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{env}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let local = check("local");
    assert!(local.contains("format = \"text\""), "{local}");
    assert!(
        local.contains("api_base = \"http://127.0.0.1:12111\""),
        "{local}"
    );
    assert!(local.contains("id = \"local\""), "{local}");
    let production = check("production");
    for safe in [
        "format = \"json\"",
        "api_base = \"https://api.stripe.com\"",
        "allow_http = false",
        "allow_private_networks = false",
    ] {
        assert!(production.contains(safe), "{safe}: {production}");
    }
    assert!(!production.contains("sk_test"), "{production}");
}

#[test]
fn config_check_names_the_bad_key_and_fails() {
    let dir = config_dir();
    let out = flint(dir.path())
        .args(["config", "check"])
        .env("FLINT__SANDBOX__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("sandbox.listen") && err.contains("FLINT__SANDBOX__LISTEN"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("extra.toml"),
        "[sandbox]\nlisten_typo = 1\n",
    )
    .unwrap();
    let out = flint(dir.path())
        .args(["config", "check", "--config"])
        .arg(dir.path().join("extra.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("listen_typo") && err.contains("extra.toml"),
        "{err}"
    );

    let out = flint(dir.path())
        .args(["config", "check"])
        .env("FLINT_ENV", "nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("FLINT_ENV=nowhere")
    );
}

#[test]
fn flint_sandbox_serves_stripes_api_until_terminated() {
    let dir = config_dir();
    let mut child = flint(dir.path())
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .env("FLINT__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/customers"))
            .bearer_auth("sk_test_flint")
            .form(&[("name", "cli")])
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    let status = flint_testkit::process::terminate(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let dir = config_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = flint(dir.path())
        .args(["sandbox", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn flint_enqueuer_serves_the_api_until_terminated() {
    let dir = config_dir();
    let redis = flint_testkit::redis::RedisServer::start();
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")
    let file = dir.path().join("enqueuer.toml");
    std::fs::write(
        &file,
        format!(
            "[redis]\nurl = \"{}\"\n[[tenants]]\nid = \"acme\"\napi_key_sha256 = \"{digest}\"\nprocessor_secret_key = \"sk_test_acme\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let mut child = flint(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["enqueuer", "--listen", "127.0.0.1:0"])
        .env("FLINT__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/off_session_payments"))
            .bearer_auth("test")
            .header("Idempotency-Key", "cli-1")
            .json(&serde_json::json!({
                "customer": "cus_1", "amount": {"value": 1000, "currency": "eur"}, "purpose": "repeat_purchase",
                "initiated_by": {"type": "service", "id": "shop"}
            }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 202);
    let status = flint_testkit::process::terminate(&mut child, Duration::from_secs(10));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn flint_enqueuer_refuses_to_start_without_tenants() {
    let dir = config_dir();
    let out = flint(dir.path())
        .args(["enqueuer", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no [[tenants]]")
    );
}

#[test]
fn flint_dev_runs_the_whole_stack_and_its_demo_ends_each_payment_as_its_card_says() {
    let dir = config_dir();
    let mut child = flint(dir.path())
        .args(["dev", "--demo", "--api-listen", "127.0.0.1:0"])
        .env("FLINT__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops everything");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("API          http://127.0.0.1:"), "{text}");
    for (card, status) in [
        ("pm_card_visa ", "succeeded"),
        ("pm_card_chargeDeclinedInsufficientFunds", "failed"),
        ("pm_card_chargeDeclinedLostCard", "failed"),
        ("pm_card_authenticationRequired", "paused"),
    ] {
        let line = seen
            .iter()
            .find(|l| l.contains("osp_") && l.contains(card))
            .unwrap_or_else(|| panic!("{card} missing:\n{text}"));
        assert!(line.contains(status), "{card}: {line}");
    }
    let status = flint_testkit::process::terminate(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[test]
fn config_partitions_prints_each_partitions_tag_slot_and_streams() {
    let dir = config_dir();
    let out = flint(dir.path())
        .args(["config", "partitions", "--json"])
        .env("FLINT__QUEUE__PARTITIONS", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let partitions = flint_shared::partition::Partitions::new("charges", 3);
    assert_eq!(rows.len(), 3);
    for (p, row) in rows.iter().enumerate() {
        let tag = partitions.tag(p);
        assert_eq!(row["partition"], p);
        assert_eq!(row["tag"], tag);
        assert_eq!(
            row["slot"],
            flint_shared::partition::key_slot(&format!("{{{tag}}}"))
        );
        assert_eq!(
            row["charge_stream"],
            format!("flint:{{{tag}}}:charges:stream")
        );
        assert_eq!(
            row["webhook_stream"],
            format!("flint:{{{tag}}}:webhooks:stream")
        );
    }
    // One partition: the layout Flint always had.
    let out = flint(dir.path())
        .args(["config", "partitions"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("flint:{charges}:stream") && text.contains("flint:{charges}:webhooks:stream"),
        "{text}"
    );
}

#[test]
fn the_queue_keys_of_the_enqueuer_and_worker_sections_moved_to_one_queue_section() {
    let dir = config_dir();
    for (var, key) in [
        ("FLINT__ENQUEUER__QUEUE", "enqueuer.queue"),
        ("FLINT__WORKER__QUEUE", "worker.queue"),
    ] {
        let out = flint(dir.path())
            .args(["config", "check"])
            .env(var, "charges")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(key) && err.contains("[queue] name"), "{err}");
    }
    for (var, key) in [
        ("FLINT__QUEUE__NAME", "queue.name"),
        ("FLINT__WEBHOOKS__QUEUE", "webhooks.queue"),
    ] {
        let out = flint(dir.path())
            .args(["config", "check"])
            .env(var, "idx")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(key) && err.contains("keys of Flint's own"),
            "{err}"
        );
    }
    let out = flint(dir.path())
        .args(["config", "check"])
        .env("FLINT__QUEUE__PARTITIONS", "65")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("queue.partitions") && err.contains("between 1 and 64"),
        "{err}"
    );
}
