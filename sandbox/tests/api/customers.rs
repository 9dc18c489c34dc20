use flint_testkit::sandbox::spawn_sandbox;

#[tokio::test]
async fn a_customer_is_created_retrieved_and_updated() {
    let sandbox = spawn_sandbox().await;
    let created = sandbox
        .post("/v1/customers")
        .params(&[
            ("name", "Ann"),
            ("email", "ann@example.com"),
            ("metadata[crm_id]", "42"),
        ])
        .send()
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.id();
    assert!(id.starts_with("cus_"));
    assert_eq!(created.body["object"], "customer");
    assert_eq!(
        created.body["invoice_settings"]["default_payment_method"],
        serde_json::Value::Null
    );

    let updated = sandbox
        .post(&format!("/v1/customers/{id}"))
        .params(&[
            ("name", "Ann B"),
            ("metadata[crm_id]", ""),
            ("metadata[tier]", "gold"),
        ])
        .send()
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["name"], "Ann B");
    assert_eq!(
        updated.body["metadata"],
        serde_json::json!({"tier": "gold"}),
        "an empty value deletes a key"
    );

    let fetched = sandbox.get(&format!("/v1/customers/{id}")).send().await;
    assert_eq!(fetched.body["name"], "Ann B");
    assert_eq!(fetched.body["email"], "ann@example.com");
}

#[tokio::test]
async fn the_default_payment_method_must_be_attached_to_that_customer() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let (other, other_pm) = sandbox.customer_with_card("pm_card_mastercard").await;

    let fetched = sandbox
        .get(&format!("/v1/customers/{cus}"))
        .param("expand[]", "invoice_settings.default_payment_method")
        .send()
        .await;
    assert_eq!(
        fetched.body["invoice_settings"]["default_payment_method"]["id"],
        pm.as_str()
    );

    let r = sandbox
        .post(&format!("/v1/customers/{cus}"))
        .param("invoice_settings[default_payment_method]", &other_pm)
        .send()
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["param"],
        "invoice_settings[default_payment_method]"
    );
    let unchanged = sandbox.get(&format!("/v1/customers/{cus}")).send().await;
    assert_eq!(
        unchanged.body["invoice_settings"]["default_payment_method"],
        pm.as_str()
    );

    let cleared = sandbox
        .post(&format!("/v1/customers/{other}"))
        .param("invoice_settings[default_payment_method]", "")
        .send()
        .await;
    assert_eq!(
        cleared.body["invoice_settings"]["default_payment_method"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn creating_with_a_payment_method_attaches_it() {
    let sandbox = spawn_sandbox().await;
    let created = sandbox
        .post("/v1/customers")
        .params(&[
            ("payment_method", "pm_card_visa"),
            ("invoice_settings[default_payment_method]", "pm_card_visa"),
        ])
        .send()
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let pm = created.body["invoice_settings"]["default_payment_method"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pm.starts_with("pm_") && !pm.starts_with("pm_card_"));
    let listed = sandbox
        .get(&format!("/v1/customers/{}/payment_methods", created.id()))
        .send()
        .await;
    assert_eq!(listed.body["data"][0]["id"], pm.as_str());
}

#[tokio::test]
async fn a_deleted_customer_reads_as_deleted_and_cannot_be_charged() {
    let sandbox = spawn_sandbox().await;
    let (cus, pm) = sandbox.customer_with_card("pm_card_visa").await;
    let deleted = sandbox.delete(&format!("/v1/customers/{cus}")).send().await;
    assert_eq!(
        deleted.body,
        serde_json::json!({"id": cus, "object": "customer", "deleted": true})
    );
    let fetched = sandbox.get(&format!("/v1/customers/{cus}")).send().await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["deleted"], true);
    let charge = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1000"),
            ("currency", "usd"),
            ("customer", &cus),
            ("payment_method", &pm),
            ("confirm", "true"),
        ])
        .send()
        .await;
    assert_eq!(charge.status, 400);
    assert_eq!(charge.body["error"]["param"], "customer");
}

#[tokio::test]
async fn unknown_customers_are_404_with_resource_missing() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox.get("/v1/customers/cus_nope").send().await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), Some("resource_missing"));
    assert_eq!(r.body["error"]["message"], "No such customer: 'cus_nope'");
    assert_eq!(r.body["error"]["param"], "id");
}
