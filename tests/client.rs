//! `flint` as a client, the real binary against a running stack (the API, a worker process, the
//! sandbox, Redis): every command, human and `--json` output, bad input with its documented
//! exit code, dead letters from Redis, and a billing-run import run twice.

mod fleet;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use flint_queue::{NewJob, Queue, QueueConfig};
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use flint_testkit::{poll_until, process};
use serde_json::Value;

const API_KEY: &str = "client-test-key";

/// A worker process that is killed however the test ends (a failed assertion included).
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `flint` with `args` against `api`, in a clean environment, off the async runtime.
async fn flint(api: &str, config: Option<&Path>, args: &[&str]) -> Ran {
    let mut cmd = Command::new(fleet::FLINT);
    for (key, _) in std::env::vars() {
        if key.starts_with("FLINT") {
            cmd.env_remove(key);
        }
    }
    cmd.env("FLINT_API_URL", api).env("FLINT_API_KEY", API_KEY);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(args);
    let out: Output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(ran: &Ran) {
    assert_eq!(
        ran.code, 0,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
}

/// A failure: the code, and one line on stderr that contains `says`.
fn fails(ran: &Ran, code: i32, says: &str) {
    assert_eq!(
        ran.code, code,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    assert!(ran.stderr.contains(says), "{:?} lacks {says:?}", ran.stderr);
    let stderr: String = ran
        .stderr
        .lines()
        .filter(|l| !l.starts_with("idempotency key:"))
        .collect::<Vec<_>>()
        .join("\n");
    if code != 2 {
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_command_works_against_a_running_stack_and_bad_input_gets_its_exit_code() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let api = fleet::api(&redis, API_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        "lease_secs = 2\nretry_delays_ms = [3600000]",
        "max_network_retries = 1\n[webhooks]\nallow_http = true\nallow_private_networks = true\n\
         retry_for_secs = 1\nfirst_retry_delay_ms = 50",
    );
    let mut worker = fleet::start_worker(&config);
    let (customer, card) = sandbox.customer_with_card("pm_card_visa").await;
    let (poor_customer, poor) = sandbox
        .customer_with_card("pm_card_chargeDeclinedInsufficientFunds")
        .await;
    let (lost_customer, lost) = sandbox
        .customer_with_card("pm_card_chargeDeclinedLostCard")
        .await;

    // payments create: every field as a flag; the key is generated and printed.
    let created = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &customer,
            "--payment-method",
            &card,
            "--amount",
            "2500",
            "--currency",
            "usd",
            "--purpose",
            "support",
            "--operator",
            "ann",
            "--reason",
            "goodwill charge agreed by phone",
            "--invoice-id",
            "in_9",
            "--metadata",
            "ticket=T-1",
            "--description",
            "support charge",
        ],
    )
    .await;
    ok(&created);
    assert!(
        created.stderr.contains("idempotency key: cli-"),
        "{}",
        created.stderr
    );
    let id = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("osp_"))
        .unwrap()
        .to_owned();
    poll_until(
        Duration::from_secs(30),
        "the payment to succeed",
        || async {
            let got = flint(&api, None, &["payments", "get", &id, "--json"]).await;
            (got.code == 0 && got.json()["status"] == "succeeded").then_some(())
        },
    )
    .await;
    // The same key again: the same payment, said so.
    let again = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &customer,
            "--payment-method",
            &card,
            "--amount",
            "2500",
            "--currency",
            "usd",
            "--purpose",
            "subscription",
            "--idempotency-key",
            "fixed-key",
        ],
    )
    .await;
    ok(&again);
    let replay = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &customer,
            "--payment-method",
            &card,
            "--amount",
            "2500",
            "--currency",
            "usd",
            "--purpose",
            "subscription",
            "--idempotency-key",
            "fixed-key",
        ],
    )
    .await;
    ok(&replay);
    assert!(
        replay
            .stdout
            .contains("already created with this idempotency key"),
        "{}",
        replay.stdout
    );

    // get, list, timeline: human and JSON.
    let got = flint(&api, None, &["payments", "get", &id]).await;
    ok(&got);
    assert!(
        got.stdout.contains(&format!("{id}  succeeded  2500 USD")),
        "{}",
        got.stdout
    );
    let listed = flint(
        &api,
        None,
        &["payments", "list", "--customer", &customer, "--json"],
    )
    .await;
    ok(&listed);
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 2);
    let timeline = flint(&api, None, &["payments", "timeline", &id]).await;
    ok(&timeline);
    for expected in [
        "ATTEMPTS",
        "succeeded",
        "TIMELINE",
        "created",
        "operator ann",
        "goodwill charge agreed by phone",
    ] {
        assert!(
            timeline.stdout.contains(expected),
            "{expected}: {}",
            timeline.stdout
        );
    }

    // A hard decline's timeline names the decision and the code.
    let declined = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &lost_customer,
            "--payment-method",
            &lost,
            "--amount",
            "100",
            "--currency",
            "usd",
            "--purpose",
            "repeat_purchase",
            "--json",
        ],
    )
    .await;
    ok(&declined);
    let declined_id = declined.json()["id"].as_str().unwrap().to_owned();
    poll_until(Duration::from_secs(30), "the decline", || async {
        let got = flint(&api, None, &["payments", "get", &declined_id, "--json"]).await;
        (got.json()["status"] == "failed").then_some(())
    })
    .await;
    let timeline = flint(&api, None, &["payments", "timeline", &declined_id]).await;
    assert!(
        timeline.stdout.contains("hard_decline"),
        "{}",
        timeline.stdout
    );
    assert!(timeline.stdout.contains("lost_card"), "{}", timeline.stdout);

    // retry-now: a soft decline waits an hour for its retry; support charges it now.
    let soft = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &poor_customer,
            "--payment-method",
            &poor,
            "--amount",
            "300",
            "--currency",
            "usd",
            "--purpose",
            "balance_recovery",
            "--max-attempts",
            "2",
            "--json",
        ],
    )
    .await;
    ok(&soft);
    let soft_id = soft.json()["id"].as_str().unwrap().to_owned();
    poll_until(Duration::from_secs(30), "the first decline", || async {
        let got = flint(&api, None, &["payments", "get", &soft_id, "--json"])
            .await
            .json();
        (got["status"] == "pending" && got["attempts"].as_array().is_some_and(|a| a.len() == 1))
            .then_some(())
    })
    .await;
    let now = flint(
        &api,
        None,
        &[
            "payments",
            "retry-now",
            &soft_id,
            "--operator",
            "bob",
            "--reason",
            "customer topped up",
        ],
    )
    .await;
    ok(&now);
    poll_until(Duration::from_secs(30), "the second attempt", || async {
        let got = flint(&api, None, &["payments", "get", &soft_id, "--json"])
            .await
            .json();
        (got["status"] == "failed").then_some(())
    })
    .await;
    let timeline = flint(&api, None, &["payments", "timeline", &soft_id]).await;
    assert!(
        timeline.stdout.contains("retry now: customer topped up"),
        "{}",
        timeline.stdout
    );

    // cancel and resume of a scheduled payment; retry-now refuses what is not waiting.
    let later = flint_shared::time::Timestamp::now()
        .plus(Duration::from_secs(3600))
        .to_string();
    let scheduled = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &customer,
            "--amount",
            "700",
            "--currency",
            "eur",
            "--purpose",
            "balance_recovery",
            "--charge-at",
            &later,
            "--json",
        ],
    )
    .await;
    ok(&scheduled);
    let scheduled_id = scheduled.json()["id"].as_str().unwrap().to_owned();
    fails(
        &flint(&api, None, &["payments", "retry-now", &scheduled_id]).await,
        3,
        "a pending one waiting for a retry can be resumed",
    );
    fails(
        &flint(
            &api,
            None,
            &["payments", "cancel", &scheduled_id, "--operator", "ann"],
        )
        .await,
        2,
        "--operator needs --reason",
    );
    let canceled = flint(
        &api,
        None,
        &[
            "payments",
            "cancel",
            &scheduled_id,
            "--operator",
            "ann",
            "--reason",
            "duplicate invoice",
        ],
    )
    .await;
    ok(&canceled);
    assert!(canceled.stdout.contains("canceled"), "{}", canceled.stdout);
    fails(
        &flint(&api, None, &["payments", "resume", &scheduled_id]).await,
        3,
        "payment_not_resumable",
    );

    // events: list, get, redeliver (no endpoint yet: refused).
    let events = flint(
        &api,
        None,
        &["events", "list", "--payment", &scheduled_id, "--json"],
    )
    .await;
    ok(&events);
    let event_id = events.json()["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        events.json()["data"][0]["type"],
        "off_session_payment.canceled"
    );
    let event = flint(&api, None, &["events", "get", &event_id]).await;
    ok(&event);
    assert!(
        event.stdout.contains("by operator ann: duplicate invoice"),
        "{}",
        event.stdout
    );
    fails(
        &flint(&api, None, &["events", "redeliver", &event_id]).await,
        3,
        "no_webhook_endpoint",
    );

    // webhooks: create (the secret shown once), list, update, rotate, redeliver, delete.
    let made = flint(
        &api,
        None,
        &[
            "webhooks",
            "create",
            "--url",
            "http://127.0.0.1:9/hooks",
            "--events",
            "*",
            "--json",
        ],
    )
    .await;
    ok(&made);
    let endpoint = made.json()["id"].as_str().unwrap().to_owned();
    assert!(
        made.json()["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let listed = flint(&api, None, &["webhooks", "list"]).await;
    ok(&listed);
    assert!(
        listed.stdout.contains(&endpoint) && !listed.stdout.contains("whsec_"),
        "{}",
        listed.stdout
    );
    let updated = flint(&api, None, &["webhooks", "update", &endpoint, "--disable"]).await;
    ok(&updated);
    assert!(updated.stdout.contains("disabled"), "{}", updated.stdout);
    fails(
        &flint(&api, None, &["webhooks", "update", &endpoint]).await,
        2,
        "nothing to change",
    );
    fails(
        &flint(
            &api,
            None,
            &["webhooks", "update", &endpoint, "--url", "ftp://x"],
        )
        .await,
        3,
        "url:",
    );
    let rotated = flint(&api, None, &["webhooks", "rotate-secret", &endpoint]).await;
    ok(&rotated);
    assert!(
        rotated.stdout.contains("secret (shown only now): whsec_"),
        "{}",
        rotated.stdout
    );
    ok(&flint(&api, None, &["webhooks", "update", &endpoint, "--enable"]).await);
    let redelivered = flint(&api, None, &["events", "redeliver", &event_id]).await;
    ok(&redelivered);
    assert!(
        redelivered.stdout.contains("queued for 1 endpoint"),
        "{}",
        redelivered.stdout
    );
    ok(&flint(&api, None, &["webhooks", "delete", &endpoint]).await);
    fails(
        &flint(&api, None, &["webhooks", "delete", &endpoint]).await,
        3,
        "resource_missing",
    );

    // Bad input, each with its code and one line naming the problem.
    fails(
        &flint(
            &api,
            None,
            &[
                "payments",
                "create",
                "--customer",
                &customer,
                "--amount",
                "0",
                "--currency",
                "usd",
                "--purpose",
                "subscription",
            ],
        )
        .await,
        3,
        "amount.value",
    );
    fails(
        &flint(
            &api,
            None,
            &[
                "payments",
                "create",
                "--customer",
                &customer,
                "--amount",
                "10",
                "--currency",
                "usd",
                "--purpose",
                "support",
            ],
        )
        .await,
        2,
        "--purpose support needs --operator and --reason",
    );
    fails(
        &flint(&api, None, &["payments", "create", "--amount", "10"]).await,
        2,
        "--customer",
    );
    fails(
        &flint(&api, None, &["payments", "get", "osp_nope"]).await,
        3,
        "resource_missing",
    );
    fails(
        &flint(&api, None, &["payments", "cancel", ".."]).await,
        2,
        "is not an id",
    );
    fails(
        &flint(&api, None, &["webhooks", "rotate-secret", "we_1/../x"]).await,
        2,
        "is not an id",
    );
    let failed_create = flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            "cus_1",
            "--amount",
            "-5",
            "--currency",
            "usd",
            "--purpose",
            "subscription",
        ],
    )
    .await;
    fails(&failed_create, 3, "to retry safely: --idempotency-key cli-");
    fails(
        &flint(&api, None, &["payments", "list", "--status", "lost"]).await,
        3,
        "status:",
    );
    let mut wrong_key = Command::new(fleet::FLINT);
    wrong_key.args(["payments", "list", "--api-url", &api, "--api-key", "wrong"]);
    let out = tokio::task::spawn_blocking(move || wrong_key.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A proxy in front of the API answering with an HTML page: the status decides.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let page = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>",
        )
    });
    tokio::spawn(async move { axum::serve(proxy, page).await.unwrap() });
    fails(
        &flint(&proxy_url, None, &["payments", "list"]).await,
        5,
        "HTTP 502",
    );
    let unreachable = flint("http://127.0.0.1:9", None, &["payments", "list"]).await;
    fails(&unreachable, 5, "cannot reach the API");
    assert!(
        !unreachable.stderr.contains(API_KEY),
        "the key is never printed"
    );

    // dead letters, straight from Redis with the configuration.
    let queue = Queue::connect(&redis.url(), QueueConfig::new("charges"))
        .await
        .unwrap();
    queue
        .push(NewJob::new(serde_json::json!({"not": "a charge"})).with_id("bogus-job"))
        .await
        .unwrap();
    let dead = poll_until(
        Duration::from_secs(30),
        "the undecodable job's dead letter",
        || async {
            let listed = flint(&api, Some(&config), &["dead", "list", "--json"]).await;
            let all = listed.json();
            all.as_array().and_then(|a| a.first().cloned())
        },
    )
    .await;
    assert_eq!(dead["job_id"], "bogus-job");
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    let shown = flint(&api, Some(&config), &["dead", "show", &dead_id]).await;
    ok(&shown);
    assert_eq!(shown.json()["job"], serde_json::json!({"not": "a charge"}));
    fails(
        &flint(&api, Some(&config), &["dead", "show", "nope"]).await,
        2,
        "not a dead letter id",
    );
    fails(
        &flint(
            &api,
            Some(&config),
            &["dead", "show", "99999999999999999999999-0"],
        )
        .await,
        2,
        "not a dead letter id",
    );
    fails(
        &flint(&api, Some(&config), &["dead", "show", "1-0"]).await,
        3,
        "no dead letter 1-0",
    );
    let human = flint(
        &api,
        Some(&config),
        &["dead", "list", "--queue", "webhooks"],
    )
    .await;
    ok(&human);
    assert!(human.stdout.contains("no dead letters"), "{}", human.stdout);
    // A webhook delivery that never gets through (nothing listens on port 9) is dead-lettered
    // after [webhooks] retry_for_secs, and replayed from here.
    let hook = flint(
        &api,
        None,
        &[
            "webhooks",
            "create",
            "--url",
            "http://127.0.0.1:9/hooks",
            "--events",
            "off_session_payment.created",
            "--json",
        ],
    )
    .await;
    ok(&hook);
    let later = flint_shared::time::Timestamp::now()
        .plus(Duration::from_secs(3600))
        .to_string();
    ok(&flint(
        &api,
        None,
        &[
            "payments",
            "create",
            "--customer",
            &customer,
            "--amount",
            "100",
            "--currency",
            "usd",
            "--purpose",
            "subscription",
            "--charge-at",
            &later,
        ],
    )
    .await);
    let dead_hook = poll_until(
        Duration::from_secs(30),
        "a dead webhook delivery",
        || async {
            let listed = flint(
                &api,
                Some(&config),
                &["dead", "list", "--queue", "webhooks", "--json"],
            )
            .await;
            listed.json().as_array().and_then(|a| a.first().cloned())
        },
    )
    .await;
    assert!(
        dead_hook["reason"]
            .as_str()
            .unwrap()
            .contains("last answer: unreachable"),
        "{dead_hook}"
    );
    let dead_hook_id = dead_hook["id"].as_str().unwrap().to_owned();
    let replayed = flint(
        &api,
        Some(&config),
        &["dead", "replay", "--queue", "webhooks", &dead_hook_id],
    )
    .await;
    ok(&replayed);
    assert!(replayed.stdout.contains("replayed"), "{}", replayed.stdout);
    process::terminate(&mut worker, Duration::from_secs(30));
    let replayed = flint(&api, Some(&config), &["dead", "replay", &dead_id]).await;
    ok(&replayed);
    assert!(replayed.stdout.contains("replayed"), "{}", replayed.stdout);
    let twice = flint(&api, Some(&config), &["dead", "replay", &dead_id]).await;
    fails(&twice, 3, "no dead letter");
    assert_eq!(queue.stats().await.unwrap().ready, 1, "replayed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_run_twice_creates_each_payment_once_and_reports_what_it_refused() {
    let redis = RedisServer::start();
    let api = fleet::api(&redis, API_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let later = flint_shared::time::Timestamp::now()
        .plus(Duration::from_secs(86_400))
        .to_string();
    let mut csv = String::from(
        "idempotency_key,customer,amount,currency,purpose,invoice_id,metadata.plan,charge_at\n",
    );
    for n in 0..200 {
        csv.push_str(&format!(
            "run-{n},cus_{n},{},usd,subscription,in_{n},pro,{later}\n",
            1000 + n
        ));
    }
    // A duplicate row (same key, same payment), and three malformed ones.
    csv.push_str(&format!(
        "run-7,cus_7,1007,usd,subscription,in_7,pro,{later}\n"
    ));
    csv.push_str(&format!(
        "bad-amount,cus_x,12.50,usd,subscription,in_x,pro,{later}\n"
    ));
    csv.push_str(&format!(
        "bad-currency,cus_x,100,zzz,subscription,in_x,pro,{later}\n"
    ));
    csv.push_str("short-row,cus_x\n");
    // The same key for another payment: always the later row that is refused.
    csv.push_str(&format!(
        "run-9,cus_9,99999,usd,subscription,in_9,pro,{later}\n"
    ));
    let file = dir.path().join("renewals.csv");
    std::fs::write(&file, csv).unwrap();
    let path = file.to_str().unwrap();

    let first = flint(&api, None, &["import", path, "--concurrency", "16"]).await;
    assert_eq!(first.code, 3, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("205 rows: 200 created, 1 already done, 4 rejected, 0 failed"),
        "{}",
        first.stdout
    );
    assert!(
        first.stderr.contains("flint import: 205/205 rows"),
        "plain progress off a terminal: {}",
        first.stderr
    );
    let report = std::fs::read_to_string(dir.path().join("renewals.csv.rejected.csv")).unwrap();
    assert!(
        report.contains("amount must be an integer in minor units"),
        "{report}"
    );
    assert!(
        report.contains("bad-currency") && report.contains("currency"),
        "{report}"
    );
    assert!(report.contains("cells, the header has"), "{report}");
    assert!(
        report.contains(
            "206,run-9,rejected,\"idempotency_key is also on line 11, for another payment\""
        ),
        "{report}"
    );
    assert!(report.contains("205,short-row,rejected"), "{report}");
    assert_eq!(report.lines().count(), 5, "{report}");

    let second = flint(&api, None, &["import", path]).await;
    assert!(
        second
            .stdout
            .contains("205 rows: 0 created, 201 already done, 4 rejected, 0 failed"),
        "{}",
        second.stdout
    );
    let json = flint(&api, None, &["import", path, "--json"]).await;
    assert_eq!(json.code, 3);
    assert_eq!(
        json.json(),
        serde_json::json!({
            "rows": 205, "created": 0, "already_done": 201, "rejected": 4, "failed": 0,
            "report": format!("{path}.rejected.csv"),
        })
    );
    let json = flint(&api, None, &["import", path, "--json"]).await;
    assert_eq!(json.code, 3);
    assert_eq!(
        json.json(),
        serde_json::json!({
            "rows": 205, "created": 0, "already_done": 201, "rejected": 4, "failed": 0,
            "report": format!("{path}.rejected.csv"),
        })
    );
    let queue = Queue::connect(&redis.url(), QueueConfig::new("charges"))
        .await
        .unwrap();
    assert_eq!(
        queue.stats().await.unwrap().delayed,
        200,
        "one payment per row, once"
    );

    // NDJSON, and an unknown column refused before anything is sent.
    let ndjson = dir.path().join("one.ndjson");
    std::fs::write(
        &ndjson,
        r#"{"idempotency_key": "nd-1", "customer": "cus_nd", "amount": {"value": 500, "currency": "usd"}, "purpose": "repeat_purchase", "initiated_by": {"type": "service", "id": "shop"}}
not json
"#,
    )
    .unwrap();
    let nd = flint(
        &api,
        None,
        &[
            "import",
            ndjson.to_str().unwrap(),
            "--report",
            dir.path().join("nd.csv").to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        nd.stdout
            .contains("2 rows: 1 created, 0 already done, 1 rejected"),
        "{}",
        nd.stdout
    );
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, "idempotency_key,customer,colour\nk,cus_1,red\n").unwrap();
    fails(
        &flint(&api, None, &["import", odd.to_str().unwrap()]).await,
        2,
        "unknown column \"colour\"",
    );
    fails(
        &flint(&api, None, &["import", "/nonexistent.csv"]).await,
        2,
        "/nonexistent.csv",
    );
}
