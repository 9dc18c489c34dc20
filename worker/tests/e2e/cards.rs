//! Every test card the sandbox knows, each through the API to the end its off-session
//! behaviour calls for (Stripe's documented test-card outcomes and the decline classes): a charge, a soft decline
//! retried until the policy's attempts run out, a hard decline failed at once, or the customer
//! needed (paused).

use serde_json::json;

use crate::harness::*;

/// (card, final status, outcome of each attempt, decline code of the first attempt)
const EXPECTED: &[(&str, &str, &[&str], Option<&str>)] = &[
    ("visa", "succeeded", &["succeeded"], None),
    ("visa_debit", "succeeded", &["succeeded"], None),
    ("mastercard", "succeeded", &["succeeded"], None),
    ("mastercard_debit", "succeeded", &["succeeded"], None),
    ("mastercard_prepaid", "succeeded", &["succeeded"], None),
    ("amex", "succeeded", &["succeeded"], None),
    ("discover", "succeeded", &["succeeded"], None),
    ("diners", "succeeded", &["succeeded"], None),
    ("jcb", "succeeded", &["succeeded"], None),
    ("unionpay", "succeeded", &["succeeded"], None),
    ("createDispute", "succeeded", &["succeeded"], None),
    ("bypassPending", "succeeded", &["succeeded"], None),
    ("riskLevelElevated", "succeeded", &["succeeded"], None),
    ("cvcCheckFail", "succeeded", &["succeeded"], None),
    ("avsZipFail", "succeeded", &["succeeded"], None),
    ("avsLine1Fail", "succeeded", &["succeeded"], None),
    (
        "authenticationRequiredSetupForOffSession",
        "succeeded",
        &["succeeded"],
        None,
    ),
    ("chargeDeclined", "failed", SOFT, Some("generic_decline")),
    (
        "chargeDeclinedInsufficientFunds",
        "failed",
        SOFT,
        Some("insufficient_funds"),
    ),
    (
        "chargeDeclinedProcessingError",
        "failed",
        SOFT,
        Some("processing_error"),
    ),
    (
        "chargeDeclinedVelocityLimitExceeded",
        "failed",
        SOFT,
        Some("card_velocity_exceeded"),
    ),
    (
        "chargeCustomerFail",
        "failed",
        SOFT,
        Some("generic_decline"),
    ),
    (
        "authenticationRequiredChargeDeclinedInsufficientFunds",
        "failed",
        SOFT,
        Some("insufficient_funds"),
    ),
    ("chargeDeclinedLostCard", "failed", HARD, Some("lost_card")),
    (
        "chargeDeclinedStolenCard",
        "failed",
        HARD,
        Some("stolen_card"),
    ),
    ("radarBlock", "failed", HARD, Some("fraudulent")),
    (
        "chargeDeclinedFraudulent",
        "failed",
        HARD,
        Some("fraudulent"),
    ),
    ("riskLevelHighest", "failed", HARD, Some("fraudulent")),
    (
        "chargeDeclinedExpiredCard",
        "paused",
        CUSTOMER,
        Some("expired_card"),
    ),
    (
        "chargeDeclinedIncorrectCvc",
        "paused",
        CUSTOMER,
        Some("incorrect_cvc"),
    ),
    (
        "authenticationRequired",
        "paused",
        CUSTOMER,
        Some("authentication_required"),
    ),
    (
        "authenticationRequiredOnSetup",
        "paused",
        CUSTOMER,
        Some("authentication_required"),
    ),
    (
        "threeDSecure2Required",
        "paused",
        CUSTOMER,
        Some("authentication_required"),
    ),
    (
        "threeDSecureRequired",
        "paused",
        CUSTOMER,
        Some("authentication_required"),
    ),
    // Flint's sandbox extensions. Both soft declines wait out a network rule (72 h, 24 h) that
    // ends beyond this policy's 24 h window, so there is no second attempt.
    (
        "flint_mastercardAdviceTryLater",
        "failed",
        &["soft_decline"],
        Some("do_not_honor"),
    ),
    (
        "flint_mastercardAdviceAccountClosed",
        "failed",
        HARD,
        Some("do_not_honor"),
    ),
    (
        "flint_mastercardAdviceStopRecurring",
        "failed",
        HARD,
        Some("do_not_honor"),
    ),
    (
        "flint_declineRateLimitExceeded",
        "failed",
        &["soft_decline"],
        Some("card_decline_rate_limit_exceeded"),
    ),
];

const SOFT: &[&str] = &["soft_decline", "soft_decline"];
const HARD: &[&str] = &["hard_decline"];
const CUSTOMER: &[&str] = &["needs_customer"];

#[tokio::test]
async fn every_test_card_ends_as_its_off_session_behaviour_calls_for() {
    let mut missing: Vec<&str> = flint_sandbox::test_card_names()
        .filter(|name| !EXPECTED.iter().any(|(card, ..)| card == name))
        .collect();
    missing.sort_unstable();
    assert!(
        missing.is_empty(),
        "cards without an expectation: {missing:?}"
    );

    let s = stack(vec![100]).await;
    let policy =
        json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 2, "window_hours": 24}});
    let mut payments = Vec::new();
    for &(card, ..) in EXPECTED {
        let (cus, pm) = s
            .sandbox
            .customer_with_card(&format!("pm_card_{card}"))
            .await;
        payments.push((s.pay(&cus, Some(&pm), policy.clone()).await, cus));
    }
    let mut wrong = Vec::new();
    for ((id, cus), &(card, status, outcomes, decline)) in payments.iter().zip(EXPECTED) {
        let p = s.settles(id, &["succeeded", "failed", "paused"]).await;
        let got: Vec<&str> = p["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap_or("-"))
            .collect();
        let first_decline = p["attempts"][0]["decline_code"].as_str();
        let intents = s.intents(cus).await;
        let charged = intents
            .iter()
            .filter(|i| i["status"] == "succeeded")
            .count();
        let expected_charges = usize::from(status == "succeeded");
        if p["status"] != status
            || got != outcomes
            || first_decline != decline
            || intents.len() != 1
            || charged != expected_charges
        {
            wrong.push(format!(
                "{card}: {} {got:?} {first_decline:?}, {} intents, {charged} charged; expected {status} {outcomes:?} {decline:?}",
                p["status"],
                intents.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
