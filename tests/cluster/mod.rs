//! Shared setup of the tests that run Flint on a real Redis Cluster: the API in-process and
//! `flint worker` configuration files, both in cluster mode with three partitions, for one
//! tenant whose processor account is the sandbox's; creates that retry as a caller would; and
//! listings read to the end.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, StorageFormat, TenantConfig};
use flint_testkit::sandbox::KEY;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const API_KEY: &str = "cluster-api-key";
/// The partitions every cluster test runs with: one per primary of the harness's cluster.
pub const PARTITIONS: u16 = 3;

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The API's configuration for the cluster `nodes`: `[redis] url` points nowhere and must be
/// ignored, the API's own rate limit is lifted, and tenant `acme` has key [`API_KEY`].
pub fn api_config(nodes: &[String]) -> Config {
    let mut config = Config::default();
    config.redis.url = Secret::new("redis://127.0.0.1:1");
    config.redis.cluster_nodes = nodes.iter().map(Secret::new).collect();
    config.queue.partitions = PARTITIONS;
    // The cluster tests run the compact storage format; the rest of the suite the default.
    config.redis.storage_format = StorageFormat::Compact;
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.enqueuer.rate_limit_per_second = 10_000;
    config.enqueuer.rate_limit_burst = 10_000;
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        api_key_sha256: digest(API_KEY),
        processor_secret_key: Secret::new(KEY),
    }];
    config
}

/// Serves the API of `config` on a free port; returns its base URL.
pub async fn start_api(config: &Config) -> String {
    let api = Application::build(config).await.unwrap();
    let url = format!("http://{}", api.local_addr());
    tokio::spawn(api.run(std::future::pending()));
    url
}

/// Writes a worker configuration for the cluster `nodes` into `dir`, the same tenant as
/// [`api_config`], the sandbox at `sandbox_url` as processor, plus extra `[redis]` and
/// `[worker]` lines.
pub fn worker_config(
    dir: &Path,
    nodes: &[String],
    sandbox_url: &str,
    redis: &str,
    worker: &str,
) -> PathBuf {
    let file = dir.join("worker.toml");
    let cluster_nodes = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &file,
        format!(
            "[redis]\nurl = \"redis://127.0.0.1:1\"\ncluster_nodes = [{cluster_nodes}]\nstorage_format = \"compact\"\n{redis}\n\
             [queue]\npartitions = {PARTITIONS}\n[worker]\n{worker}\n\
             [processor]\napi_base = \"{sandbox_url}\"\nrate_limit_per_second = 1000\nrate_limit_burst = 1000\n\
             [[tenants]]\nid = \"acme\"\napi_key_sha256 = \"{}\"\nprocessor_secret_key = \"{KEY}\"\n",
            digest(API_KEY)
        ),
    )
    .unwrap();
    file
}

/// Creates the payment of `key`, retrying 503s and broken connections with the same key (a
/// caller's duty) until the API answers 202, for at most `within`. Returns the payment's id
/// and how many answers were 503.
pub async fn create(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    body: &Value,
    within: Duration,
) -> (String, u32) {
    let deadline = Instant::now() + within;
    let mut unavailable = 0;
    loop {
        let answer = http
            .post(format!("{api}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 202 => {
                let payment: Value = r.json().await.unwrap();
                return (payment["id"].as_str().unwrap().to_owned(), unavailable);
            }
            Ok(r) if r.status() == 503 => {
                let error: Value = r.json().await.unwrap_or_default();
                let code = error["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["storage_unavailable", "storage_not_replicated"].contains(&code),
                    "{key}: {error}"
                );
                unavailable += 1;
            }
            Ok(r) => panic!("{key}: {} {}", r.status(), r.text().await.unwrap()),
            Err(e) => eprintln!("{key}: {e}; retrying"),
        }
        assert!(
            Instant::now() < deadline,
            "{key}: no 202 within {within:?} ({unavailable} answers 503)"
        );
        // A caller's backoff between tries, not a wait for anything in particular.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every object of a list endpoint, `limit` at a time, following `starting_after`.
pub async fn list_all(http: &reqwest::Client, url: &str, limit: usize) -> Vec<Value> {
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
pub fn assert_newest_first(objects: &[Value]) {
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

/// The payment `id` once it is final (`succeeded`, `failed` or `paused`), polled for at most
/// `within`.
pub async fn settled(http: &reqwest::Client, api: &str, id: &str, within: Duration) -> Value {
    let url = format!("{api}/v1/off_session_payments/{id}");
    flint_testkit::poll_until(within, "the payment to settle", || {
        let (http, url) = (http.clone(), url.clone());
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
    .await
}

/// The sandbox's PaymentIntents of `customers`, by the Flint payment each was made for.
pub async fn intents_by_payment(
    sandbox: &flint_testkit::sandbox::TestSandbox,
    customers: &[String],
) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut intents: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for customer in customers {
        let page = sandbox
            .get("/v1/payment_intents")
            .params(&[("customer", customer.as_str()), ("limit", "100")])
            .send()
            .await
            .body;
        for pi in page["data"].as_array().unwrap() {
            if let Some(id) = pi["metadata"]["flint_payment_id"].as_str() {
                intents.entry(id.to_owned()).or_default().push(pi.clone());
            }
        }
    }
    intents
}
