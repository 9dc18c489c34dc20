//! SIGTERM: a worker stops taking jobs, lets its in-flight attempts finish within the grace
//! period, and exits cleanly; nothing is lost or charged twice.

mod fleet;

use std::time::Duration;

use flint_shared::config::FaultConfig;
use flint_testkit::poll_until;
use flint_testkit::process;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use serde_json::{Value, json};

const API_KEY: &str = "shutdown-api-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_attempts_and_loses_nothing() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    // Slow confirms: attempts are in flight when the signal comes.
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 1500,
            path_prefix: Some("/v1/payment_intents".into()),
            ..Default::default()
        })
        .await;
    let api_url = fleet::api(&redis, API_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let file = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        "concurrency = 8\nshutdown_grace_secs = 20",
        "",
    );
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let r = http
            .post(format!("{api_url}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("s-{n}"))
            .json(&json!({"customer": cus, "payment_method": pm, "amount": {"value": 1000 + n, "currency": "usd"},
                "purpose": "subscription", "initiated_by": {"type": "service", "id": "t"}}))
            .send()
            .await
            .unwrap();
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let get = |id: String| {
        let (http, api_url) = (http.clone(), api_url.clone());
        async move {
            http.get(format!("{api_url}/v1/off_session_payments/{id}"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut first = fleet::start_worker(&file);
    poll_until(
        Duration::from_secs(20),
        "attempts to be in flight",
        || async {
            let mut processing = 0;
            for id in &ids {
                if get(id.clone()).await["status"] == "processing" {
                    processing += 1;
                }
            }
            (processing >= 4).then_some(())
        },
    )
    .await;
    // Waiting for the exit blocks; the in-process sandbox must keep answering meanwhile.
    let status = tokio::task::spawn_blocking(move || {
        process::terminate(&mut first, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status}"
    );
    // What was in flight finished; nothing is left half-done.
    let mut done = 0;
    for id in &ids {
        let p = get(id.clone()).await;
        assert_ne!(
            p["status"], "processing",
            "{id} left in processing after a graceful stop"
        );
        if p["status"] == "succeeded" {
            done += 1;
        }
    }
    assert!(done >= 4, "the in-flight attempts completed ({done})");
    // A new worker takes the rest; every payment is charged exactly once.
    let mut second = fleet::start_worker(&file);
    for id in &ids {
        poll_until(
            Duration::from_secs(60),
            "every payment to succeed",
            || async { (get(id.clone()).await["status"] == "succeeded").then_some(()) },
        )
        .await;
    }
    tokio::task::spawn_blocking(move || process::terminate(&mut second, Duration::from_secs(30)))
        .await
        .unwrap();
    sandbox.reset_faults().await;
    let intents = sandbox
        .get("/v1/payment_intents")
        .params(&[("customer", cus.as_str()), ("limit", "100")])
        .send()
        .await
        .body;
    let intents = intents["data"].as_array().unwrap();
    assert_eq!(intents.len(), 20, "one intent per payment");
    assert!(intents.iter().all(|pi| pi["status"] == "succeeded"));
}
