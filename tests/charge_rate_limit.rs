//! The fleet-wide processor rate limit holds across worker processes: two workers, each with
//! room for 16 attempts at once, together stay under the processor's limit, so the sandbox
//! (limiting at 20 requests/s) never has to refuse one. The fleet's limit is half the
//! processor's so that requests granted evenly but delayed on a loaded machine (and arriving
//! bunched) still fit the processor's burst.

mod fleet;

use std::time::{Duration, Instant};

use flint_shared::config::{FaultConfig, RateLimiterConfig};
use flint_testkit::poll_until;
use flint_testkit::process;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use serde_json::{Value, json};

const API_KEY: &str = "limit-api-key";
const PAYMENTS: usize = 40;
const FLEET_PER_SECOND: u32 = 10;
const FLEET_BURST: u32 = 2;

#[tokio::test]
async fn two_worker_processes_together_stay_under_the_processors_rate_limit() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let mut customers = Vec::new();
    for _ in 0..8 {
        customers.push(sandbox.customer_with_card("pm_card_visa").await);
    }
    sandbox
        .set_faults(&FaultConfig {
            rate_limiter: RateLimiterConfig {
                enabled: true,
                per_second: 20,
                burst: Some(5),
            },
            ..Default::default()
        })
        .await;

    let api_url = fleet::api(&redis, API_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        "concurrency = 16",
        &format!(
            "max_network_retries = 0\nrate_limit_per_second = {FLEET_PER_SECOND}\nrate_limit_burst = {FLEET_BURST}"
        ),
    );

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..PAYMENTS {
        let (cus, pm) = &customers[n % customers.len()];
        let r = http
            .post(format!("{api_url}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("limit-{n}"))
            .json(&json!({"customer": cus, "payment_method": pm, "amount": {"value": 1000, "currency": "usd"},
                "purpose": "subscription", "initiated_by": {"type": "service", "id": "t"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let before = sandbox_stats(&http, &sandbox.base_url).await;
    let started = Instant::now();
    let mut workers = [
        fleet::start_worker(&config_file),
        fleet::start_worker(&config_file),
    ];
    for id in &ids {
        poll_until(
            Duration::from_secs(60),
            "every payment to succeed",
            || async {
                let p: Value = http
                    .get(format!("{api_url}/v1/off_session_payments/{id}"))
                    .bearer_auth(API_KEY)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (p["status"] == "succeeded").then_some(())
            },
        )
        .await;
    }
    let elapsed = started.elapsed();
    for w in &mut workers {
        process::terminate(w, Duration::from_secs(30));
    }
    let stats = sandbox_stats(&http, &sandbox.base_url).await;
    assert_eq!(
        stats["rate_limited"], 0,
        "the processor had to refuse requests"
    );
    // Every request the fleet sent (one create-and-confirm per payment, a card lookup per
    // payment method and process) at most FLEET_PER_SECOND a second after the burst.
    let sent = stats["requests"].as_u64().unwrap() - before["requests"].as_u64().unwrap();
    let requests = u32::try_from(sent).unwrap();
    assert!(requests >= PAYMENTS as u32, "{requests} requests");
    let floor = Duration::from_secs_f64(
        f64::from(requests - FLEET_BURST) / f64::from(FLEET_PER_SECOND) * 0.9,
    );
    assert!(
        elapsed >= floor,
        "{requests} requests took {elapsed:?}: faster than the fleet limit allows ({floor:?})"
    );
}

async fn sandbox_stats(http: &reqwest::Client, base_url: &str) -> Value {
    http.get(format!("{base_url}/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
