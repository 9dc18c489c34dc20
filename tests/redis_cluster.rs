//! Flint on a Redis Cluster, end to end: a real six-node cluster, the API in-process and a real
//! `flint worker` process, both configured with `[redis] cluster_nodes` only. Payments with
//! succeeding and declining cards are created, charged and settled; the processor holds one
//! PaymentIntent per payment, the events are listed, and readiness (which asks every primary)
//! answers 200.

#[path = "fleet/mod.rs"]
#[expect(
    dead_code,
    reason = "this suite runs its own API, configured for the cluster"
)]
mod fleet;

use std::time::Duration;

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, TenantConfig};
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
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        api_key_sha256: digest(API_KEY),
        processor_secret_key: Secret::new(KEY),
    }];
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
             [worker]\nconcurrency = 8\n\
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
    let mut payments = Vec::new();
    let mut customers = Vec::new();
    for (n, (card, expected)) in cards.iter().enumerate() {
        let customer = sandbox.customer_with_card(card).await.0;
        let r = http
            .post(format!("{api_url}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("cluster-{n}"))
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
        payments.push((id, *expected));
        customers.push(customer);
    }

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

    let ready = http.get(format!("{api_url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    process::terminate(&mut worker, Duration::from_secs(30));
}
