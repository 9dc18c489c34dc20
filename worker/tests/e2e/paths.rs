use serde_json::json;

use crate::harness::*;

fn kinds(p: &serde_json::Value) -> Vec<String> {
    p["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("off_session_payment.")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_good_card_is_charged_once_and_the_payment_succeeds() {
    let s = stack(vec![200]).await;
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
    let id = s
        .pay(&cus, Some(&pm), json!({"metadata": {"plan": "pro"}}))
        .await;
    let p = s.settles(&id, &["succeeded"]).await;
    assert_eq!(kinds(&p), ["created", "attempt_started", "succeeded"]);
    assert_eq!(p["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(p["attempts"][0]["outcome"], "succeeded");
    let intents = s.intents(&cus).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["amount"], 2500);
    assert_eq!(intents[0]["metadata"]["flint_payment_id"], id.as_str());
    assert_eq!(intents[0]["metadata"]["invoice_id"], "in_1");
    assert_eq!(intents[0]["metadata"]["plan"], "pro");
    assert_eq!(p["processor_payment_intent"], intents[0]["id"]);
}

#[tokio::test]
async fn without_a_method_the_customers_default_is_charged() {
    let s = stack(vec![200]).await;
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_mastercard").await;
    let id = s.pay(&cus, None, json!({})).await;
    let p = s.settles(&id, &["succeeded"]).await;
    assert_eq!(p["attempts"][0]["payment_method"], pm.as_str());
    // The default card was looked up before the start, which recorded it with the attempt:
    // the payment was written three times (created, started, succeeded), not four.
    let events = s.get(&format!("/v1/events?payment={id}")).await;
    let started = &events["data"][1];
    assert_eq!(started["type"], "off_session_payment.attempt_started");
    assert_eq!(
        started["data"]["object"]["attempts"][0]["payment_method"],
        pm.as_str()
    );
    let (_, stored) = crate::pipelines::store(&s)
        .get_any(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, "3");
}

#[tokio::test]
async fn a_soft_decline_is_retried_on_the_schedule_until_attempts_run_out() {
    let s = stack(vec![150, 150]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedInsufficientFunds")
        .await;
    let id = s.pay(&cus, Some(&pm), json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 3, "window_hours": 24}})).await;
    let p = s.settles(&id, &["failed"]).await;
    let attempts = p["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    // Each attempt records its own declined charge (reconciliation compares against it).
    let charges: Vec<&str> = attempts
        .iter()
        .map(|a| a["charge"].as_str().unwrap_or("-"))
        .collect();
    assert!(charges.iter().all(|c| c.starts_with("ch_")), "{charges:?}");
    assert!(
        charges[0] != charges[1] && charges[1] != charges[2],
        "{charges:?}"
    );
    for a in attempts {
        assert_eq!(a["outcome"], "soft_decline");
        assert_eq!(a["decline_code"], "insufficient_funds");
    }
    assert_eq!(
        p["events"].as_array().unwrap().last().unwrap()["detail"],
        "retries exhausted"
    );
    let intents = s.intents(&cus).await;
    assert_eq!(
        intents.len(),
        1,
        "one PaymentIntent per payment, confirmed once per attempt"
    );
}

#[tokio::test]
async fn a_hard_decline_fails_at_once() {
    let s = stack(vec![150]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedLostCard")
        .await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    let p = s.settles(&id, &["failed"]).await;
    assert_eq!(p["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(p["attempts"][0]["outcome"], "hard_decline");
    assert_eq!(
        kinds(&p),
        ["created", "attempt_started", "attempt_failed", "failed"]
    );
    // The worker's transitions are events too, each with the payment as it left it.
    let events = s.get(&format!("/v1/events?payment={id}")).await;
    let events = events["data"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "off_session_payment.failed",
            "off_session_payment.attempt_failed",
            "off_session_payment.attempt_started",
            "off_session_payment.created"
        ]
    );
    let failed = &events[1];
    assert_eq!(failed["data"]["attempt"]["outcome"], "hard_decline");
    assert_eq!(failed["data"]["attempt"]["decline_code"], "lost_card");
    assert_eq!(failed["data"]["object"]["status"], "failed");
    assert_eq!(events[2]["data"]["attempt"]["number"], 1);
    assert_eq!(events[2]["data"]["object"]["status"], "processing");
}

#[tokio::test]
async fn authentication_required_pauses_and_resume_with_a_new_card_succeeds() {
    let s = stack(vec![150]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_authenticationRequired")
        .await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    let p = s.settles(&id, &["paused"]).await;
    assert_eq!(p["attempts"][0]["outcome"], "needs_customer");
    let good = s
        .sandbox
        .post("/v1/payment_methods/pm_card_visa/attach")
        .param("customer", &cus)
        .send()
        .await
        .id();
    let resumed = s
        .post(
            &format!("/v1/off_session_payments/{id}/resume"),
            json!({"payment_method": good}),
        )
        .await;
    assert_eq!(resumed["status"], "pending");
    let p = s.settles(&id, &["succeeded"]).await;
    assert_eq!(p["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(p["attempts"][1]["payment_method"], good.as_str());
    let intents = s.intents(&cus).await;
    assert_eq!(
        intents.len(),
        1,
        "the second attempt confirms the same intent"
    );
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(
        kinds(&p),
        [
            "created",
            "attempt_started",
            "attempt_failed",
            "paused",
            "resumed",
            "attempt_started",
            "succeeded"
        ]
    );
}

#[tokio::test]
async fn an_expired_card_or_no_method_at_all_pauses() {
    let s = stack(vec![150]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedExpiredCard")
        .await;
    let expired = s.pay(&cus, Some(&pm), json!({})).await;
    s.settles(&expired, &["paused"]).await;
    let bare = s.sandbox.post("/v1/customers").send().await.id();
    let none = s.pay(&bare, None, json!({})).await;
    let p = s.settles(&none, &["paused"]).await;
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("no default payment method"),
        "{p}"
    );

    // Nothing was sent for it; resumed with a card, its second attempt makes the payment's
    // one PaymentIntent.
    let card = s
        .sandbox
        .post("/v1/payment_methods/pm_card_visa/attach")
        .param("customer", &bare)
        .send()
        .await
        .id();
    s.post(
        &format!("/v1/off_session_payments/{none}/resume"),
        json!({"payment_method": card}),
    )
    .await;
    let p = s.settles(&none, &["succeeded"]).await;
    assert_eq!(p["attempts"].as_array().unwrap().len(), 2, "{p}");
    let intents = s.intents(&bare).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(p["processor_payment_intent"], intents[0]["id"]);
}

#[tokio::test]
async fn a_cancel_during_a_scheduled_retry_stops_the_payment() {
    let s = stack(vec![60_000]).await;
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_chargeDeclined").await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    let waiting = flint_testkit::poll_until(
        std::time::Duration::from_secs(20),
        "the first decline",
        || async {
            let p = s.payment(&id).await;
            (p["status"] == "pending" && p["attempts"].as_array().is_some_and(|a| a.len() == 1))
                .then_some(p)
        },
    )
    .await;
    assert!(waiting["next_attempt_at"].is_string());
    let canceled = s
        .post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(canceled["status"], "canceled");
    // Retry now would have run it; a canceled payment stays canceled with one attempt.
    assert_eq!(
        s.payment(&id).await["attempts"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_unknown_outcome_is_reconciled_without_a_second_charge() {
    use flint_shared::config::{ErrorRates, FaultConfig};
    let s = stack(vec![150]).await;
    let faults = [
        // Every charging request commits, then answers 500 (replayed for the same key).
        FaultConfig {
            path_prefix: Some("/v1/payment_intents".into()),
            after_commit: ErrorRates {
                http_500: 1.0,
                ..Default::default()
            },
            ..Default::default()
        },
        // Every charging request commits, then the connection is dropped unanswered.
        FaultConfig {
            path_prefix: Some("/v1/payment_intents".into()),
            drop_after_commit_rate: 1.0,
            ..Default::default()
        },
    ];
    for fault in faults {
        let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
        s.sandbox.set_faults(&fault).await;
        let id = s.pay(&cus, Some(&pm), json!({})).await;
        let p = s.settles(&id, &["succeeded"]).await;
        s.sandbox.reset_faults().await;
        assert_eq!(p["attempts"].as_array().unwrap().len(), 1, "{p}");
        let intents = s.intents(&cus).await;
        assert_eq!(intents.len(), 1);
        assert_eq!(intents[0]["status"], "succeeded");
        assert_eq!(p["processor_payment_intent"], intents[0]["id"]);
        assert_eq!(p["attempts"][0]["charge"], intents[0]["latest_charge"]);
    }
}

/// Attaches `card` (a `pm_card_*` token) to `customer`; returns the new payment method id.
async fn attach(s: &Stack, customer: &str, card: &str) -> String {
    let pm = s
        .sandbox
        .post(&format!("/v1/payment_methods/{card}/attach"))
        .param("customer", customer)
        .send()
        .await;
    assert_eq!(pm.status, 200, "{}", pm.body);
    pm.id()
}

#[tokio::test]
async fn a_hard_decline_falls_back_to_each_other_saved_card_once_when_allowed() {
    let s = stack(vec![150]).await;
    let (cus, lost) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedLostCard")
        .await;
    // The same lost card saved twice (same fingerprint), a good card, then a stolen one.
    // Other cards are tried newest first: the stolen card, then the good one.
    let lost_again = attach(&s, &cus, "pm_card_chargeDeclinedLostCard").await;
    let good = attach(&s, &cus, "pm_card_visa").await;
    let stolen = attach(&s, &cus, "pm_card_chargeDeclinedStolenCard").await;
    let policy = json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 1,
        "window_hours": 24, "fallback_to_other_cards": true}});
    let id = s.pay(&cus, None, policy).await;
    let p = s.settles(&id, &["succeeded", "failed"]).await;
    assert_eq!(p["status"], "succeeded", "{p:#}");
    let tried: Vec<&str> = p["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["payment_method"].as_str().unwrap())
        .collect();
    // The default first; the duplicate of the declined card never; every other card once.
    assert_eq!(tried[0], lost);
    assert!(!tried.contains(&lost_again.as_str()), "{tried:?}");
    assert_eq!(tried, [lost.as_str(), stolen.as_str(), good.as_str()]);
    assert_eq!(p["payment_method"], good.as_str());
    assert_eq!(
        kinds(&p)
            .iter()
            .filter(|k| *k == "payment_method_switched")
            .count(),
        2
    );
    let intents = s.intents(&cus).await;
    assert_eq!(intents.len(), 1, "one PaymentIntent per payment");
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["payment_method"], good.as_str());
}

#[tokio::test]
async fn a_fallback_that_runs_out_of_cards_fails_and_without_consent_none_is_tried() {
    let s = stack(vec![150]).await;
    let (cus, lost) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedLostCard")
        .await;
    let stolen = attach(&s, &cus, "pm_card_chargeDeclinedStolenCard").await;
    let fallback = json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 4,
        "window_hours": 24, "fallback_to_other_cards": true}});
    let id = s.pay(&cus, Some(&lost), fallback).await;
    let p = s.settles(&id, &["failed"]).await;
    let attempts = p["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{p:#}");
    assert_eq!(attempts[1]["payment_method"], stolen.as_str());
    assert_eq!(attempts[1]["outcome"], "hard_decline");

    // The default policy does not allow it: one attempt on the given card, failed.
    let id = s.pay(&cus, Some(&stolen), json!({})).await;
    let p = s.settles(&id, &["failed"]).await;
    assert_eq!(p["attempts"].as_array().unwrap().len(), 1, "{p:#}");
    assert!(!kinds(&p).contains(&"payment_method_switched".to_owned()));
}
