//! The fleet Prometheus scrapes and the load it runs: Redis, the sandbox as processor, a
//! webhook receiver, `flint enqueuer` and two `flint worker` processes, and payments driven
//! through them (successes, declines, processor faults, an idempotent replay, a refused
//! request, webhook deliveries).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use flint_shared::config::{ErrorRates, FaultConfig};
use flint_testkit::poll_until;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::{TestSandbox, spawn_sandbox};
use serde_json::{Value, json};

use crate::fleet;
use crate::server::Guard;

const API_KEY: &str = "prometheus-test-key";

/// Decline scenarios of the sandbox's saved cards: soft (generic, insufficient funds), hard
/// (lost card, expired card) and a radar block.
const DECLINING_CARDS: [&str; 5] = [
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedLostCard",
    "pm_card_chargeDeclinedExpiredCard",
    "pm_card_chargeDeclinedFraudulent",
];
const SUCCEEDING: usize = 24;

/// A `flint` process and the address it serves on (`host:port`).
#[derive(Debug)]
pub struct Flint {
    _process: Guard,
    pub addr: String,
}

impl Flint {
    /// `flint --config FILE ROLE --listen 127.0.0.1:0`, returned once it prints where it serves.
    fn start(dir: &Path, config: &Path, role: &str, name: &str) -> Flint {
        let mut command = Command::new(fleet::FLINT);
        command
            .arg("--config")
            .arg(config)
            .args([role, "--listen", "127.0.0.1:0"])
            .env("FLINT__LOG__LEVEL", "warn")
            .env("FLINT__LOG__FORMAT", "text")
            .env("NO_COLOR", "1");
        let mut guard = Guard::spawn(
            name,
            command,
            dir.join(format!("{name}.log")),
            true,
            "flint binary missing",
        );
        let line = guard.first_line();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .filter(|a| a.contains(':'))
            .unwrap_or_else(|| panic!("{name}: no address in {line:?}"))
            .to_owned();
        Flint {
            _process: guard,
            addr,
        }
    }

    pub async fn metrics(&self, http: &reqwest::Client) -> String {
        let r = http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}/metrics", self.addr);
        r.text().await.unwrap()
    }
}

/// Redis, the sandbox, a webhook receiver, `flint enqueuer` with an endpoint registered for
/// the tenant, and two `flint worker` processes sweeping every second under a low fleet-wide
/// processor rate limit. Processes first: they are killed before Redis and the sandbox go.
#[derive(Debug)]
pub struct Fleet {
    pub workers: Vec<Flint>,
    pub enqueuer: Flint,
    api: String,
    deliveries: Arc<AtomicUsize>,
    sandbox: TestSandbox,
    _redis: RedisServer,
    _dir: tempfile::TempDir,
}

/// The webhook receiver: one delivery in four is answered 500 (so retries happen).
async fn receive(State(count): State<Arc<AtomicUsize>>) -> StatusCode {
    if count.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

impl Fleet {
    pub async fn start(http: &reqwest::Client) -> Fleet {
        let redis = RedisServer::start();
        let sandbox = spawn_sandbox().await;
        let dir = tempfile::tempdir().unwrap();

        let deliveries = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = format!("http://{}/hooks", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(Arc::clone(&deliveries));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let config = fleet::worker_config(
            dir.path(),
            &redis,
            &sandbox.base_url,
            API_KEY,
            "concurrency = 8\nsweep_interval_secs = 1\nlease_secs = 5\nshutdown_grace_secs = 1",
            "rate_limit_per_second = 8\nrate_limit_burst = 2\nmax_network_retries = 3\n\
             [webhooks]\nallow_http = true\nallow_private_networks = true\ntimeout_ms = 2000\n\
             first_retry_delay_ms = 50\nmax_retry_delay_secs = 1",
        );
        let enqueuer = Flint::start(dir.path(), &config, "enqueuer", "enqueuer");
        let api = format!("http://{}", enqueuer.addr);
        let endpoint: Value = http
            .post(format!("{api}/v1/webhook_endpoints"))
            .bearer_auth(API_KEY)
            .json(&json!({"url": receiver, "enabled_events": ["*"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(endpoint["secret"].is_string(), "{endpoint}");
        let workers = (1..=2)
            .map(|n| Flint::start(dir.path(), &config, "worker", &format!("worker-{n}")))
            .collect();
        Fleet {
            workers,
            enqueuer,
            api,
            deliveries,
            sandbox,
            _redis: redis,
            _dir: dir,
        }
    }

    /// `/v1` requests the sandbox has received.
    async fn processor_requests(&self, http: &reqwest::Client) -> u64 {
        let stats: Value = http
            .get(format!("{}/__sandbox/stats", self.sandbox.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["requests"].as_u64().unwrap()
    }

    async fn create(
        &self,
        http: &reqwest::Client,
        key: &str,
        (customer, card): &(String, String),
        value: usize,
    ) -> reqwest::Response {
        let purposes = ["subscription", "repeat_purchase", "balance_recovery"];
        http.post(format!("{}/v1/off_session_payments", self.api))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", key)
            .json(&json!({
                "customer": customer,
                "payment_method": card,
                "amount": {"value": value, "currency": "usd"},
                "purpose": purposes[value % purposes.len()],
                "initiated_by": {"type": "service", "id": "prometheus-test"}
            }))
            .send()
            .await
            .unwrap()
    }

    /// The load: payments that succeed and payments that decline, under processor faults,
    /// an idempotent replay and a refused request; returns once every succeeding payment has
    /// succeeded and a webhook was delivered.
    pub async fn drive_load(&self, http: &reqwest::Client) {
        let mut visa = Vec::new();
        for _ in 0..4 {
            visa.push(self.sandbox.customer_with_card("pm_card_visa").await);
        }
        let mut declining = Vec::new();
        for card in DECLINING_CARDS {
            declining.push(self.sandbox.customer_with_card(card).await);
        }
        // From now on the processor answers some requests 429 or 5xx (before doing anything).
        let sent_before = self.processor_requests(http).await;
        self.sandbox
            .set_faults(&FaultConfig {
                rate_limit_rate: 0.15,
                before_commit: ErrorRates {
                    http_500: 0.05,
                    http_503: 0.1,
                    ..ErrorRates::default()
                },
                ..FaultConfig::default()
            })
            .await;

        let mut succeeding = Vec::new();
        for n in 0..SUCCEEDING {
            let r = self
                .create(
                    http,
                    &format!("prom-visa-{n}"),
                    &visa[n % visa.len()],
                    1000 + n,
                )
                .await;
            assert_eq!(r.status(), 202);
            let id = r.json::<Value>().await.unwrap()["id"].clone();
            succeeding.push(id.as_str().unwrap().to_owned());
        }
        for (k, customer) in declining.iter().enumerate() {
            for n in 0..2 {
                let r = self
                    .create(http, &format!("prom-decline-{k}-{n}"), customer, 2000 + n)
                    .await;
                assert_eq!(r.status(), 202);
            }
        }
        // The same request again: answered from the idempotency record.
        let replay = self.create(http, "prom-visa-0", &visa[0], 1000).await;
        assert!(replay.status().is_success(), "{}", replay.status());
        assert_eq!(replay.json::<Value>().await.unwrap()["id"], succeeding[0]);
        // Refused: no Idempotency-Key.
        let refused = http
            .post(format!("{}/v1/off_session_payments", self.api))
            .bearer_auth(API_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(refused.status().is_client_error(), "{}", refused.status());

        // Faults while the fleet sends the processor as many requests as there are payments
        // (some answered 429 or 5xx), then none, so that every payment settles promptly.
        let payments = (SUCCEEDING + 2 * DECLINING_CARDS.len()) as u64;
        poll_until(
            Duration::from_secs(60),
            "the fleet's requests to the processor",
            || async {
                (self.processor_requests(http).await >= sent_before + payments).then_some(())
            },
        )
        .await;
        self.sandbox.reset_faults().await;

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pending = succeeding;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for id in pending {
                let p: Value = http
                    .get(format!("{}/v1/off_session_payments/{id}", self.api))
                    .bearer_auth(API_KEY)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if p["status"] != "succeeded" {
                    still.push(id);
                }
            }
            assert!(
                Instant::now() < deadline,
                "Visa payments not succeeded after 60 s: {still:?}"
            );
            pending = still;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        poll_until(Duration::from_secs(30), "a webhook delivery", || async {
            (self.deliveries.load(Ordering::SeqCst) > 0).then_some(())
        })
        .await;
        let events = http
            .get(format!("{}/v1/events?limit=10", self.api))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
    }
}
