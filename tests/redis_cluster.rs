//! Flint on a Redis Cluster, end to end: a real six-node cluster, the API in-process and a real
//! `flint worker` process, both configured with `[redis] cluster_nodes` and three partitions
//! (`[queue] partitions = 3`). The partitions' slots are on three different primaries.
//! Payments with succeeding and declining cards, spread over every partition, are created,
//! charged and settled; the processor holds one PaymentIntent per payment; payments and events
//! list as one, newest first, across the partitions; and readiness (which asks every primary)
//! answers 200.

#[path = "cluster/mod.rs"]
mod cluster;
#[path = "fleet/mod.rs"]
#[expect(
    dead_code,
    reason = "this suite runs its own API, configured for the cluster"
)]
mod fleet;

use std::collections::BTreeSet;
use std::time::Duration;

use flint_shared::partition::Partitions;
use flint_shared::redis_target::{RedisTarget, Timeouts, connect};
use flint_testkit::cluster::RedisCluster;
use flint_testkit::poll_until;
use flint_testkit::process;
use flint_testkit::sandbox::spawn_sandbox;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_charged_and_settled_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let nodes = cluster.nodes();
    let sandbox = spawn_sandbox().await;

    // Readiness and the start check ask every primary, each answer named by its node.
    let mut conn = connect(&RedisTarget::Cluster(nodes.clone()), Timeouts::default())
        .await
        .unwrap();
    let settings = flint_shared::redis_settings::read(&mut conn).await.unwrap();
    assert_eq!(settings.len(), 3, "one answer per primary: {settings:?}");
    assert!(
        settings
            .iter()
            .all(|n| n.node.is_some() && n.settings.primary),
        "{settings:?}"
    );

    // The API, in cluster mode: `url` points nowhere and must be ignored.
    let config = cluster::api_config(&nodes);
    // Each partition's slot is on its own primary.
    let partitions = Partitions::new("charges", 3);
    let primaries: BTreeSet<String> = partitions
        .tags()
        .iter()
        .map(|tag| cluster.primary_for_key(&format!("{{{tag}}}")))
        .collect();
    assert_eq!(
        primaries.len(),
        3,
        "{:?} on {primaries:?}",
        partitions.tags()
    );
    let api_url = cluster::start_api(&config).await;

    // One worker process, configured the same way.
    let dir = tempfile::tempdir().unwrap();
    let config_file =
        cluster::worker_config(dir.path(), &nodes, &sandbox.base_url, "", "concurrency = 8");
    let mut worker = fleet::start_worker(&config_file);

    let http = reqwest::Client::new();
    let ready = http.get(format!("{api_url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    let cards = [
        ("pm_card_visa", "succeeded"),
        ("pm_card_chargeDeclinedLostCard", "failed"),
        ("pm_card_visa", "succeeded"),
        ("pm_card_chargeDeclinedInsufficientFunds", "failed"),
        ("pm_card_visa", "succeeded"),
    ];
    // Idempotency keys chosen so that every partition gets payments.
    let keys: Vec<String> = (0..)
        .map(|n| format!("cluster-{n}"))
        .scan([0usize; 3], |per, key| {
            let p = partitions.of_idempotency_key("acme", &key);
            per[p] += 1;
            Some((per[p] <= 2).then_some(key))
        })
        .flatten()
        .take(6)
        .collect();
    let mut payments = Vec::new();
    let mut customers = Vec::new();
    for (n, (card, expected)) in cards.iter().cycle().take(keys.len()).enumerate() {
        let customer = sandbox.customer_with_card(card).await.0;
        let r = http
            .post(format!("{api_url}/v1/off_session_payments"))
            .bearer_auth(cluster::API_KEY)
            .header("Idempotency-Key", &keys[n])
            .json(&json!({
                "customer": customer,
                "amount": {"value": 1000 + n as i64, "currency": "usd"},
                "purpose": "repeat_purchase",
                "initiated_by": {"type": "service", "id": "cluster-test"},
                "retry_policy": {"strategy": "scheduled", "max_attempts": 1, "window_hours": 1}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            partitions.of_payment(&id),
            partitions.of_idempotency_key("acme", &keys[n]),
            "{id} is in its idempotency key's partition"
        );
        payments.push((id, *expected));
        customers.push(customer);
    }
    let spread: BTreeSet<usize> = payments
        .iter()
        .map(|(id, _)| partitions.of_payment(id))
        .collect();
    assert_eq!(spread.len(), 3, "payments in every partition");

    for (id, expected) in &payments {
        let payment = cluster::settled(&http, &api_url, id, Duration::from_secs(60)).await;
        assert_eq!(payment["status"], *expected, "{id}: {payment:#}");

        let events: Value = http
            .get(format!("{api_url}/v1/events?payment={id}"))
            .bearer_auth(cluster::API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let types: Vec<&str> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types.first().copied(),
            Some(format!("off_session_payment.{expected}").as_str()),
            "{id}: {types:?}"
        );
        assert_eq!(
            types.last().copied(),
            Some("off_session_payment.created"),
            "{id}: {types:?}"
        );
    }

    // The processor's records: one PaymentIntent per payment, charged only for the successes.
    let intents = cluster::intents_by_payment(&sandbox, &customers).await;
    for ((id, expected), customer) in payments.iter().zip(&customers) {
        let theirs = intents
            .get(id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(theirs.len(), 1, "{id}: {theirs:#?}");
        assert_eq!(
            theirs[0]["customer"],
            customer.as_str(),
            "{id}: its own customer"
        );
        assert_eq!(
            theirs[0]["status"] == "succeeded",
            *expected == "succeeded",
            "{id}: {:#}",
            theirs[0]
        );
    }

    // Listing merges the partitions: every payment once, newest first, page after page.
    let listed = cluster::list_all(&http, &format!("{api_url}/v1/off_session_payments"), 2).await;
    let mut want: Vec<&str> = payments.iter().map(|(id, _)| id.as_str()).collect();
    want.reverse();
    let got: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got.len(), payments.len(), "{got:?}");
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>()
    );
    cluster::assert_newest_first(&listed);
    let events = cluster::list_all(&http, &format!("{api_url}/v1/events"), 3).await;
    let created = events
        .iter()
        .filter(|e| e["type"] == "off_session_payment.created")
        .count();
    assert_eq!(created, payments.len(), "one created event per payment");
    cluster::assert_newest_first(&events);

    let ready = http.get(format!("{api_url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    process::terminate(&mut worker, Duration::from_secs(30));
}

/// A planned failover leaves every node running and every connection healthy, but the node
/// that served a partition now answers its writes `MOVED`. With durable acceptance on, the API
/// writes through connections of its own to each slot's primary: it must follow the slot to
/// its new primary rather than ask the old one for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_acceptance_follows_a_partition_to_its_new_primary() {
    let mut redis = RedisCluster::start();
    let mut config = cluster::api_config(&redis.nodes());
    config.redis.min_replicas_acked = 1;
    config.redis.min_replicas_timeout_ms = 1000;
    let api_url = cluster::start_api(&config).await;
    let partitions = Partitions::new("charges", cluster::PARTITIONS);
    let keys: Vec<String> = (0..)
        .map(|n| format!("moved-{n}"))
        .filter(|key| partitions.of_idempotency_key("acme", key) == 1)
        .take(4)
        .collect();
    let body = json!({
        "customer": "cus_moved",
        "amount": {"value": 1000, "currency": "usd"},
        "purpose": "repeat_purchase",
        "initiated_by": {"type": "service", "id": "cluster-test"}
    });
    let http = reqwest::Client::new();
    let within = Duration::from_secs(20);

    // The first create learns where partition 1's slot is served.
    cluster::create(&http, &api_url, &keys[0], &body, within).await;
    let old = redis.primary_for_key(&format!("{{{}}}", partitions.tag(1)));
    let new = tokio::task::block_in_place(|| redis.planned_failover(&old));
    assert_ne!(old, new);

    // The old primary answers MOVED: each create after it reaches the new primary (a 503 on
    // the way is allowed, and retried with the same key), and stays readable.
    for key in &keys[1..] {
        let (id, _) = cluster::create(&http, &api_url, key, &body, within).await;
        let read = http
            .get(format!("{api_url}/v1/off_session_payments/{id}"))
            .bearer_auth(cluster::API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{key}");
    }
}

/// CPU time (user and system) `pid` has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's USER_HZ, 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Every node of the cluster is killed under a running worker: the worker says it is not
/// ready and waits quietly (it does not spin on a cluster that cannot answer), and once the
/// cluster is back it charges payments again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waits_out_a_lost_cluster_and_charges_again() {
    let mut redis = RedisCluster::start();
    let nodes = redis.nodes();
    let sandbox = spawn_sandbox().await;
    let api_url = cluster::start_api(&cluster::api_config(&nodes)).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file =
        cluster::worker_config(dir.path(), &nodes, &sandbox.base_url, "", "concurrency = 4");
    let (worker, worker_url) = fleet::start_worker_serving(&config_file);
    let customer = sandbox.customer_with_card("pm_card_visa").await.0;
    let body = json!({
        "customer": customer,
        "amount": {"value": 1000, "currency": "usd"},
        "purpose": "repeat_purchase",
        "initiated_by": {"type": "service", "id": "cluster-test"}
    });
    let http = reqwest::Client::new();
    let within = Duration::from_secs(60);
    let (id, _) = cluster::create(&http, &api_url, "before", &body, within).await;
    assert_eq!(
        cluster::settled(&http, &api_url, &id, within).await["status"],
        "succeeded"
    );

    tokio::task::block_in_place(|| redis.kill_all());
    let ready = format!("{worker_url}/readyz");
    poll_until(
        Duration::from_secs(30),
        "the worker to say not ready",
        || {
            let (http, ready) = (http.clone(), ready.clone());
            async move { (http.get(ready).send().await.ok()?.status() == 503).then_some(()) }
        },
    )
    .await;
    // Within seconds the worker goes quiet: some 3 s window uses under a tenth of a core. (The
    // sleeps are the windows measured, not waits for anything.)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = cpu_time(worker.id());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let used = cpu_time(worker.id()) - before;
        if used < Duration::from_millis(300) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a worker with no cluster to talk to still used {used:?} of CPU in 3 s"
        );
    }

    tokio::task::block_in_place(|| redis.start_all());
    let (id, _) = cluster::create(&http, &api_url, "after", &body, within).await;
    assert_eq!(
        cluster::settled(&http, &api_url, &id, within).await["status"],
        "succeeded"
    );
}
