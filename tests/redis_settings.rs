//! Flint checks its Redis when a process starts: a `maxmemory-policy` that lets Redis evict
//! keys is refused (unless allowed by config), so is a replica, append-only persistence off
//! is a warning; and
//! a worker's consumer names in Redis start with its configured name (the pod name in
//! Kubernetes); and the partition count (`[queue] partitions`) cannot change under the data.
//! Real `flint` processes against a real redis-server.

#[path = "fleet/mod.rs"]
#[expect(
    dead_code,
    reason = "this suite starts workers its own way, to read their logs"
)]
mod fleet;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flint_shared::ids::PaymentId;
use flint_shared::payment::job::ChargeJob;
use flint_testkit::process::{terminate, wait_exit};
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use redis::AsyncCommands;

const API_KEY: &str = "settings-key";

async fn set_policy(redis: &RedisServer, policy: &str) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// `flint <role>` with the test's config and `env`, its stderr lines sent to a channel.
fn spawn(
    config: &std::path::Path,
    role: &str,
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(fleet::FLINT)
        .arg("--config")
        .arg(config)
        .args([role, "--listen", "127.0.0.1:0"])
        .env("FLINT__LOG__LEVEL", "warn")
        .env("FLINT__LOG__FORMAT", "text")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until one contains `needle`, or panics after a deadline with what came.
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?}; stderr was:\n{}", seen.join("\n"));
}

#[tokio::test]
async fn a_redis_that_may_evict_or_is_a_replica_is_refused_and_aof_off_is_a_warning() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(dir.path(), &redis, &sandbox.base_url, API_KEY, "", "");
    set_policy(&redis, "allkeys-lru").await;
    for role in ["worker", "enqueuer"] {
        let (mut child, stderr) = spawn(&config, role, &[]);
        let refusal = wait_for_line(&stderr, "refusing to start");
        assert!(
            refusal.contains("allkeys-lru") && refusal.contains("allow_eviction"),
            "{role}: {refusal}"
        );
        let status = wait_exit(&mut child, Duration::from_secs(20), role);
        assert!(!status.success(), "{role} started on an evicting Redis");
    }

    // Allowed by config: it runs, and says what it accepted.
    let (mut worker, stderr) = spawn(
        &config,
        "worker",
        &[("FLINT__REDIS__ALLOW_EVICTION", "true")],
    );
    let warning = wait_for_line(&stderr, "maxmemory-policy is allkeys-lru");
    assert!(warning.contains("allow_eviction = true"), "{warning}");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the allowed worker exited"
    );
    terminate(&mut worker, Duration::from_secs(30));

    // noeviction, and the test server's append-only file is off: a warning naming the risk.
    set_policy(&redis, "noeviction").await;
    let (mut worker, stderr) = spawn(&config, "worker", &[]);
    let warning = wait_for_line(&stderr, "append-only persistence is off");
    assert!(warning.contains("restart loses"), "{warning}");
    assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
    terminate(&mut worker, Duration::from_secs(30));

    // A URL that reaches a replica: every write would fail, so nothing starts.
    let replica = RedisServer::start();
    let client = redis::Client::open(replica.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(redis.port())
        .query_async(&mut conn)
        .await
        .unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(
        replica_dir.path(),
        &replica,
        &sandbox.base_url,
        API_KEY,
        "",
        "",
    );
    let (mut worker, stderr) = spawn(&config, "worker", &[]);
    let refusal = wait_for_line(&stderr, "refusing to start");
    assert!(refusal.contains("replica"), "{refusal}");
    assert!(!wait_exit(&mut worker, Duration::from_secs(20), "worker").success());
}

#[tokio::test]
async fn a_workers_consumer_names_start_with_its_configured_name() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(dir.path(), &redis, &sandbox.base_url, API_KEY, "", "");
    let (mut worker, _stderr) = spawn(
        &config,
        "worker",
        &[("FLINT__WORKER__NAME", "flint-worker-5d8c7-x2x9q")],
    );
    // A consumer joins the group when it reads a job: a charge job for a payment that does
    // not exist (the worker finds nothing to charge and completes it).
    let queue = flint_queue::Queue::connect(&redis.url(), flint_queue::QueueConfig::new("charges"))
        .await
        .unwrap();
    let job = ChargeJob::new(PaymentId::generate());
    queue
        .push(flint_queue::NewJob::new(job.clone()).with_id(job.job_id()))
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = flint_queue::keys::Keys::new("charges").stream;
    let consumers = flint_testkit::poll_until(
        Duration::from_secs(20),
        "the worker to join the charge queue's group",
        || {
            let (mut conn, stream) = (conn.clone(), stream.clone());
            async move {
                let exists: bool = conn.exists(&stream).await.ok()?;
                if !exists {
                    return None;
                }
                let consumers: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(&stream)
                    .arg(flint_queue::keys::GROUP)
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                let names: Vec<String> = consumers
                    .iter()
                    .filter_map(|c| redis::from_redis_value(c.get("name")?.clone()).ok())
                    .collect();
                (!names.is_empty()).then_some(names)
            }
        },
    )
    .await;
    for name in &consumers {
        assert!(name.starts_with("flint-worker-5d8c7-x2x9q-"), "{name}");
    }
    terminate(&mut worker, Duration::from_secs(30));

    // A name that could not be a pod's is refused before anything starts.
    let (mut bad, stderr) = spawn(&config, "worker", &[("FLINT__WORKER__NAME", "a b")]);
    let line = wait_for_line(&stderr, "worker.name");
    assert!(line.contains("must be"), "{line}");
    assert!(!wait_exit(&mut bad, Duration::from_secs(20), "bad name").success());
}

#[tokio::test]
async fn the_partition_count_cannot_change_under_the_data() {
    let sandbox = spawn_sandbox().await;

    // A payment of the one-partition layout whose recorded count is gone (written before
    // counts were recorded, or the record lost).
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(dir.path(), &redis, &sandbox.base_url, API_KEY, "", "");
    let api = fleet::api(&redis, API_KEY).await;
    let created = reqwest::Client::new()
        .post(format!("{api}/v1/off_session_payments"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", "before-counts")
        .json(&serde_json::json!({
            "customer": "cus_1",
            "amount": {"value": 100, "currency": "usd"},
            "purpose": "repeat_purchase",
            "initiated_by": {"type": "service", "id": "test"},
            "charge_at": flint_shared::time::Timestamp::now()
                .plus(Duration::from_secs(3600))
                .rfc3339()
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = conn.del("flint:{charges}:partitions").await.unwrap();
    for role in ["worker", "enqueuer"] {
        let (mut child, stderr) = spawn(&config, role, &[("FLINT__QUEUE__PARTITIONS", "3")]);
        let refusal = wait_for_line(&stderr, "refusing to start");
        assert!(
            refusal.contains("spread over 1 partitions")
                && refusal.contains("[queue] partitions = 3"),
            "{role}: {refusal}"
        );
        assert!(!wait_exit(&mut child, Duration::from_secs(20), role).success());
    }
    // The count it was written with runs, and is recorded.
    let (mut worker, _stderr) = spawn(&config, "worker", &[]);
    let recorded: String = flint_testkit::poll_until(
        Duration::from_secs(20),
        "the worker to record the partition count",
        || {
            let mut conn = conn.clone();
            async move { conn.get("flint:{charges}:partitions").await.ok()? }
        },
    )
    .await;
    assert_eq!(recorded, "1");
    terminate(&mut worker, Duration::from_secs(30));

    // A fresh Redis takes three partitions, and then keeps them.
    let fresh = RedisServer::start();
    let fresh_dir = tempfile::tempdir().unwrap();
    let config = fleet::worker_config(fresh_dir.path(), &fresh, &sandbox.base_url, API_KEY, "", "");
    let (mut worker, _stderr) = spawn(&config, "worker", &[("FLINT__QUEUE__PARTITIONS", "3")]);
    let client = redis::Client::open(fresh.url()).unwrap();
    conn = client.get_multiplexed_async_connection().await.unwrap();
    let recorded: String = flint_testkit::poll_until(
        Duration::from_secs(20),
        "the worker to record the partition count",
        || {
            let mut conn = conn.clone();
            async move { conn.get("flint:{charges}:partitions").await.ok()? }
        },
    )
    .await;
    assert_eq!(recorded, "3");
    for (role, count) in [("worker", "1"), ("enqueuer", "4")] {
        let (mut child, stderr) = spawn(&config, role, &[("FLINT__QUEUE__PARTITIONS", count)]);
        let refusal = wait_for_line(&stderr, "refusing to start");
        assert!(
            refusal.contains("spread over 3 partitions") && refusal.contains("set it back to 3"),
            "{role}: {refusal}"
        );
        assert!(!wait_exit(&mut child, Duration::from_secs(20), role).success());
    }
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker of three runs on"
    );
    terminate(&mut worker, Duration::from_secs(30));
}
