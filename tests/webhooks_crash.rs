//! No event is lost when webhook workers die: payments are charged and their events delivered
//! by real `flint worker` processes, one of which is killed with SIGKILL every few hundred
//! milliseconds (mid-delivery, mid-dispatch) and replaced, to a receiver that is slow and
//! sometimes fails. Every event the API lists must reach the receiver (at least once; the
//! receiver deduplicates by `webhook-id`).

mod chaos;
mod fleet;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flint_queue::{Queue, QueueConfig};
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use flint_testkit::{poll_until, process};
use rand::Rng;
use serde_json::{Value, json};

const API_KEY: &str = "webhook-crash-key";
const PAYMENTS: usize = 300;

type Seen = Arc<Mutex<(HashSet<String>, usize)>>;

/// Answers after 5–40 ms; one answer in ten is a 500 (and not counted as received).
async fn receive(State(seen): State<Seen>, headers: HeaderMap) -> StatusCode {
    let (wait, fail) = {
        let mut rng = rand::rng();
        (rng.random_range(5..40), rng.random_bool(0.1))
    };
    tokio::time::sleep(Duration::from_millis(wait)).await;
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut seen = seen.lock().unwrap();
    seen.0.insert(id);
    seen.1 += 1;
    StatusCode::OK
}

async fn listed_events(http: &reqwest::Client, api: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{api}/v1/events?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&starting_after={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        for e in data {
            ids.insert(e["id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] != true {
            return ids;
        }
        cursor = data.last().map(|e| e["id"].as_str().unwrap().to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_lose_an_event() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let api = fleet::api(&redis, API_KEY).await;

    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(Arc::clone(&seen));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let made: Value = http
        .post(format!("{api}/v1/webhook_endpoints"))
        .bearer_auth(API_KEY)
        .json(&json!({"url": receiver, "enabled_events": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(made["secret"].is_string(), "{made}");

    let dir = tempfile::tempdir().unwrap();
    let config_file = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        "concurrency = 16\nlease_secs = 2\nshutdown_grace_secs = 5",
        "rate_limit_per_second = 100000\nrate_limit_burst = 100000\n\
         [webhooks]\nallow_http = true\nallow_private_networks = true\nconcurrency = 16\ntimeout_ms = 2000\nfirst_retry_delay_ms = 50\nmax_retry_delay_secs = 1",
    );
    let (customer, card) = sandbox.customer_with_card("pm_card_visa").await;
    for n in 0..PAYMENTS {
        let r = http
            .post(format!("{api}/v1/off_session_payments"))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", format!("hook-{n}"))
            .json(&json!({
                "customer": customer,
                "payment_method": card,
                "amount": {"value": 1000 + n as i64, "currency": "usd"},
                "purpose": "repeat_purchase",
                "initiated_by": {"type": "service", "id": "webhook-crash-test"}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    // Chaos: three workers; every 150–400 ms one is killed with SIGKILL and replaced, for 8 s.
    let chaos = {
        let config_file = config_file.clone();
        std::thread::spawn(move || {
            let never = std::sync::atomic::AtomicBool::new(false);
            chaos::kill_and_replace(&config_file, 150..400, Duration::from_secs(8), &never)
        })
    };
    let (workers, kills) = tokio::task::spawn_blocking(move || chaos.join().unwrap())
        .await
        .unwrap();

    // Then the survivors finish: every payment's events delivered, nothing dead.
    let queue = Queue::connect(
        &redis.url(),
        QueueConfig::new("webhooks").in_slot_of("charges"),
    )
    .await
    .unwrap();
    let charges = Queue::connect(&redis.url(), QueueConfig::new("charges"))
        .await
        .unwrap();
    poll_until(
        Duration::from_secs(120),
        "every charge and delivery done",
        || async {
            let (c, w) = (charges.stats().await.unwrap(), queue.stats().await.unwrap());
            let idle = c.ready + c.leased + c.delayed + w.ready + w.leased + w.delayed == 0;
            idle.then_some(())
        },
    )
    .await;
    for mut w in workers {
        process::terminate(&mut w, Duration::from_secs(30));
    }
    assert_eq!(queue.stats().await.unwrap().dead, 0, "a delivery gave up");
    let events = listed_events(&http, &api).await;
    assert_eq!(
        events.len(),
        PAYMENTS * 3,
        "created, attempt_started, succeeded each"
    );
    let (received, deliveries) = {
        let seen = seen.lock().unwrap();
        (seen.0.clone(), seen.1)
    };
    let lost: Vec<_> = events.difference(&received).collect();
    assert!(
        lost.is_empty(),
        "{} events never delivered, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(kills >= 10, "only {kills} kills");
    eprintln!(
        "{} events delivered through {kills} SIGKILLs ({deliveries} accepted deliveries, {} repeats)",
        events.len(),
        deliveries - received.len()
    );
}
