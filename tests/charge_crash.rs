//! The crash test of the charge fleet: 2,000 payments, a sandbox that fails after committing
//! (5xx and dropped connections), and worker processes killed with SIGKILL at random and
//! restarted until every payment has settled. Then the processor's records must show at most
//! one successful charge per payment, and every Flint payment's status must match them.

mod chaos;
mod fleet;
mod truth;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use flint_shared::config::{ErrorRates, FaultConfig};
use flint_testkit::process;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use serde_json::{Value, json};

const API_KEY: &str = "crash-api-key";
const PAYMENTS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_charge_a_payment_twice_and_every_payment_settles_truthfully() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;

    let api_url = fleet::api(&redis, API_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        "concurrency = 32\nlease_secs = 2\nretry_delays_ms = [100]\nshutdown_grace_secs = 5",
        // The fleet rate limit has its own test; here it would only slow the chaos down.
        "max_network_retries = 1\ntimeout_ms = 2000\nrate_limit_per_second = 100000\nrate_limit_burst = 100000",
    );

    // 100 customers: most with good cards, some soft and some hard declines.
    let mut customers = Vec::new();
    for i in 0..100 {
        let card = match i % 10 {
            0 => "pm_card_chargeDeclinedInsufficientFunds",
            1 => "pm_card_chargeDeclinedLostCard",
            _ => "pm_card_visa",
        };
        customers.push(sandbox.customer_with_card(card).await.0);
    }
    // Every charging request: slow, and after committing now and then a 500, a 503 or a
    // dropped connection.
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 5,
            latency_random_ms: 20,
            path_prefix: Some("/v1/payment_intents".into()),
            after_commit: ErrorRates {
                http_500: 0.05,
                http_502: 0.0,
                http_503: 0.02,
            },
            drop_after_commit_rate: 0.05,
            ..Default::default()
        })
        .await;

    let http = reqwest::Client::new();
    let mut ids = Vec::with_capacity(PAYMENTS);
    for n in 0..PAYMENTS {
        let body = json!({
            "customer": customers[n % customers.len()],
            "amount": {"value": 1000 + n as i64, "currency": "usd"},
            "purpose": "repeat_purchase",
            "initiated_by": {"type": "service", "id": "crash-test"},
            "retry_policy": {"strategy": "scheduled", "max_attempts": 2, "window_hours": 1}
        });
        let r = http
            .post(format!("{api_url}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("crash-{n}"))
            .json(&body)
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

    // Chaos, on its own thread: three workers; every 150–500 ms one is killed with SIGKILL and
    // replaced, for 12 s or until everything has settled.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chaos = {
        let (stop, config_file) = (std::sync::Arc::clone(&stop), config_file.clone());
        std::thread::spawn(move || {
            chaos::kill_and_replace(&config_file, 150..500, Duration::from_secs(12), &stop)
        })
    };
    let mut unsettled: HashSet<String> = ids.iter().cloned().collect();
    let mut statuses: HashMap<String, Value> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !unsettled.is_empty() {
        if Instant::now() >= deadline {
            let id = unsettled.iter().next().unwrap();
            let p: Value = http
                .get(format!("{api_url}/v1/off_session_payments/{id}"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            panic!(
                "{} payments still unsettled after 180 s, e.g.\n{p:#}",
                unsettled.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let batch: Vec<String> = unsettled.iter().take(200).cloned().collect();
        for id in batch {
            let p: Value = http
                .get(format!("{api_url}/v1/off_session_payments/{id}"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ["succeeded", "failed", "paused"].contains(&p["status"].as_str().unwrap_or("")) {
                unsettled.remove(&id);
                statuses.insert(id, p);
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (workers, kills) = chaos.join().unwrap();
    for mut w in workers {
        process::terminate(&mut w, Duration::from_secs(30));
    }
    assert!(
        kills >= 5,
        "only {kills} kills: the payments settled before the chaos did much"
    );

    // The processor's truth: every PaymentIntent by flint_payment_id.
    sandbox.reset_faults().await;
    let intents = truth::intents_by_payment(&sandbox, &customers).await;
    let mut succeeded = 0;
    for id in &ids {
        let flint = &statuses[id];
        let pis = intents.get(id).cloned().unwrap_or_default();
        assert!(
            pis.len() <= 1,
            "{id}: {} PaymentIntents for one payment",
            pis.len()
        );
        let charged = pis.iter().filter(|pi| pi["status"] == "succeeded").count();
        assert!(charged <= 1, "{id} charged {charged} times");
        match flint["status"].as_str().unwrap() {
            "succeeded" => {
                assert_eq!(
                    charged, 1,
                    "{id}: Flint says succeeded, the processor has no charge"
                );
                succeeded += 1;
            }
            other => assert_eq!(
                charged, 0,
                "{id}: Flint says {other}, the processor charged it"
            ),
        }
    }
    eprintln!("{PAYMENTS} payments settled through {kills} SIGKILLs: {succeeded} succeeded");
    assert!(succeeded >= PAYMENTS * 7 / 10, "only {succeeded} succeeded");
}
