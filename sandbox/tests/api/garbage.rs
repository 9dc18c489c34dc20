//! Generated nonsense thrown at every route: the sandbox answers 4xx, never 5xx, never panics.

use flint_testkit::sandbox::spawn_sandbox;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PATHS: &[(&str, &str)] = &[
    ("POST", "/v1/customers"),
    ("POST", "/v1/customers/{cus}"),
    ("GET", "/v1/customers/{cus}"),
    ("DELETE", "/v1/customers/{cus}"),
    ("GET", "/v1/customers/{cus}/payment_methods"),
    ("POST", "/v1/payment_methods"),
    ("GET", "/v1/payment_methods"),
    ("POST", "/v1/payment_methods/{pm}/attach"),
    ("POST", "/v1/payment_methods/{pm}/detach"),
    ("POST", "/v1/payment_intents"),
    ("GET", "/v1/payment_intents"),
    ("GET", "/v1/payment_intents/{pi}"),
    ("POST", "/v1/payment_intents/{pi}/confirm"),
    ("POST", "/v1/payment_intents/{pi}/cancel"),
];

const KEYS: &[&str] = &[
    "amount",
    "currency",
    "customer",
    "payment_method",
    "confirm",
    "off_session",
    "metadata[a]",
    "metadata",
    "expand[]",
    "expand[0]",
    "limit",
    "starting_after",
    "ending_before",
    "card[token]",
    "type",
    "invoice_settings[default_payment_method]",
    "cancellation_reason",
    "description",
    "statement_descriptor_suffix",
    "name",
    "email",
    "x[y][z]",
    "a[]",
    "[",
    "]",
    "error_on_requires_action",
    "payment_method_types[]",
    "capture_method",
];

const VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "1000",
    "99999999999999999999",
    "usd",
    "USD",
    "xx",
    "true",
    "false",
    "maybe",
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "tok_visa",
    "cus_x",
    "pi_x",
    "card",
    "%00",
    "é",
    "null",
    "[]",
    "{}",
];

#[tokio::test]
async fn random_requests_never_get_a_5xx() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let pi = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "1000"), ("currency", "usd")])
        .send()
        .await
        .id();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for i in 0..1500 {
        let (method, template) = PATHS[rng.random_range(0..PATHS.len())];
        let path = template
            .replace("{cus}", &cus)
            .replace("{pm}", &pm)
            .replace("{pi}", &pi);
        let n = rng.random_range(0..6);
        let params: Vec<(&str, &str)> = (0..n)
            .map(|_| {
                (
                    KEYS[rng.random_range(0..KEYS.len())],
                    VALUES[rng.random_range(0..VALUES.len())],
                )
            })
            .collect();
        let call = match method {
            "GET" => sandbox.get(&path),
            "DELETE" => sandbox.delete(&path),
            _ => sandbox.post(&path),
        };
        let call = if rng.random_bool(0.3) {
            call.idempotency_key(&format!("k{}", rng.random_range(0..20)))
        } else {
            call
        };
        let r = call.params(&params).send().await;
        assert!(
            r.status < 500,
            "request {i}: {method} {path} {params:?} → {} {}",
            r.status,
            r.body
        );
        assert!(r.header("request-id").is_some());
        if r.status >= 400 {
            assert!(r.body["error"]["message"].is_string(), "{}", r.body);
        }
    }
}

#[tokio::test]
async fn raw_garbage_bodies_are_400s() {
    let sandbox = spawn_sandbox().await;
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..300 {
        let len = rng.random_range(0..200);
        let body: Vec<u8> = (0..len).map(|_| rng.random::<u8>()).collect();
        let r = sandbox
            .post("/v1/payment_intents")
            .raw_body("application/x-www-form-urlencoded", body.clone())
            .send()
            .await;
        assert!(
            r.status == 400 || r.status == 200,
            "{body:?} → {} {}",
            r.status,
            r.body
        );
    }
}
