//! Events reach configured endpoints signed with Stripe's scheme.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flint_testkit::poll_until;
use flint_testkit::sandbox::spawn_sandbox_with;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type Received = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver(fail_first: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let failures = Arc::new(Mutex::new(fail_first));
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State((received, failures)): State<(Received, Arc<Mutex<usize>>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let signature = headers["stripe-signature"].to_str().unwrap().to_owned();
                    received
                        .lock()
                        .unwrap()
                        .push((signature, String::from_utf8(body.to_vec()).unwrap()));
                    StatusCode::OK
                },
            ),
        )
        .with_state((Arc::clone(&received), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn verify(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{body}", t.unwrap()).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    v1.contains(&expected)
}

#[tokio::test]
async fn intent_events_are_delivered_signed_and_retried_after_a_failure() {
    let (url, received) = receiver(1).await;
    let sandbox = spawn_sandbox_with(|c| {
        c.webhook_urls = vec![url];
        c.webhook_secret = flint_shared::config::Secret::new("whsec_test_secret");
    })
    .await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let r = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "900"),
            ("currency", "usd"),
            ("customer", &cus),
            ("payment_method", &pm),
            ("confirm", "true"),
            ("off_session", "true"),
        ])
        .idempotency_key("evt-1")
        .send()
        .await;
    let pi = r.id();
    let events = poll_until(
        Duration::from_secs(10),
        "created, charge.succeeded and succeeded events",
        || async {
            let got = received.lock().unwrap().clone();
            (got.len() >= 3).then_some(got)
        },
    )
    .await;
    let mut types = Vec::new();
    for (signature, body) in &events {
        assert!(
            verify("whsec_test_secret", signature, body),
            "bad signature {signature}"
        );
        assert!(!verify("whsec_other", signature, body));
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["object"], "event");
        assert_eq!(event["request"]["idempotency_key"], "evt-1");
        types.push(event["type"].as_str().unwrap().to_owned());
        if event["type"] == "payment_intent.succeeded" {
            assert_eq!(event["data"]["object"]["id"], pi.as_str());
            let fetched = sandbox
                .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
                .send()
                .await;
            assert_eq!(fetched.body["type"], "payment_intent.succeeded");
        }
    }
    types.sort();
    assert_eq!(
        types,
        [
            "charge.succeeded",
            "payment_intent.created",
            "payment_intent.succeeded"
        ]
    );
}
