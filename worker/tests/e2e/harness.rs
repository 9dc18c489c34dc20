use std::time::Duration;

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_testkit::poll_until;
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::{KEY, TestSandbox, spawn_sandbox};
use flint_worker::WorkerApp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const API_KEY: &str = "e2e-api-key";

pub struct Stack {
    pub api: String,
    pub sandbox: TestSandbox,
    pub http: reqwest::Client,
    pub redis: RedisServer,
    /// The configuration the API and the worker were built from.
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn stack(retry_delays_ms: Vec<u64>) -> Stack {
    stack_with(retry_delays_ms, true).await
}

/// The API, Redis and the sandbox, without a worker: the test runs the charge pipeline itself.
pub async fn api_only(retry_delays_ms: Vec<u64>) -> Stack {
    stack_with(retry_delays_ms, false).await
}

pub async fn stack_with(retry_delays_ms: Vec<u64>, with_worker: bool) -> Stack {
    stack_configured(retry_delays_ms, with_worker, |_| {}).await
}

/// A stack whose configuration `adjust` changes last.
pub async fn stack_configured(
    retry_delays_ms: Vec<u64>,
    with_worker: bool,
    adjust: impl FnOnce(&mut Config),
) -> Stack {
    let redis = RedisServer::start();
    let sandbox = spawn_sandbox().await;
    let mut config = Config::default();
    config.redis.url = Secret::new(redis.url());
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.worker.listen = "127.0.0.1:0".parse().unwrap();
    config.worker.retry_delays_ms = retry_delays_ms;
    config.worker.lease_secs = 2;
    config.worker.concurrency = 16;
    config.processor.api_base = sandbox.base_url.clone();
    config.processor.max_network_retries = 2;
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        api_key_sha256: hex::encode(Sha256::digest(API_KEY.as_bytes())),
        processor_secret_key: Secret::new(KEY),
    }];
    config.queue.partitions = flint_testkit::layouts::partitions();
    adjust(&mut config);
    let api = Application::build(&config).await.unwrap();
    let api_url = format!("http://{}", api.local_addr());
    tokio::spawn(api.run(std::future::pending()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    if with_worker {
        let worker = WorkerApp::build(&config).await.unwrap();
        tokio::spawn(worker.run(async {
            let _ = stopped.await;
        }));
    }
    Stack {
        api: api_url,
        sandbox,
        http: reqwest::Client::new(),
        redis,
        config,
        stop: Some(stop),
    }
}

impl Stack {
    /// Creates a payment through the API; `extra` is merged into the body.
    pub async fn pay(&self, customer: &str, payment_method: Option<&str>, extra: Value) -> String {
        let mut body = json!({
            "customer": customer,
            "amount": {"value": 2500, "currency": "usd"},
            "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "billing"},
            "context": {"invoice_id": "in_1"}
        });
        if let Some(pm) = payment_method {
            body["payment_method"] = json!(pm);
        }
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let r = self
            .http
            .post(format!("{}/v1/off_session_payments", self.api))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", flint_shared::ids::random_token(12))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn payment(&self, id: &str) -> Value {
        self.get(&format!("/v1/off_session_payments/{id}")).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.api))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.api))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the payment's status is one of `statuses`.
    pub async fn settles(&self, id: &str, statuses: &[&str]) -> Value {
        poll_until(
            Duration::from_secs(30),
            &format!("payment {id} to reach {statuses:?}"),
            || async {
                let p = self.payment(id).await;
                statuses
                    .contains(&p["status"].as_str().unwrap_or(""))
                    .then_some(p)
            },
        )
        .await
    }

    /// The sandbox's PaymentIntents of `customer`.
    pub async fn intents(&self, customer: &str) -> Vec<Value> {
        let r = self
            .sandbox
            .get("/v1/payment_intents")
            .params(&[("customer", customer), ("limit", "100")])
            .send()
            .await;
        r.body["data"].as_array().cloned().unwrap_or_default()
    }
}
