use flint_testkit::sandbox::{spawn_sandbox, spawn_sandbox_with};

#[tokio::test]
async fn attaching_a_test_card_clones_a_new_payment_method_each_time() {
    let sandbox = spawn_sandbox().await;
    let (cus, first) = sandbox.customer_with_card("pm_card_visa").await;
    let second = sandbox
        .post("/v1/payment_methods/pm_card_visa/attach")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(second.status, 200);
    let second_id = second.id();
    assert_ne!(first, second_id);
    let a = sandbox
        .get(&format!("/v1/payment_methods/{first}"))
        .send()
        .await;
    let card = &a.body["card"];
    assert_eq!(card["brand"], "visa");
    assert_eq!(card["last4"], "4242");
    assert_eq!(
        card["fingerprint"], second.body["card"]["fingerprint"],
        "same card, same fingerprint"
    );
    assert!(card["exp_year"].as_i64().unwrap() > 2025);
    assert_eq!(a.body["customer"], cus.as_str());
    assert_eq!(a.body["type"], "card");

    let mc = sandbox
        .post("/v1/payment_methods/pm_card_mastercard/attach")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(mc.body["card"]["brand"], "mastercard");
    assert_ne!(mc.body["card"]["fingerprint"], card["fingerprint"]);
}

#[tokio::test]
async fn brand_prefixed_aliases_are_the_same_card() {
    let sandbox = spawn_sandbox().await;
    let (cus, _) = sandbox.customer_with_card("pm_card_chargeDeclined").await;
    let a = sandbox
        .post("/v1/payment_methods/pm_card_visa_chargeDeclined/attach")
        .param("customer", &cus)
        .send()
        .await;
    let b = sandbox
        .post("/v1/payment_methods/pm_card_chargeDeclined/attach")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(a.body["card"]["fingerprint"], b.body["card"]["fingerprint"]);
    assert_eq!(a.body["card"]["last4"], "0002");
}

#[tokio::test]
async fn a_customers_methods_list_newest_first_with_cursor_pagination() {
    let sandbox = spawn_sandbox().await;
    let (cus, first) = sandbox.customer_with_card("pm_card_visa").await;
    let mut ids = vec![first];
    for card in ["pm_card_mastercard", "pm_card_amex", "pm_card_discover"] {
        ids.push(
            sandbox
                .post(&format!("/v1/payment_methods/{card}/attach"))
                .param("customer", &cus)
                .send()
                .await
                .id(),
        );
    }
    ids.reverse();
    let page1 = sandbox
        .get(&format!("/v1/customers/{cus}/payment_methods"))
        .params(&[("type", "card"), ("limit", "3")])
        .send()
        .await;
    let got: Vec<&str> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[..3].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(page1.body["has_more"], true);
    assert_eq!(
        page1.body["url"],
        format!("/v1/customers/{cus}/payment_methods")
    );
    let page2 = sandbox
        .get(&format!("/v1/customers/{cus}/payment_methods"))
        .params(&[("limit", "3"), ("starting_after", got[2])])
        .send()
        .await;
    assert_eq!(page2.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["data"][0]["id"], ids[3].as_str());
    assert_eq!(page2.body["has_more"], false);

    let via_query = sandbox
        .get("/v1/payment_methods")
        .params(&[("customer", &cus), ("type", "card")])
        .send()
        .await;
    assert_eq!(via_query.body["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn detaching_removes_the_method_and_clears_the_default() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let detached = sandbox
        .post(&format!("/v1/payment_methods/{pm}/detach"))
        .send()
        .await;
    assert_eq!(detached.status, 200);
    assert_eq!(detached.body["customer"], serde_json::Value::Null);
    let customer = sandbox.get(&format!("/v1/customers/{cus}")).send().await;
    assert_eq!(
        customer.body["invoice_settings"]["default_payment_method"],
        serde_json::Value::Null
    );
    let one = sandbox
        .get(&format!("/v1/customers/{cus}/payment_methods/{pm}"))
        .send()
        .await;
    assert_eq!(one.status, 404);
    let again = sandbox
        .post(&format!("/v1/payment_methods/{pm}/detach"))
        .send()
        .await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn a_method_attached_to_one_customer_cannot_be_attached_to_another() {
    let sandbox = spawn_sandbox().await;
    let (_, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let (other, _) = sandbox.customer_with_card("pm_card_visa").await;
    let r = sandbox
        .post(&format!("/v1/payment_methods/{pm}/attach"))
        .param("customer", &other)
        .send()
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already been attached")
    );
}

#[tokio::test]
async fn payment_methods_are_created_from_test_tokens_never_from_card_numbers() {
    let sandbox = spawn_sandbox().await;
    let created = sandbox
        .post("/v1/payment_methods")
        .params(&[("type", "card"), ("card[token]", "tok_mastercard")])
        .send()
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["card"]["brand"], "mastercard");
    assert_eq!(created.body["customer"], serde_json::Value::Null);

    let raw = sandbox
        .post("/v1/payment_methods")
        .params(&[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "12"),
        ])
        .send()
        .await;
    assert_eq!(raw.status, 400);
    assert_eq!(raw.body["error"]["param"], "card[number]");
    assert!(!raw.body.to_string().contains("4242424242424242"));

    let unknown = sandbox
        .post("/v1/payment_methods")
        .params(&[("type", "card"), ("card[token]", "tok_nope")])
        .send()
        .await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["param"].as_str()),
        (400, Some("card[token]"))
    );
}

#[tokio::test]
async fn strict_attach_refuses_decline_cards_as_stripe_does_but_not_charge_customer_fail() {
    let sandbox = spawn_sandbox_with(|c| c.strict_attach = true).await;
    let cus = sandbox.post("/v1/customers").send().await.id();
    let refused = sandbox
        .post("/v1/payment_methods/pm_card_chargeDeclinedInsufficientFunds/attach")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(refused.status, 402);
    assert_eq!(refused.body["error"]["type"], "card_error");
    assert_eq!(refused.body["error"]["decline_code"], "insufficient_funds");
    let listed = sandbox
        .get(&format!("/v1/customers/{cus}/payment_methods"))
        .send()
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);
    let allowed = sandbox
        .post("/v1/payment_methods/pm_card_chargeCustomerFail/attach")
        .param("customer", &cus)
        .send()
        .await;
    assert_eq!(allowed.status, 200);
}
