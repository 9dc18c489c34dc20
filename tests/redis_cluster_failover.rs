//! A primary of a Redis Cluster dies mid-run, with durable acceptance on
//! (`[redis] min_replicas_acked = 1`): a real six-node cluster, the API in-process and two real
//! `flint worker` processes, all in cluster mode with three partitions. Payments are created
//! throughout; the primary of a partition holding some of them is SIGKILLed, its replica is
//! promoted, and the dead node is started again (it rejoins as the new primary's replica, so
//! that primary can count a replica again). Creates answered 503 meanwhile are retried with
//! their Idempotency-Key, as a caller would. Afterwards every payment that got a `202` exists
//! with the id it was given and ends final, each key made one payment, nothing was charged
//! twice, and Flint's outcomes agree with the processor's records.

#[path = "cluster/mod.rs"]
#[expect(dead_code, reason = "listings are the other cluster suite's")]
mod cluster;
#[path = "fleet/mod.rs"]
#[expect(
    dead_code,
    reason = "this suite runs its own API, configured for the cluster"
)]
mod fleet;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use flint_shared::partition::Partitions;
use flint_testkit::cluster::RedisCluster;
use flint_testkit::process;
use flint_testkit::sandbox::spawn_sandbox;
use serde_json::{Value, json};

/// Payments created in all: a third before the kill, the rest while and after it happens.
const PAYMENTS: usize = 36;
/// How long a caller keeps retrying a create answered 503.
const CREATE_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_durable_acceptance_every_accepted_payment_survives_a_primary_failover() {
    let mut cluster = RedisCluster::start();
    let nodes = cluster.nodes();
    let sandbox = spawn_sandbox().await;
    let partitions = Partitions::new("charges", 3);

    let mut config = cluster::api_config(&nodes);
    config.redis.min_replicas_acked = 1;
    config.redis.min_replicas_timeout_ms = 1000;
    let api_url = cluster::start_api(&config).await;

    let dir = tempfile::tempdir().unwrap();
    let config_file = cluster::worker_config(
        dir.path(),
        &nodes,
        &sandbox.base_url,
        "min_replicas_acked = 1\nmin_replicas_timeout_ms = 1000",
        "concurrency = 8\nlease_secs = 3",
    );
    let mut workers = [
        fleet::start_worker(&config_file),
        fleet::start_worker(&config_file),
    ];

    // Customers whose saved cards succeed or decline.
    let mut customers = Vec::new();
    for card in [
        "pm_card_visa",
        "pm_card_chargeDeclinedInsufficientFunds",
        "pm_card_mastercard",
    ] {
        customers.push(sandbox.customer_with_card(card).await.0);
    }
    let http = reqwest::Client::new();
    let body = |n: usize| {
        json!({
            "customer": customers[n % customers.len()],
            "amount": {"value": 1000 + n, "currency": "usd"},
            "purpose": "repeat_purchase",
            "initiated_by": {"type": "service", "id": "failover-test"},
            "retry_policy": {"strategy": "scheduled", "max_attempts": 1, "window_hours": 1}
        })
    };

    // A third of the payments, then the kill while the rest are created.
    let mut accepted: BTreeMap<String, String> = BTreeMap::new();
    for n in 0..PAYMENTS / 3 {
        let key = format!("failover-{n}");
        let (id, _) = cluster::create(&http, &api_url, &key, &body(n), CREATE_WITHIN).await;
        accepted.insert(key, id);
    }
    let victim_tag = partitions.tag(1).to_owned();
    let victim = cluster.primary_for_key(&format!("{{{victim_tag}}}"));
    let producer = {
        let (http, api_url) = (http.clone(), api_url.clone());
        let bodies: Vec<(String, Value)> = (PAYMENTS / 3..PAYMENTS)
            .map(|n| (format!("failover-{n}"), body(n)))
            .collect();
        tokio::spawn(async move {
            let mut made = Vec::new();
            let mut unavailable = 0;
            for (key, body) in bodies {
                let (id, refused) =
                    cluster::create(&http, &api_url, &key, &body, CREATE_WITHIN).await;
                unavailable += refused;
                made.push((key, id));
            }
            (made, unavailable)
        })
    };
    let promoted = tokio::task::block_in_place(|| {
        let promoted = cluster.failover_to_replica_of(&victim);
        // Back as the new primary's replica: with min_replicas_acked = 1 that primary's
        // partition takes writes again only once it has a replica.
        cluster.restart(&victim);
        promoted
    });
    assert_eq!(
        cluster.primary_for_key(&format!("{{{victim_tag}}}")),
        promoted
    );
    let (made, unavailable) = producer.await.unwrap();
    eprintln!("creates answered 503 during the failover, then retried: {unavailable}");
    accepted.extend(made);
    assert_eq!(accepted.len(), PAYMENTS);

    // Every accepted payment exists, with its id, and ends final.
    let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in accepted.values() {
        let within = deadline.saturating_duration_since(Instant::now());
        let payment = cluster::settled(&http, &api_url, id, within).await;
        let status = payment["status"].as_str().unwrap().to_owned();
        assert!(
            status == "succeeded" || status == "failed",
            "{id} (partition {}) ended {status}: {payment:#}",
            partitions.of_payment(id)
        );
        outcomes.insert(id.clone(), status);
    }
    let spread: BTreeSet<usize> = accepted
        .values()
        .map(|id| partitions.of_payment(id))
        .collect();
    assert_eq!(
        spread.len(),
        3,
        "payments in every partition, the victim's too"
    );

    // One payment per key: each key, sent again, answers its first payment.
    for (n, (key, id)) in accepted.iter().enumerate() {
        let n: usize = key.trim_start_matches("failover-").parse().unwrap_or(n);
        let (again, _) = cluster::create(&http, &api_url, key, &body(n), CREATE_WITHIN).await;
        assert_eq!(&again, id, "{key}");
    }

    // The processor's records: one PaymentIntent per payment, succeeded exactly when Flint says.
    let intents = cluster::intents_by_payment(&sandbox, &customers).await;
    for (id, status) in &outcomes {
        let theirs = intents.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(theirs.len(), 1, "{id}: {theirs:#?}");
        assert_eq!(
            theirs[0]["status"] == "succeeded",
            status == "succeeded",
            "{id} is {status} in Flint: {:#}",
            theirs[0]
        );
    }
    assert!(
        intents.keys().all(|id| outcomes.contains_key(id)),
        "an intent of a payment no caller was given"
    );

    for worker in &mut workers {
        process::terminate(worker, Duration::from_secs(30));
    }
}
