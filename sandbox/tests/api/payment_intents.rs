use flint_testkit::sandbox::{Answer, TestSandbox, spawn_sandbox};
use serde_json::Value;

async fn charge_off_session(sandbox: &TestSandbox, card: &str) -> (Answer, String) {
    let (cus, pm) = sandbox.customer_with_card(card).await;
    let r = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "2000"),
            ("currency", "usd"),
            ("customer", &cus),
            ("payment_method", &pm),
            ("confirm", "true"),
            ("off_session", "true"),
            ("metadata[flint_payment_id]", "osp_test"),
        ])
        .send()
        .await;
    (r, cus)
}

/// Every Stripe test card with its documented off-session outcome:
/// (card, HTTP status, code, decline_code, message).
type Outcome = (
    &'static str,
    u16,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const OUTCOMES: &[Outcome] = &[
    ("pm_card_visa", 200, None, None, None),
    ("pm_card_visa_debit", 200, None, None, None),
    ("pm_card_mastercard", 200, None, None, None),
    ("pm_card_mastercard_debit", 200, None, None, None),
    ("pm_card_mastercard_prepaid", 200, None, None, None),
    ("pm_card_amex", 200, None, None, None),
    ("pm_card_discover", 200, None, None, None),
    ("pm_card_diners", 200, None, None, None),
    ("pm_card_jcb", 200, None, None, None),
    ("pm_card_unionpay", 200, None, None, None),
    (
        "pm_card_chargeDeclined",
        402,
        Some("card_declined"),
        Some("generic_decline"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_visa_chargeDeclined",
        402,
        Some("card_declined"),
        Some("generic_decline"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        402,
        Some("card_declined"),
        Some("insufficient_funds"),
        Some("Your card has insufficient funds."),
    ),
    (
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        402,
        Some("card_declined"),
        Some("insufficient_funds"),
        Some("Your card has insufficient funds."),
    ),
    (
        "pm_card_chargeDeclinedLostCard",
        402,
        Some("card_declined"),
        Some("lost_card"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_chargeDeclinedStolenCard",
        402,
        Some("card_declined"),
        Some("stolen_card"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_chargeDeclinedExpiredCard",
        402,
        Some("expired_card"),
        None,
        Some("Your card has expired."),
    ),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        402,
        Some("incorrect_cvc"),
        None,
        Some("Your card's security code is incorrect."),
    ),
    (
        "pm_card_chargeDeclinedProcessingError",
        402,
        Some("processing_error"),
        None,
        Some("An error occurred while processing your card. Try again in a little bit."),
    ),
    (
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
        402,
        Some("card_declined"),
        Some("card_velocity_exceeded"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_chargeCustomerFail",
        402,
        Some("card_declined"),
        Some("generic_decline"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_radarBlock",
        402,
        Some("card_declined"),
        Some("fraudulent"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_chargeDeclinedFraudulent",
        402,
        Some("card_declined"),
        Some("fraudulent"),
        Some("Your card was declined."),
    ),
    (
        "pm_card_riskLevelHighest",
        402,
        Some("card_declined"),
        Some("fraudulent"),
        Some("Your card was declined."),
    ),
    ("pm_card_riskLevelElevated", 200, None, None, None),
    ("pm_card_cvcCheckFail", 200, None, None, None),
    ("pm_card_avsZipFail", 200, None, None, None),
    ("pm_card_avsLine1Fail", 200, None, None, None),
    (
        "pm_card_authenticationRequired",
        402,
        Some("authentication_required"),
        Some("authentication_required"),
        Some("Your card was declined. This transaction requires authentication."),
    ),
    (
        "pm_card_authenticationRequiredOnSetup",
        402,
        Some("authentication_required"),
        Some("authentication_required"),
        Some("Your card was declined. This transaction requires authentication."),
    ),
    (
        "pm_card_authenticationRequiredSetupForOffSession",
        200,
        None,
        None,
        None,
    ),
    (
        "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds",
        402,
        Some("card_declined"),
        Some("insufficient_funds"),
        Some("Your card has insufficient funds."),
    ),
    (
        "pm_card_threeDSecure2Required",
        402,
        Some("authentication_required"),
        Some("authentication_required"),
        Some("Your card was declined. This transaction requires authentication."),
    ),
    (
        "pm_card_threeDSecureRequired",
        402,
        Some("authentication_required"),
        Some("authentication_required"),
        Some("Your card was declined. This transaction requires authentication."),
    ),
    ("pm_card_createDispute", 200, None, None, None),
    ("pm_card_bypassPending", 200, None, None, None),
];

#[tokio::test]
async fn every_test_card_gives_its_documented_off_session_outcome() {
    let sandbox = spawn_sandbox().await;
    for &(card, status, code, decline_code, message) in OUTCOMES {
        let (r, cus) = charge_off_session(&sandbox, card).await;
        assert_eq!(r.status, status, "{card}: {}", r.body);
        let pi = if status == 200 {
            r.body.clone()
        } else {
            r.body["error"]["payment_intent"].clone()
        };
        let pi_id = pi["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{card}: no intent in {}", r.body))
            .to_owned();
        let stored = sandbox
            .get(&format!("/v1/payment_intents/{pi_id}"))
            .send()
            .await
            .body;
        assert_eq!(stored["customer"], cus.as_str(), "{card}");
        assert_eq!(stored["metadata"]["flint_payment_id"], "osp_test", "{card}");
        if status == 200 {
            assert_eq!(r.body["status"], "succeeded", "{card}");
            assert_eq!(r.body["amount_received"], 2000, "{card}");
            assert!(
                r.body["latest_charge"].as_str().unwrap().starts_with("ch_"),
                "{card}"
            );
            assert_eq!(r.header("stripe-should-retry"), None, "{card}");
            assert_eq!(stored["status"], "succeeded", "{card}");
        } else {
            let e = &r.body["error"];
            assert_eq!(e["type"], "card_error", "{card}");
            assert_eq!(e["code"].as_str(), code, "{card}");
            assert_eq!(e["decline_code"].as_str(), decline_code, "{card}");
            assert_eq!(e["message"].as_str(), message, "{card}");
            assert!(
                e["doc_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://stripe.com/docs/error-codes/"),
                "{card}"
            );
            assert_eq!(
                e["payment_method"]["id"], stored["payment_method"],
                "{card}"
            );
            assert_eq!(pi["status"], "requires_payment_method", "{card}");
            assert_eq!(r.header("stripe-should-retry"), Some("false"), "{card}");
            assert_eq!(
                stored["status"], "requires_payment_method",
                "{card}: the declined intent stays retrievable"
            );
            assert_eq!(
                stored["last_payment_error"]["code"].as_str(),
                code,
                "{card}"
            );
            assert_eq!(
                stored["last_payment_error"]["decline_code"].as_str(),
                decline_code,
                "{card}"
            );
            assert_eq!(stored["amount_received"], 0, "{card}");
        }
    }
}

#[tokio::test]
async fn fraud_blocks_are_visible_on_the_charge_outcome() {
    let sandbox = spawn_sandbox().await;
    let (r, _) = charge_off_session(&sandbox, "pm_card_radarBlock").await;
    let charge_id = r.body["error"]["charge"].as_str().unwrap().to_owned();
    let pi = r.body["error"]["payment_intent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expanded = sandbox
        .get(&format!("/v1/payment_intents/{pi}"))
        .param("expand[]", "latest_charge")
        .send()
        .await;
    let charge = &expanded.body["latest_charge"];
    assert_eq!(charge["id"], charge_id.as_str());
    assert_eq!(charge["outcome"]["type"], "blocked");
    assert_eq!(charge["status"], "failed");
    let (ok, _) = charge_off_session(&sandbox, "pm_card_visa").await;
    let charge = sandbox
        .get(&format!(
            "/v1/charges/{}",
            ok.body["latest_charge"].as_str().unwrap()
        ))
        .send()
        .await;
    assert_eq!(charge.body["outcome"]["type"], "authorized");
    assert_eq!(charge.body["paid"], true);
    assert_eq!(
        charge.body["payment_method_details"]["card"]["last4"],
        "4242"
    );
}

#[tokio::test]
async fn a_declined_intent_can_be_confirmed_again_with_another_card() {
    let sandbox = spawn_sandbox().await;
    let (r, cus) = charge_off_session(&sandbox, "pm_card_chargeDeclinedInsufficientFunds").await;
    let pi = r.body["error"]["payment_intent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = sandbox
        .post("/v1/payment_methods/pm_card_mastercard/attach")
        .param("customer", &cus)
        .send()
        .await
        .id();
    let confirmed = sandbox
        .post(&format!("/v1/payment_intents/{pi}/confirm"))
        .params(&[("payment_method", &backup), ("off_session", "true")])
        .send()
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "succeeded");
    assert_eq!(confirmed.body["payment_method"], backup.as_str());
    assert_eq!(confirmed.body["last_payment_error"], Value::Null);
}

#[tokio::test]
async fn an_intent_created_without_confirm_waits_for_confirmation() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let created = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "500"),
            ("currency", "eur"),
            ("customer", &cus),
            ("payment_method", &pm),
        ])
        .send()
        .await;
    assert_eq!(created.body["status"], "requires_confirmation");
    assert!(
        created.body["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}_secret_", created.id()))
    );
    let bare = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "500"), ("currency", "eur")])
        .send()
        .await;
    assert_eq!(bare.body["status"], "requires_payment_method");
    let missing_pm = sandbox
        .post(&format!("/v1/payment_intents/{}/confirm", bare.id()))
        .send()
        .await;
    assert_eq!(missing_pm.status, 400);
    assert_eq!(missing_pm.body["error"]["param"], "payment_method");

    let confirmed = sandbox
        .post(&format!("/v1/payment_intents/{}/confirm", created.id()))
        .params(&[("off_session", "true"), ("expand[]", "latest_charge")])
        .send()
        .await;
    assert_eq!(confirmed.body["status"], "succeeded");
    assert_eq!(confirmed.body["latest_charge"]["object"], "charge");
    assert_eq!(confirmed.body["latest_charge"]["amount"], 500);

    let again = sandbox
        .post(&format!("/v1/payment_intents/{}/confirm", created.id()))
        .send()
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_code(), Some("payment_intent_unexpected_state"));
    assert_eq!(again.body["error"]["payment_intent"]["status"], "succeeded");
}

#[tokio::test]
async fn on_session_3ds_cards_require_action_and_error_on_requires_action_fails_instead() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox
        .customer_with_card("pm_card_authenticationRequired")
        .await;
    let base = [
        ("amount", "1500"),
        ("currency", "usd"),
        ("customer", cus.as_str()),
        ("payment_method", pm.as_str()),
        ("confirm", "true"),
    ];
    let on_session = sandbox
        .post("/v1/payment_intents")
        .params(&base)
        .send()
        .await;
    assert_eq!(on_session.status, 200);
    assert_eq!(on_session.body["status"], "requires_action");
    assert_eq!(on_session.body["next_action"]["type"], "use_stripe_sdk");

    let strict = sandbox
        .post("/v1/payment_intents")
        .params(&base)
        .param("error_on_requires_action", "true")
        .send()
        .await;
    assert_eq!(strict.status, 402);
    assert_eq!(strict.error_code(), Some("authentication_required"));
    assert_eq!(
        strict.body["error"]["decline_code"],
        "authentication_not_handled"
    );

    // "Already set up" cards pass off-session but need 3DS on-session.
    let (cus, pm) = sandbox
        .customer_with_card("pm_card_authenticationRequiredSetupForOffSession")
        .await;
    let on = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1500"),
            ("currency", "usd"),
            ("customer", &cus),
            ("payment_method", &pm),
            ("confirm", "true"),
        ])
        .send()
        .await;
    assert_eq!(on.body["status"], "requires_action");
}

#[tokio::test]
async fn cancel_works_from_open_states_only() {
    let sandbox = spawn_sandbox().await;
    let open = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "700"), ("currency", "gbp")])
        .send()
        .await
        .id();
    let canceled = sandbox
        .post(&format!("/v1/payment_intents/{open}/cancel"))
        .param("cancellation_reason", "abandoned")
        .send()
        .await;
    assert_eq!(canceled.status, 200);
    assert_eq!(canceled.body["status"], "canceled");
    assert_eq!(canceled.body["cancellation_reason"], "abandoned");
    assert!(canceled.body["canceled_at"].is_i64());

    let twice = sandbox
        .post(&format!("/v1/payment_intents/{open}/cancel"))
        .send()
        .await;
    assert_eq!(twice.error_code(), Some("payment_intent_unexpected_state"));
    let confirm_canceled = sandbox
        .post(&format!("/v1/payment_intents/{open}/confirm"))
        .param("payment_method", "pm_card_visa")
        .send()
        .await;
    assert_eq!(
        confirm_canceled.error_code(),
        Some("payment_intent_unexpected_state")
    );

    let (ok, _) = charge_off_session(&sandbox, "pm_card_visa").await;
    let late = sandbox
        .post(&format!("/v1/payment_intents/{}/cancel", ok.id()))
        .send()
        .await;
    assert_eq!(late.status, 400);
    assert!(
        late.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("status of succeeded")
    );

    let bad_reason = sandbox
        .post(&format!("/v1/payment_intents/{}/cancel", ok.id()))
        .param("cancellation_reason", "bored")
        .send()
        .await;
    assert_eq!(bad_reason.body["error"]["param"], "cancellation_reason");
}

#[tokio::test]
async fn intents_list_newest_first_filtered_by_customer_with_cursors() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let mut ids = Vec::new();
    for amount in ["1000", "1100", "1200", "1300", "1400"] {
        let r = sandbox
            .post("/v1/payment_intents")
            .params(&[
                ("amount", amount),
                ("currency", "usd"),
                ("customer", &cus),
                ("payment_method", &pm),
                ("confirm", "true"),
                ("off_session", "true"),
            ])
            .send()
            .await;
        ids.push(r.id());
    }
    charge_off_session(&sandbox, "pm_card_visa").await; // another customer's
    ids.reverse();
    let page = sandbox
        .get("/v1/payment_intents")
        .params(&[("customer", &cus), ("limit", "2")])
        .send()
        .await;
    let got: Vec<String> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids[..2]);
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["url"], "/v1/payment_intents");
    let rest = sandbox
        .get("/v1/payment_intents")
        .params(&[("customer", &cus), ("starting_after", &got[1])])
        .send()
        .await;
    let rest: Vec<String> = rest.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rest, ids[2..]);
    let before = sandbox
        .get("/v1/payment_intents")
        .params(&[("customer", &cus), ("ending_before", &ids[2])])
        .send()
        .await;
    assert_eq!(before.body["data"].as_array().unwrap().len(), 2);
    let all = sandbox
        .get("/v1/payment_intents")
        .param("limit", "100")
        .send()
        .await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 6);

    for bad in ["0", "101", "ten"] {
        let r = sandbox
            .get("/v1/payment_intents")
            .param("limit", bad)
            .send()
            .await;
        assert_eq!(
            (r.status, r.body["error"]["param"].as_str()),
            (400, Some("limit")),
            "{bad}"
        );
    }
    let unknown_cursor = sandbox
        .get("/v1/payment_intents")
        .param("starting_after", "pi_nope")
        .send()
        .await;
    assert_eq!(unknown_cursor.body["error"]["param"], "starting_after");
}

#[tokio::test]
async fn payment_methods_of_other_customers_cannot_be_charged() {
    let sandbox = spawn_sandbox().await;
    let (_, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let (other, _) = sandbox.customer_with_card("pm_card_visa").await;
    let r = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1000"),
            ("currency", "usd"),
            ("customer", &other),
            ("payment_method", &pm),
            ("confirm", "true"),
            ("off_session", "true"),
        ])
        .send()
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "payment_method");
    let listed = sandbox
        .get("/v1/payment_intents")
        .param("customer", &other)
        .send()
        .await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn intents_list_by_creation_time_as_stripe_filters_it() {
    let sandbox = spawn_sandbox().await;
    let (cus, _) = sandbox.customer_with_card("pm_card_visa").await;
    let created = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "2000"), ("currency", "usd"), ("customer", &cus)])
        .send()
        .await;
    let t = created.body["created"].as_i64().unwrap().to_string();
    let later = (created.body["created"].as_i64().unwrap() + 3600).to_string();
    let count = |params: Vec<(&'static str, String)>| {
        let sandbox = &sandbox;
        let cus = cus.clone();
        async move {
            let mut call = sandbox.get("/v1/payment_intents").param("customer", &cus);
            for (k, v) in &params {
                call = call.param(k, v);
            }
            let r = call.send().await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(vec![("created[gte]", t.clone())]).await, 1);
    assert_eq!(count(vec![("created[gt]", t.clone())]).await, 0);
    assert_eq!(count(vec![("created[gte]", later.clone())]).await, 0);
    assert_eq!(count(vec![("created[lt]", later)]).await, 1);
    assert_eq!(count(vec![("created", t)]).await, 1);
    let bad = sandbox
        .get("/v1/payment_intents")
        .param("created[after]", "1")
        .send()
        .await;
    assert_eq!(
        (bad.status, bad.error_code()),
        (400, Some("parameter_unknown"))
    );
}
