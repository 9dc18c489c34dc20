//! Flint on a Redis Cluster, end to end: a real six-node cluster, the API in-process and a real
//! `flint worker` process, both configured with `[redis] cluster_nodes` and three partitions
//! (`[queue] partitions = 3`). The partitions' slots are on three different primaries.
//! Payments with succeeding and declining cards, spread over every partition, are created,
//! charged and settled; the processor holds one PaymentIntent per payment; payments and events
//! list as one, newest first, across the partitions; and readiness (which asks every primary)
//! answers 200.

#[path = "fleet/mod.rs"]
#[expect(
    dead_code,
    reason = "this suite runs its own API, configured for the cluster"
)]
mod fleet;

use std::collections::BTreeSet;
use std::time::Duration;

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_shared::partition::Partitions;
use flint_shared::redis_target::{RedisTarget, Timeouts, connect};
use flint_testkit::cluster::RedisCluster;
use flint_testkit::poll_until;
use flint_testkit::process;
use flint_testkit::sandbox::{KEY, spawn_sandbox};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const API_KEY: &str = "cluster-api-key";

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

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
    let mut config = Config::default();
    config.redis.url = Secret::new("redis://127.0.0.1:1");
    config.redis.cluster_nodes = nodes.iter().map(Secret::new).collect();
    config.queue.partitions = 3;
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        api_key_sha256: digest(API_KEY),
        processor_secret_key: Secret::new(KEY),
    }];
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
    let api = Application::build(&config).await.unwrap();
    let api_url = format!("http://{}", api.local_addr());
    tokio::spawn(api.run(std::future::pending()));

    // One worker process, configured the same way.
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("worker.toml");
    let cluster_nodes = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config_file,
        format!(
            "[redis]\nurl = \"redis://127.0.0.1:1\"\ncluster_nodes = [{cluster_nodes}]\n\
             [queue]\npartitions = 3\n[worker]\nconcurrency = 8\n\
             [processor]\napi_base = \"{}\"\nrate_limit_per_second = 1000\nrate_limit_burst = 1000\n\
             [[tenants]]\nid = \"acme\"\napi_key_sha256 = \"{}\"\nprocessor_secret_key = \"{KEY}\"\n",
            sandbox.base_url,
            digest(API_KEY)
        ),
    )
    .unwrap();
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
            .bearer_auth(API_KEY)
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
        let payment = poll_until(Duration::from_secs(60), "the payment to settle", || {
            let (http, url) = (
                http.clone(),
                format!("{api_url}/v1/off_session_payments/{id}"),
            );
            async move {
                let p: Value = http
                    .get(url)
                    .bearer_auth(API_KEY)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                ["succeeded", "failed", "paused"]
                    .contains(&p["status"].as_str()?)
                    .then_some(p)
            }
        })
        .await;
        assert_eq!(payment["status"], *expected, "{id}: {payment:#}");

        let events: Value = http
            .get(format!("{api_url}/v1/events?payment={id}"))
            .bearer_auth(API_KEY)
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
    for ((id, expected), customer) in payments.iter().zip(&customers) {
        let page = sandbox
            .get("/v1/payment_intents")
            .params(&[("customer", customer.as_str()), ("limit", "100")])
            .send()
            .await
            .body;
        let intents: Vec<&Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pi| pi["metadata"]["flint_payment_id"] == id.as_str())
            .collect();
        assert_eq!(intents.len(), 1, "{id}: {intents:#?}");
        assert_eq!(
            intents[0]["status"] == "succeeded",
            *expected == "succeeded",
            "{id}: {:#}",
            intents[0]
        );
    }

    // Listing merges the partitions: every payment once, newest first, page after page.
    let listed = list_all(&http, &format!("{api_url}/v1/off_session_payments"), 2).await;
    let mut want: Vec<&str> = payments.iter().map(|(id, _)| id.as_str()).collect();
    want.reverse();
    let got: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got.len(), payments.len(), "{got:?}");
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>()
    );
    assert_newest_first(&listed);
    let events = list_all(&http, &format!("{api_url}/v1/events"), 3).await;
    let created = events
        .iter()
        .filter(|e| e["type"] == "off_session_payment.created")
        .count();
    assert_eq!(created, payments.len(), "one created event per payment");
    assert_newest_first(&events);

    let ready = http.get(format!("{api_url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    process::terminate(&mut worker, Duration::from_secs(30));
}

/// Every object of a list endpoint, `limit` at a time, following `starting_after`.
async fn list_all(http: &reqwest::Client, url: &str, limit: usize) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let mut request = http
            .get(url)
            .bearer_auth(API_KEY)
            .query(&[("limit", limit)]);
        if let Some(last) = all.last() {
            request = request.query(&[("starting_after", last["id"].as_str().unwrap())]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        let data = page["data"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(data.len() <= limit, "{page}");
        all.extend(data.iter().cloned());
        if page["has_more"] != true {
            return all;
        }
        assert!(all.len() < 10_000, "the listing never ends");
    }
}

/// Objects newest first, no id twice.
fn assert_newest_first(objects: &[Value]) {
    let ids: BTreeSet<&str> = objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), objects.len(), "an object listed twice");
    let times: Vec<i64> = objects
        .iter()
        .map(|o| {
            serde_json::from_value::<flint_shared::time::Timestamp>(o["created_at"].clone())
                .unwrap()
                .unix_ms()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
}
