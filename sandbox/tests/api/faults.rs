use std::time::{Duration, Instant};

use flint_shared::config::{ErrorRates, FaultConfig, RateLimiterConfig};
use flint_testkit::sandbox::{TestSandbox, spawn_sandbox, spawn_sandbox_with};

async fn intents_of(sandbox: &TestSandbox, customer: &str) -> Vec<serde_json::Value> {
    sandbox
        .get("/v1/payment_intents")
        .param("customer", customer)
        .send()
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn charge_params<'a>(cus: &'a str, pm: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", cus),
        ("payment_method", pm),
        ("confirm", "true"),
        ("off_session", "true"),
    ]
}

#[tokio::test]
async fn a_5xx_before_commit_does_nothing_and_leaves_the_key_free() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    sandbox
        .set_faults(&FaultConfig {
            before_commit: ErrorRates {
                http_503: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let failed = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("b1")
        .send()
        .await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.body["error"]["type"], "api_error");
    sandbox.reset_faults().await;
    assert!(
        intents_of(&sandbox, &cus).await.is_empty(),
        "nothing was charged"
    );
    let retried = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("b1")
        .send()
        .await;
    assert_eq!(retried.status, 200);
    assert_eq!(
        retried.header("idempotent-replayed"),
        None,
        "a fresh execution"
    );
}

#[tokio::test]
async fn a_500_after_commit_charges_and_replays_the_500_as_stripe_does() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    sandbox
        .set_faults(&FaultConfig {
            after_commit: ErrorRates {
                http_500: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let failed = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("a1")
        .send()
        .await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.header("stripe-should-retry"), Some("false"));
    sandbox.reset_faults().await;
    let intents = intents_of(&sandbox, &cus).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(
        intents[0]["status"], "succeeded",
        "the charge happened although the client saw a 500"
    );
    let replay = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("a1")
        .send()
        .await;
    assert_eq!(replay.status, 500);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        intents_of(&sandbox, &cus).await.len(),
        1,
        "the replay charged nothing"
    );
}

#[tokio::test]
async fn a_dropped_connection_after_commit_leaves_a_charge_that_the_key_replays() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    sandbox
        .set_faults(&FaultConfig {
            drop_after_commit_rate: 1.0,
            ..Default::default()
        })
        .await;
    let dropped = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("c1")
        .try_send()
        .await;
    assert!(
        dropped.is_err(),
        "the client sees a transport error, not a response: {dropped:?}"
    );
    // GETs are never dropped (nothing to commit), so the client can reconcile.
    let intents = intents_of(&sandbox, &cus).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["status"], "succeeded");
    sandbox.reset_faults().await;
    let replay = sandbox
        .post("/v1/payment_intents")
        .params(&charge_params(&cus, &pm))
        .idempotency_key("c1")
        .send()
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], intents[0]["id"]);
}

#[tokio::test]
async fn injected_429s_carry_stripes_codes_and_retry_advice() {
    let sandbox = spawn_sandbox().await;
    sandbox
        .set_faults(&FaultConfig {
            rate_limit_rate: 1.0,
            ..Default::default()
        })
        .await;
    let r = sandbox
        .post("/v1/customers")
        .idempotency_key("r1")
        .send()
        .await;
    assert_eq!((r.status, r.error_code()), (429, Some("rate_limit")));
    assert!(r.header("stripe-rate-limited-reason").is_some());
    sandbox
        .set_faults(&FaultConfig {
            lock_timeout_rate: 1.0,
            ..Default::default()
        })
        .await;
    let r = sandbox
        .post("/v1/customers")
        .idempotency_key("r1")
        .send()
        .await;
    assert_eq!((r.status, r.error_code()), (429, Some("lock_timeout")));
    assert_eq!(r.header("stripe-should-retry"), Some("true"));
    sandbox.reset_faults().await;
    let r = sandbox
        .post("/v1/customers")
        .idempotency_key("r1")
        .send()
        .await;
    assert_eq!(r.status, 200, "429s are not saved under the key");
}

#[tokio::test]
async fn faults_can_be_scoped_to_a_path_prefix() {
    let sandbox = spawn_sandbox().await;
    sandbox
        .set_faults(&FaultConfig {
            path_prefix: Some("/v1/payment_intents".into()),
            before_commit: ErrorRates {
                http_502: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    assert_eq!(sandbox.post("/v1/customers").send().await.status, 200);
    assert_eq!(sandbox.get("/v1/payment_intents").send().await.status, 502);
}

#[tokio::test]
async fn latency_is_added_to_requests() {
    let sandbox = spawn_sandbox().await;
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 150,
            latency_random_ms: 50,
            ..Default::default()
        })
        .await;
    let started = Instant::now();
    assert_eq!(sandbox.get("/v1/payment_intents").send().await.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_rate_limiter_throttles_each_key_like_stripe_test_mode() {
    let sandbox = spawn_sandbox_with(|c| {
        c.faults.rate_limiter = RateLimiterConfig {
            enabled: true,
            per_second: 1,
            burst: Some(5),
        };
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = sandbox.get("/v1/payment_intents").send().await;
        if r.status == 429 {
            assert_eq!(r.error_code(), Some("rate_limit"));
        }
        statuses.push(r.status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=6).contains(&ok),
        "a burst of 5 at 1/s lets 5 (or 6) of 10 through: {statuses:?}"
    );
    let other = sandbox
        .get("/v1/payment_intents")
        .key(flint_testkit::sandbox::OTHER_KEY)
        .send()
        .await;
    assert_eq!(other.status, 200, "buckets are per key");
    let stats: serde_json::Value = reqwest::get(format!("{}/__sandbox/stats", sandbox.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 11, "every /v1 request is counted");
    assert_eq!(stats["rate_limited"], 10 - ok as u64, "{stats}");
    sandbox.set_faults(&FaultConfig::default()).await;
    assert_eq!(
        sandbox.get("/v1/payment_intents").send().await.status,
        200,
        "switchable off"
    );
}

#[tokio::test]
async fn invalid_fault_settings_are_refused_and_change_nothing() {
    let sandbox = spawn_sandbox().await;
    let http = reqwest::Client::new();
    for body in [
        r#"{"rate_limit_rate": 2.0}"#,
        r#"{"unknown": 1}"#,
        r#"{"before_commit": {"http_500": 0.6, "http_503": 0.6}}"#,
        "not json",
    ] {
        let r = http
            .post(format!("{}/__sandbox/faults", sandbox.base_url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Invalid fault configuration"),
            "{json}"
        );
    }
    let current: FaultConfig = http
        .get(format!("{}/__sandbox/faults", sandbox.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current, FaultConfig::default());
}
