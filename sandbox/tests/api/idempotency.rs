use flint_shared::config::FaultConfig;
use flint_testkit::poll_until;
use flint_testkit::sandbox::{OTHER_KEY, spawn_sandbox, spawn_sandbox_with};
use std::time::Duration;

#[tokio::test]
async fn the_same_key_and_parameters_replay_the_saved_response() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", &cus),
        ("payment_method", &pm),
        ("confirm", "true"),
        ("off_session", "true"),
    ];
    let first = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("charge-1")
        .send()
        .await;
    let second = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("charge-1")
        .send()
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.header("idempotency-key"), Some("charge-1"));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, second.body, "byte-for-byte the saved response");
    let all = sandbox
        .get("/v1/payment_intents")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(
        all.body["data"].as_array().unwrap().len(),
        1,
        "one charge, not two"
    );
}

#[tokio::test]
async fn declines_are_saved_and_replayed_too() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_chargeDeclined").await;
    let params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", &cus),
        ("payment_method", &pm),
        ("confirm", "true"),
        ("off_session", "true"),
    ];
    let first = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("d-1")
        .send()
        .await;
    let second = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("d-1")
        .send()
        .await;
    assert_eq!((first.status, second.status), (402, 402));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, second.body);
}

#[tokio::test]
async fn reusing_a_key_with_other_parameters_or_endpoint_is_an_idempotency_error() {
    let sandbox = spawn_sandbox().await;
    let ok = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "1000"), ("currency", "usd")])
        .idempotency_key("k")
        .send()
        .await;
    assert_eq!(ok.status, 200);
    let other = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "1001"), ("currency", "usd")])
        .idempotency_key("k")
        .send()
        .await;
    assert_eq!(other.status, 400);
    assert_eq!(other.body["error"]["type"], "idempotency_error");
    assert!(
        other.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Try using a key other than 'k'")
    );
    let other_endpoint = sandbox
        .post("/v1/customers")
        .idempotency_key("k")
        .send()
        .await;
    assert_eq!(other_endpoint.body["error"]["type"], "idempotency_error");
    // Keys are per account: the other account may use "k" freely.
    let elsewhere = sandbox
        .post("/v1/customers")
        .key(OTHER_KEY)
        .idempotency_key("k")
        .send()
        .await;
    assert_eq!(elsewhere.status, 200);
    // Parameter order is not a difference.
    let reordered = sandbox
        .post("/v1/payment_intents")
        .params(&[("currency", "usd"), ("amount", "1000")])
        .idempotency_key("k")
        .send()
        .await;
    assert_eq!(reordered.header("idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn a_concurrent_request_with_the_same_key_gets_409_while_the_first_runs() {
    let sandbox = spawn_sandbox().await;
    // The latency runs while the key is held, so whichever request claims it first keeps it
    // for a full second, and the other one, sent at the same moment, finds it in flight.
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 1000,
            ..FaultConfig::default()
        })
        .await;
    let params = [("amount", "1000"), ("currency", "usd")];
    let first = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("race")
        .send();
    let second = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("race")
        .send();
    let (a, b) = tokio::join!(first, second);
    let statuses = {
        let mut s = [a.status, b.status];
        s.sort_unstable();
        s
    };
    assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
    let conflict = if a.status == 409 { &a } else { &b };
    assert_eq!(conflict.error_code(), Some("idempotency_key_in_use"));
    assert_eq!(conflict.header("stripe-should-retry"), Some("true"));
    sandbox.reset_faults().await;
    let after = sandbox
        .post("/v1/payment_intents")
        .params(&params)
        .idempotency_key("race")
        .send()
        .await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    let all = sandbox.get("/v1/payment_intents").send().await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn requests_that_fail_validation_save_nothing_under_their_key() {
    let sandbox = spawn_sandbox().await;
    let bad = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "10"), ("currency", "usd")])
        .idempotency_key("v")
        .send()
        .await;
    assert_eq!(bad.error_code(), Some("amount_too_small"));
    let good = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "1000"), ("currency", "usd")])
        .idempotency_key("v")
        .send()
        .await;
    assert_eq!(good.status, 200, "the key was not consumed: {}", good.body);
    assert_eq!(good.header("idempotent-replayed"), None);
}

#[tokio::test]
async fn saved_results_expire_after_the_retention() {
    let sandbox = spawn_sandbox_with(|c| c.idempotency_retention_secs = 1).await;
    let first = sandbox
        .post("/v1/customers")
        .param("name", "a")
        .idempotency_key("short")
        .send()
        .await;
    assert_eq!(first.status, 200);
    let immediately = sandbox
        .post("/v1/customers")
        .param("name", "b")
        .idempotency_key("short")
        .send()
        .await;
    assert_eq!(immediately.body["error"]["type"], "idempotency_error");
    // Once pruned, the key is a new request ("we generate a new request if a key is reused after
    // the original is pruned").
    let fresh = poll_until(Duration::from_secs(5), "the key to expire", || async {
        let r = sandbox
            .post("/v1/customers")
            .param("name", "b")
            .idempotency_key("short")
            .send()
            .await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_ne!(fresh.id(), first.id());
    assert_eq!(fresh.body["name"], "b");
}

#[tokio::test]
async fn keys_longer_than_255_characters_are_refused() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox
        .post("/v1/customers")
        .idempotency_key(&"k".repeat(256))
        .send()
        .await;
    assert_eq!(r.status, 400);
    let ok = sandbox
        .post("/v1/customers")
        .idempotency_key(&"k".repeat(255))
        .send()
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_request_whose_client_went_away_still_completes_and_its_key_replays() {
    let sandbox = spawn_sandbox().await;
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 400,
            ..FaultConfig::default()
        })
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/v1/payment_intents", sandbox.base_url))
        .bearer_auth(flint_testkit::sandbox::KEY)
        .header("Idempotency-Key", "gone")
        .form(&[("amount", "1000"), ("currency", "usd")])
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    let replay = poll_until(
        Duration::from_secs(5),
        "the abandoned request to finish",
        || async {
            let r = sandbox
                .post("/v1/payment_intents")
                .params(&[("amount", "1000"), ("currency", "usd")])
                .idempotency_key("gone")
                .send()
                .await;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    assert_eq!(
        replay.header("idempotent-replayed"),
        Some("true"),
        "the abandoned request ran to completion"
    );
    sandbox.reset_faults().await;
    assert_eq!(
        sandbox.get("/v1/payment_intents").send().await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_forgotten_key_is_a_new_request_and_charges_again() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", &cus),
        ("payment_method", &pm),
        ("confirm", "true"),
        ("off_session", "true"),
    ];
    let send = || {
        sandbox
            .post("/v1/payment_intents")
            .params(&params)
            .idempotency_key("charge-forgotten")
            .send()
    };
    let first = send().await;
    assert!(sandbox.expire_idempotency_keys().await >= 1);
    // What Stripe does a day later: the key means nothing, so the same request charges again.
    let second = send().await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(first.id(), second.id());
}
