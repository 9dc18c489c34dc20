use base64::Engine;
use flint_testkit::sandbox::{KEY, OTHER_KEY, spawn_sandbox};

#[tokio::test]
async fn requests_without_a_key_get_401_with_stripes_message() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox.get("/v1/payment_intents").no_key().send().await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("You did not provide an API key")
    );
    assert!(r.header("request-id").unwrap().starts_with("req_"));
}

#[tokio::test]
async fn an_unknown_key_is_401_and_is_echoed_only_redacted() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox
        .get("/v1/payment_intents")
        .key("sk_test_unknownkey9876")
        .send()
        .await;
    assert_eq!(r.status, 401);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "Invalid API Key provided: sk_test_****9876");
    assert!(!r.body.to_string().contains("unknownkey"));
}

#[tokio::test]
async fn live_keys_are_refused() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox
        .get("/v1/payment_intents")
        .key("sk_live_abcdefgh1234")
        .send()
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only test keys")
    );
}

#[tokio::test]
async fn basic_auth_with_the_key_as_user_name_works() {
    let sandbox = spawn_sandbox().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"));
    let r = sandbox
        .get("/v1/payment_intents")
        .no_key()
        .header("Authorization", &format!("Basic {basic}"))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["object"], "list");
}

#[tokio::test]
async fn each_key_sees_only_its_own_data() {
    let sandbox = spawn_sandbox().await;
    let (cus, _) = sandbox.customer_with_card("pm_card_visa").await;
    let mine = sandbox.get(&format!("/v1/customers/{cus}")).send().await;
    assert_eq!(mine.status, 200);
    let theirs = sandbox
        .get(&format!("/v1/customers/{cus}"))
        .key(OTHER_KEY)
        .send()
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.error_code(), Some("resource_missing"));
    let list = sandbox
        .get("/v1/payment_intents")
        .key(OTHER_KEY)
        .send()
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn every_response_carries_request_id_and_stripe_version() {
    let sandbox = spawn_sandbox().await;
    let ok = sandbox.get("/v1/payment_intents").send().await;
    let missing = sandbox.get("/v1/nothing_here").send().await;
    let pinned = sandbox
        .get("/v1/payment_intents")
        .header("Stripe-Version", "2026-07-29.dahlia")
        .send()
        .await;
    for r in [&ok, &missing] {
        assert!(r.header("request-id").unwrap().starts_with("req_"));
        assert_eq!(r.header("stripe-version"), Some("2024-06-20"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_ne!(ok.header("request-id"), missing.header("request-id"));
    assert_eq!(pinned.header("stripe-version"), Some("2026-07-29.dahlia"));
}
