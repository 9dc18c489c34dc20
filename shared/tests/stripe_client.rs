//! The Stripe client against the sandbox over HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use flint_shared::config::{ErrorRates, FaultConfig, Secret};
use flint_shared::ids::PaymentId;
use flint_shared::metadata::Metadata;
use flint_shared::payment::Purpose;
use flint_shared::payment::decline::DeclineCode;
use flint_shared::payment::request::{Context, InitiatedBy};
use flint_shared::processor::stripe::{StripeClient, StripeConfig};
use flint_shared::processor::{CardBrand, IntentRequest, IntentStatus, Processor, ProcessorError};
use flint_shared::time::Timestamp;
use flint_testkit::sandbox::{KEY, TestSandbox, spawn_sandbox};

/// A send deadline no request of these tests reaches.
fn soon() -> Timestamp {
    Timestamp::now().plus(Duration::from_secs(60))
}

fn client(sandbox: &TestSandbox) -> StripeClient {
    let mut config = StripeConfig::new(sandbox.base_url.clone(), Secret::new(KEY));
    config.min_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(20);
    config.timeout = Duration::from_secs(5);
    StripeClient::new(config)
}

fn request(customer: &str, payment_id: &PaymentId) -> IntentRequest {
    IntentRequest {
        payment_id: payment_id.clone(),
        amount_minor: 2500,
        currency: "usd".into(),
        customer: customer.into(),
        description: Some("renewal".into()),
        statement_descriptor_suffix: Some("RENEW".into()),
        purpose: Purpose::Support,
        initiated_by: InitiatedBy::Operator {
            id: "alice".into(),
            reason: Some("customer asked on the phone".into()),
        },
        context: Context {
            invoice_id: Some("in_1".into()),
            ..Context::default()
        },
        metadata: Metadata::new(BTreeMap::from([("plan".to_owned(), "pro".to_owned())])).unwrap(),
        confirm_with: None,
    }
}

#[tokio::test]
async fn a_saved_card_is_charged_once_per_key() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    assert_eq!(
        stripe.default_payment_method(&cus).await.unwrap(),
        Some(pm.clone())
    );
    let id = PaymentId::generate();
    let created = stripe
        .create_intent(&request(&cus, &id), "osp_1:create", soon())
        .await
        .unwrap();
    assert_eq!(created.status, IntentStatus::RequiresPaymentMethod);
    // Flint's id, the audit trail and the context go with the caller's metadata.
    assert_eq!(created.metadata["flint_payment_id"], id.as_str());
    assert_eq!(created.metadata["flint_purpose"], "support");
    assert_eq!(created.metadata["flint_initiated_by"], "operator:alice");
    assert_eq!(
        created.metadata["flint_reason"],
        "customer asked on the phone"
    );
    assert_eq!(created.metadata["plan"], "pro");
    let again = stripe
        .create_intent(&request(&cus, &id), "osp_1:create", soon())
        .await
        .unwrap();
    assert_eq!(again.id, created.id, "the same key gives the same intent");
    let confirmed = stripe
        .confirm_intent(&created.id, &pm, "osp_1:attempt:1", soon())
        .await
        .unwrap();
    assert_eq!(confirmed.status, IntentStatus::Succeeded);
    assert!(confirmed.latest_charge.is_some());
    assert_eq!(confirmed.metadata["invoice_id"], "in_1");
    let replayed = stripe
        .confirm_intent(&created.id, &pm, "osp_1:attempt:1", soon())
        .await
        .unwrap();
    assert_eq!(
        replayed.latest_charge, confirmed.latest_charge,
        "no second charge"
    );
}

#[tokio::test]
async fn declines_and_customer_actions_carry_stripes_codes() {
    let sandbox = spawn_sandbox().await;
    let stripe = client(&sandbox);
    for (card, expect_customer, code, decline) in [
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            false,
            "card_declined",
            Some("insufficient_funds"),
        ),
        (
            "pm_card_chargeDeclinedLostCard",
            false,
            "card_declined",
            Some("lost_card"),
        ),
        (
            "pm_card_authenticationRequired",
            true,
            "authentication_required",
            Some("authentication_required"),
        ),
        (
            "pm_card_chargeDeclinedExpiredCard",
            true,
            "expired_card",
            None,
        ),
    ] {
        let (cus, pm) = sandbox.customer_with_card(card).await;
        let pi = stripe
            .create_intent(
                &request(&cus, &PaymentId::generate()),
                &format!("{card}:create"),
                soon(),
            )
            .await
            .unwrap();
        let err = stripe
            .confirm_intent(&pi.id, &pm, &format!("{card}:1"), soon())
            .await
            .unwrap_err();
        let d = match (&err, expect_customer) {
            (ProcessorError::NeedsCustomer(d), true) | (ProcessorError::Declined(d), false) => d,
            other => panic!("{card}: {other:?}"),
        };
        assert_eq!(d.code, DeclineCode::parse(code), "{card}");
        assert_eq!(d.decline_code, decline.map(DeclineCode::parse), "{card}");
        assert_eq!(d.intent_id.as_deref(), Some(pi.id.as_str()));
        assert!(
            d.request_id
                .as_deref()
                .is_some_and(|r| r.starts_with("req_"))
        );
        let after = stripe.retrieve_intent(&pi.id).await.unwrap();
        assert_eq!(after.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(
            after.last_error.map(|e| e.code),
            Some(DeclineCode::parse(code))
        );
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_key() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let pi = stripe
        .create_intent(
            &request(&cus, &PaymentId::generate()),
            "osp_t:create",
            soon(),
        )
        .await
        .unwrap();
    // A dropped connection after the charge: the retry with the same key gets the saved result.
    sandbox
        .set_faults(&FaultConfig {
            drop_after_commit_rate: 1.0,
            path_prefix: Some(format!("/v1/payment_intents/{}/confirm", pi.id)),
            ..Default::default()
        })
        .await;
    let fault_off = async {
        // Let the first try hit the fault, then lift it so the retry gets through.
        flint_testkit::poll_until(
            Duration::from_secs(5),
            "the first confirm to be charged",
            || async {
                let listed = sandbox
                    .get("/v1/payment_intents")
                    .param("customer", &cus)
                    .send()
                    .await;
                (listed.body["data"][0]["status"] == "succeeded").then_some(())
            },
        )
        .await;
        sandbox.reset_faults().await;
    };
    let (confirmed, ()) = tokio::join!(
        stripe.confirm_intent(&pi.id, &pm, "osp_t:attempt:1", soon()),
        fault_off
    );
    let confirmed = confirmed.unwrap();
    assert_eq!(confirmed.status, IntentStatus::Succeeded);
    let charges = sandbox
        .get(&format!("/v1/payment_intents/{}", pi.id))
        .send()
        .await;
    assert_eq!(
        charges.body["latest_charge"],
        serde_json::json!(confirmed.latest_charge)
    );
}

#[tokio::test]
async fn a_500_after_commit_is_an_unknown_outcome_that_reading_the_intent_resolves() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let id = PaymentId::generate();
    let pi = stripe
        .create_intent(&request(&cus, &id), "osp_u:create", soon())
        .await
        .unwrap();
    sandbox
        .set_faults(&FaultConfig {
            after_commit: ErrorRates {
                http_500: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let err = stripe
        .confirm_intent(&pi.id, &pm, "osp_u:attempt:1", soon())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.reset_faults().await;
    // Stripe replays the saved 500 under that key; the intent tells the truth.
    let truth = stripe.retrieve_intent(&pi.id).await.unwrap();
    assert_eq!(truth.status, IntentStatus::Succeeded);
    let found = stripe
        .find_intent(&cus, id.as_str(), Timestamp::EPOCH)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, pi.id);
}

#[tokio::test]
async fn rate_limits_and_lock_timeouts_are_transient_and_bad_keys_misconfigured() {
    let sandbox = spawn_sandbox().await;
    let (cus, _) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    sandbox
        .set_faults(&FaultConfig {
            lock_timeout_rate: 1.0,
            ..Default::default()
        })
        .await;
    let err = stripe.default_payment_method(&cus).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.reset_faults().await;
    let mut bad = StripeConfig::new(
        sandbox.base_url.clone(),
        Secret::new("sk_test_wrongwrongwrong"),
    );
    bad.max_retries = 0;
    let err = StripeClient::new(bad)
        .default_payment_method(&cus)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessorError::Misconfigured { status: 401, .. }),
        "{err:?}"
    );
    let err = stripe.retrieve_intent("pi_missing").await.unwrap_err();
    assert!(
        matches!(err, ProcessorError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    let err = stripe
        .default_payment_method("cus_missing")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessorError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn saved_cards_are_listed_newest_first_with_their_fingerprints() {
    let sandbox = spawn_sandbox().await;
    let (cus, visa) = sandbox.customer_with_card("pm_card_visa").await;
    let mastercard = sandbox
        .post("/v1/payment_methods/pm_card_mastercard/attach")
        .param("customer", &cus)
        .send()
        .await
        .id();
    let stripe = client(&sandbox);
    let saved = stripe.saved_cards(&cus).await.unwrap();
    let ids: Vec<&str> = saved.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [mastercard.as_str(), visa.as_str()]);
    assert_eq!(saved[0].card.brand, CardBrand::Mastercard);
    assert_eq!(saved[1].card, stripe.card(&visa).await.unwrap());
    assert_ne!(saved[0].card.fingerprint, saved[1].card.fingerprint);
}

/// The sandbox's count of `/v1` requests so far.
async fn requests(sandbox: &TestSandbox) -> u64 {
    sandbox.get("/__sandbox/stats").send().await.body["requests"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn stripe_should_retry_false_wins_over_the_status() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let pi = stripe
        .create_intent(
            &request(&cus, &PaymentId::generate()),
            "osp_s:create",
            soon(),
        )
        .await
        .unwrap();
    // A 500 after the charge, which Stripe marks `Stripe-Should-Retry: false`: the same request
    // would only replay it, so it is sent once, and the outcome left for reading the intent.
    sandbox
        .set_faults(&FaultConfig {
            after_commit: ErrorRates {
                http_500: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let before = requests(&sandbox).await;
    let err = stripe
        .confirm_intent(&pi.id, &pm, "osp_s:attempt:1", soon())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests(&sandbox).await - before, 1, "sent once");
    // A 503 carries no advice: it is retried with the same key (three retries configured).
    sandbox
        .set_faults(&FaultConfig {
            after_commit: ErrorRates {
                http_503: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let before = requests(&sandbox).await;
    let _ = stripe
        .confirm_intent(&pi.id, &pm, "osp_s:attempt:2", soon())
        .await;
    assert_eq!(
        requests(&sandbox).await - before,
        4,
        "sent once and retried three times"
    );
}

#[tokio::test]
async fn ids_go_into_paths_as_one_encoded_segment() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    assert!(stripe.card(&pm).await.is_ok());
    // Unencoded, each of these would reach the saved card itself (dot segments, a query).
    for id in [
        format!("x/../{pm}"),
        format!("{pm}?expand[]=customer"),
        format!("{pm}/."),
    ] {
        let err = stripe.card(&id).await.unwrap_err();
        assert!(
            matches!(err, ProcessorError::Rejected { status: 404, .. }),
            "{id}: {err:?}"
        );
    }
    let err = stripe
        .default_payment_method(&format!("{cus}/../../payment_methods/{pm}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessorError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_confirm_of_an_intent_that_already_succeeded_is_an_unknown_outcome_not_a_rejection() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let pi = stripe
        .create_intent(
            &request(&cus, &PaymentId::generate()),
            "osp_v:create",
            soon(),
        )
        .await
        .unwrap();
    stripe
        .confirm_intent(&pi.id, &pm, "osp_v:attempt:1", soon())
        .await
        .unwrap();
    // Another key (the first one forgotten, say): the processor refuses, the intent is charged.
    let err = stripe
        .confirm_intent(&pi.id, &pm, "osp_v:attempt:1:again", soon())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_is_sent_after_the_attempts_time_to_send() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let pi = stripe
        .create_intent(
            &request(&cus, &PaymentId::generate()),
            "osp_w:create",
            soon(),
        )
        .await
        .unwrap();
    let before = requests(&sandbox).await;
    let past = Timestamp::now();
    let err = stripe
        .confirm_intent(&pi.id, &pm, "osp_w:attempt:1", past)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests(&sandbox).await, before, "not sent");
    // A deadline that passes before a retry stops it: the first try is sent (answered 503
    // after 200 ms), the retries are not, and whether the first took effect is unknown.
    sandbox
        .set_faults(&FaultConfig {
            latency_fixed_ms: 200,
            after_commit: ErrorRates {
                http_503: 1.0,
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
    let before = requests(&sandbox).await;
    let until = Timestamp::now().plus(Duration::from_millis(100));
    let err = stripe
        .confirm_intent(&pi.id, &pm, "osp_w:attempt:2", until)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        requests(&sandbox).await - before,
        1,
        "sent once, not retried"
    );
}

#[tokio::test]
async fn a_search_that_stops_before_the_end_of_a_long_list_does_not_answer_not_found() {
    let sandbox = spawn_sandbox().await;
    let (cus, _) = sandbox.customer_with_card("pm_card_visa").await;
    let stripe = client(&sandbox);
    let older = PaymentId::generate();
    stripe
        .create_intent(&request(&cus, &older), "osp_old:create", soon())
        .await
        .unwrap();
    // 2,000 newer intents (usage billing, say) stand between the search and the oldest one.
    for n in 0..2_000 {
        let r = sandbox
            .post("/v1/payment_intents")
            .params(&[("amount", "100"), ("currency", "usd"), ("customer", &cus)])
            .idempotency_key(&format!("usage-{n}"))
            .send()
            .await;
        assert_eq!(r.status, 200);
    }
    let err = stripe
        .find_intent(&cus, older.as_str(), Timestamp::EPOCH)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    // The search looks only at intents created since the time it is given (a payment's own
    // creation): from an hour ahead, there are none to walk, and the answer is a plain "no".
    let ahead = Timestamp::now().plus(Duration::from_secs(3600));
    assert_eq!(
        stripe
            .find_intent(&cus, older.as_str(), ahead)
            .await
            .unwrap(),
        None
    );
    // A payment that is not there, in a list seen to its end, is simply not found.
    let (short, _) = sandbox.customer_with_card("pm_card_visa").await;
    assert_eq!(
        stripe
            .find_intent(&short, PaymentId::generate().as_str(), Timestamp::EPOCH)
            .await
            .unwrap(),
        None
    );
}
