//! The stall test of the charge fleet: real worker processes are stopped with SIGSTOP, for less
//! and for more than their lease, and continued, while callers resume paused payments and ask
//! for retries at once, with processor latency. A stalled worker that wakes after its lease ran
//! out finishes its attempt late, while another worker has taken the job over: every payment
//! must still end final, none charged twice, and Flint's statuses must equal the processor's.

mod fleet;
mod truth;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flint_shared::config::FaultConfig;
use flint_testkit::process;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::spawn_sandbox;
use rand::Rng;
use serde_json::{Value, json};

const API_KEY: &str = "stall-api-key";
const PAYMENTS: usize = 240;
/// The workers' lease: stalls are drawn below and above it.
const LEASE: Duration = Duration::from_secs(2);

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/v1/off_session_payments/{id}", self.url))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Resume (or retry now): the status of the answer; never a 5xx.
    async fn resume(&self, id: &str, body: Value) -> u16 {
        let r = self
            .http
            .post(format!("{}/v1/off_session_payments/{id}/resume", self.url))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            status < 500,
            "{status}: {}",
            r.text().await.unwrap_or_default()
        );
        status
    }
}

/// Creates payment `n` for one of `customers`; returns its id and customer.
async fn create(api: &Api, customers: &[String], n: usize) -> (String, String) {
    let customer = &customers[n % customers.len()];
    let r = api
        .http
        .post(format!("{}/v1/off_session_payments", api.url))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", format!("stall-{n}"))
        .json(&json!({
            "customer": customer,
            "amount": {"value": 1000 + n as i64, "currency": "usd"},
            "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "stall-test"},
            "retry_policy": {"strategy": "scheduled", "max_attempts": 3, "window_hours": 1}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, customer.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_workers_never_strand_or_double_charge_a_payment() {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let api = Api {
        url: fleet::api(&redis, API_KEY).await,
        http: reqwest::Client::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let config_file = fleet::worker_config(
        dir.path(),
        &redis,
        &sandbox.base_url,
        API_KEY,
        &format!(
            "concurrency = 16\nlease_secs = {}\nretry_delays_ms = [300]\nshutdown_grace_secs = 5",
            LEASE.as_secs()
        ),
        "max_network_retries = 1\ntimeout_ms = 5000\nrate_limit_per_second = 100000\nrate_limit_burst = 100000",
    );

    // Good cards, soft declines (retried), and cards that need the customer (paused until a
    // caller resumes them with a good card).
    let mut customers = Vec::new();
    for i in 0..40 {
        let card = match i % 4 {
            0 => "pm_card_chargeDeclinedInsufficientFunds",
            1 => "pm_card_authenticationRequired",
            _ => "pm_card_visa",
        };
        customers.push(sandbox.customer_with_card(card).await.0);
    }
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 20,
            latency_random_ms: 80,
            path_prefix: Some("/v1/payment_intents".into()),
            ..Default::default()
        })
        .await;
    // Stalls, on their own thread: three workers; again and again one of them is stopped for
    // a while (half the time past its lease) and continued.
    let stop = Arc::new(AtomicBool::new(false));
    let long_stalls = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let (stop, long_stalls, config_file) = (
            Arc::clone(&stop),
            Arc::clone(&long_stalls),
            config_file.clone(),
        );
        std::thread::spawn(move || {
            let workers: Vec<fleet::Worker> =
                (0..3).map(|_| fleet::start_worker(&config_file)).collect();
            let mut stalls = 0;
            while !stop.load(Ordering::Relaxed) && stalls < 10 {
                let victim = rand::rng().random_range(0..workers.len());
                let long = stalls % 2 == 0;
                let stall = if long {
                    LEASE + Duration::from_millis(rand::rng().random_range(800..1500))
                } else {
                    Duration::from_millis(rand::rng().random_range(200..1200))
                };
                process::signal(&workers[victim], "STOP");
                // The stall itself is the scenario: a process that does not run for this long.
                std::thread::sleep(stall);
                process::signal(&workers[victim], "CONT");
                stalls += 1;
                if long {
                    long_stalls.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(rand::rng().random_range(100..400)));
            }
            workers
        })
    };

    // Callers: a paused payment is resumed with a good card, twice at once; a payment waiting
    // for a retry is asked to retry now, twice at once.
    let mut good_cards: HashMap<String, String> = HashMap::new();
    let mut ids = Vec::with_capacity(PAYMENTS);
    let mut customer_of = HashMap::new();
    let mut unsettled: HashSet<String> = HashSet::new();
    let mut finals: HashMap<String, Value> = HashMap::new();
    let (mut resumes, mut retries) = (0, 0);
    // Payments arrive in waves over ten seconds, so that the stalls meet work in every state.
    let waves = 8;
    let mut next_wave = Instant::now();
    // Most settle in seconds. A continued attempt whose card a network rule blocked after the
    // attempt began waits out its earlier try's send window first (about 135 s here).
    let deadline = Instant::now() + Duration::from_secs(240);
    while ids.len() < PAYMENTS || !unsettled.is_empty() {
        if ids.len() < PAYMENTS && Instant::now() >= next_wave {
            for n in ids.len()..(ids.len() + PAYMENTS / waves).min(PAYMENTS) {
                let (id, customer) = create(&api, &customers, n).await;
                customer_of.insert(id.clone(), customer);
                unsettled.insert(id.clone());
                ids.push(id);
            }
            next_wave += Duration::from_millis(1300);
        }
        assert!(
            Instant::now() < deadline,
            "{} payments unsettled, e.g. {:#}",
            unsettled.len(),
            api.get(unsettled.iter().next().unwrap()).await
        );
        let batch: Vec<String> = unsettled.iter().take(40).cloned().collect();
        for id in batch {
            let p = api.get(&id).await;
            match p["status"].as_str().unwrap() {
                "succeeded" | "failed" | "canceled" => {
                    unsettled.remove(&id);
                    finals.insert(id, p);
                }
                "requires_attention" => panic!("a stall made a payment require attention: {p:#}"),
                "paused" => {
                    let customer = &customer_of[&id];
                    if !good_cards.contains_key(customer) {
                        let pm = sandbox
                            .post("/v1/payment_methods/pm_card_visa/attach")
                            .param("customer", customer)
                            .send()
                            .await
                            .id();
                        good_cards.insert(customer.clone(), pm);
                    }
                    let body = json!({"payment_method": good_cards[customer]});
                    let (a, b) = tokio::join!(api.resume(&id, body.clone()), api.resume(&id, body));
                    resumes += usize::from(a == 200) + usize::from(b == 200);
                }
                "pending" if p["attempts"].as_array().is_some_and(|a| !a.is_empty()) => {
                    let (a, b) =
                        tokio::join!(api.resume(&id, json!({})), api.resume(&id, json!({})));
                    retries += usize::from(a == 200) + usize::from(b == 200);
                }
                _ => {}
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let workers = chaos.join().unwrap();
    for mut w in workers {
        process::terminate(&mut w, Duration::from_secs(30));
    }
    assert!(
        long_stalls.load(Ordering::Relaxed) >= 2,
        "the payments settled before a stall outlived a lease"
    );
    assert!(
        resumes > 0 && retries > 0,
        "resumes {resumes}, retries {retries}"
    );

    // The processor's truth.
    sandbox.reset_faults().await;
    let by_payment = truth::intents_by_payment(&sandbox, &customers).await;
    let mut succeeded = 0;
    for id in &ids {
        let pis = by_payment.get(id).cloned().unwrap_or_default();
        assert!(pis.len() <= 1, "{id}: {} PaymentIntents", pis.len());
        let charged = pis.iter().filter(|pi| pi["status"] == "succeeded").count();
        let status = finals[id]["status"].as_str().unwrap();
        match status {
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
    eprintln!(
        "{PAYMENTS} payments through {} long stalls, {resumes} resumes and {retries} retries: {succeeded} succeeded",
        long_stalls.load(Ordering::Relaxed)
    );
    // Every payment on a good card succeeded; every failure is the card's (a decline, or a
    // network rule: all copies of a sandbox test card share one fingerprint, so Visa's 20
    // reattempts in 30 days block most payments on the two declining cards).
    assert!(succeeded >= PAYMENTS / 2, "only {succeeded} succeeded");
    for p in finals.values().filter(|p| p["status"] == "failed") {
        let why = p["last_error"].as_str().unwrap_or("");
        assert!(
            why.starts_with("card_declined") || why.starts_with("blocked by network rule"),
            "{p:#}"
        );
    }
}
