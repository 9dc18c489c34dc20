use std::time::Duration;

use flint_enqueuer::Application;
use flint_queue::{Queue, QueueConfig, QueueStats};
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_shared::partition::Partitions;
use flint_shared::payment::Payment;
use flint_shared::payment::store::{JobAction, Store};
use flint_shared::redis_target::RedisTarget;
use flint_shared::time::Timestamp;
use flint_testkit::redis::RedisServer;
use reqwest::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const KEY_A: &str = "flint_test_key_tenant_a";
pub const KEY_B: &str = "flint_test_key_tenant_b";

pub struct TestApp {
    pub base: String,
    pub redis: RedisServer,
    pub http: reqwest::Client,
    /// The charge queue's partitions, in partition order.
    pub queues: Vec<Queue>,
    pub partitions: Partitions,
}

pub fn tenant(id: &str, key: &str) -> TenantConfig {
    TenantConfig {
        id: id.to_owned(),
        api_key_sha256: hex::encode(Sha256::digest(key.as_bytes())),
        processor_secret_key: Secret::new(format!("sk_test_{id}")),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let redis = RedisServer::start();
    let mut config = Config::default();
    config.redis.url = Secret::new(redis.url());
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.tenants = vec![tenant("acme", KEY_A), tenant("globex", KEY_B)];
    config.queue.partitions = flint_testkit::layouts::partitions();
    adjust(&mut config);
    let app = Application::build(&config)
        .await
        .expect("the enqueuer binds port 0");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    let partitions = Partitions::new(&config.queue.name, config.queue.partitions);
    let mut queues = Vec::new();
    for (p, tag) in (0u16..).zip(partitions.tags()) {
        let queue_config = QueueConfig::new(&config.queue.name).in_partition(p, tag.clone());
        queues.push(Queue::connect(&redis.url(), queue_config).await.unwrap());
    }
    TestApp {
        base,
        redis,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        queues,
        partitions,
    }
}

/// A valid create body.
pub fn body() -> Value {
    json!({
        "customer": "cus_123",
        "amount": {"value": 2000, "currency": "usd"},
        "purpose": "subscription",
        "context": {"subscription_id": "sub_9", "invoice_id": "in_7"},
        "initiated_by": {"type": "service", "id": "billing"},
        "metadata": {"plan": "pro"}
    })
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn from(r: Response) -> Answer {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn param(&self) -> Option<&str> {
        self.body["error"]["param"].as_str()
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {}", self.body))
            .to_owned()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The names of the keys matching `pattern` in the app's Redis.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.redis.connect().await;
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn create_as(&self, api_key: &str, idem: &str, body: &Value) -> Answer {
        Answer::from(
            self.http
                .post(self.url("/v1/off_session_payments"))
                .bearer_auth(api_key)
                .header("Idempotency-Key", idem)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn create(&self, idem: &str, body: &Value) -> Answer {
        self.create_as(KEY_A, idem, body).await
    }

    pub async fn get_as(&self, api_key: &str, path: &str) -> Answer {
        Answer::from(
            self.http
                .get(self.url(path))
                .bearer_auth(api_key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_as(KEY_A, path).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Answer {
        self.post_as(KEY_A, path, body).await
    }

    pub async fn post_as(&self, api_key: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.post(self.url(path)).bearer_auth(api_key);
        if let Some(b) = body {
            request = request.json(&b);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    pub async fn delete_as(&self, api_key: &str, path: &str) -> Answer {
        Answer::from(
            self.http
                .delete(self.url(path))
                .bearer_auth(api_key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The charge queue's depth, summed over its partitions.
    pub async fn stats(&self) -> QueueStats {
        let mut all = Vec::new();
        for queue in &self.queues {
            all.push(queue.stats().await.unwrap());
        }
        all.into_iter().sum()
    }

    /// `flint:{<tag>}`: the start of the keys of payment `id`'s partition.
    pub fn prefix_of(&self, payment: &str) -> String {
        format!(
            "flint:{{{}}}",
            self.partitions.tag(self.partitions.of_payment(payment))
        )
    }

    /// The key of payment `id`'s record.
    pub fn payment_key(&self, id: &str) -> String {
        format!("{}:pay:{id}", self.prefix_of(id))
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Puts a stored payment into `status` with `attempts` (all finished), as a worker would:
    /// through the store's compare-and-set, leaving its job as it is.
    pub async fn force_status(&self, id: &str, status: &str, attempts: usize) {
        let store = Store::new(
            RedisTarget::Standalone(self.redis.url()),
            self.partitions.queue(),
            Duration::from_secs(3600),
            Duration::from_secs(30 * 86_400),
        )
        .with_partitions(self.queues.len() as u16);
        let (_, current) = store.get_any(id).await.unwrap().unwrap();
        let mut payment = serde_json::to_value(&current.payment).unwrap();
        payment["status"] = json!(status);
        payment["attempts"] = json!(
            (1..=attempts)
                .map(
                    |n| json!({"number": n, "started_at": "2026-11-26T00:00:00Z",
                "finished_at": "2026-11-26T00:00:01Z", "outcome": "soft_decline"})
                )
                .collect::<Vec<_>>()
        );
        let payment: Payment = serde_json::from_value(payment).unwrap();
        let applied = store
            .transition(&current, &payment, JobAction::None, Timestamp::now())
            .await
            .unwrap();
        assert!(applied.is_some(), "nothing else changes the payment");
    }
}
