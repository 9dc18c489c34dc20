use flint_testkit::sandbox::spawn_sandbox;

/// (amount, currency, HTTP status, code, param) per Stripe's documented amount rules.
type Case = (
    &'static str,
    &'static str,
    u16,
    Option<&'static str>,
    Option<&'static str>,
);

const AMOUNTS: &[Case] = &[
    ("50", "usd", 200, None, None),
    ("49", "usd", 400, Some("amount_too_small"), Some("amount")),
    (
        "0",
        "usd",
        400,
        Some("parameter_invalid_integer"),
        Some("amount"),
    ),
    (
        "-100",
        "usd",
        400,
        Some("parameter_invalid_integer"),
        Some("amount"),
    ),
    (
        "12.50",
        "usd",
        400,
        Some("parameter_invalid_integer"),
        Some("amount"),
    ),
    ("99999999", "usd", 200, None, None),
    (
        "100000000",
        "usd",
        400,
        Some("amount_too_large"),
        Some("amount"),
    ),
    ("999999999999", "idr", 200, None, None),
    (
        "1000000000000",
        "idr",
        400,
        Some("amount_too_large"),
        Some("amount"),
    ),
    ("50", "jpy", 200, None, None),
    ("49", "jpy", 400, Some("amount_too_small"), Some("amount")),
    ("30", "gbp", 200, None, None),
    ("5120", "kwd", 200, None, None),
    ("5124", "kwd", 400, Some("invalid_amount"), Some("amount")),
    ("500", "isk", 200, None, None),
    ("550", "isk", 400, Some("invalid_amount"), Some("amount")),
    ("1000", "USD", 200, None, None),
    (
        "1000",
        "xyz",
        400,
        Some("parameter_invalid_string"),
        Some("currency"),
    ),
    (
        "1000",
        "dollars",
        400,
        Some("parameter_invalid_string"),
        Some("currency"),
    ),
];

#[tokio::test]
async fn amounts_and_currencies_follow_stripes_rules() {
    let sandbox = spawn_sandbox().await;
    for &(amount, currency, status, code, param) in AMOUNTS {
        let r = sandbox
            .post("/v1/payment_intents")
            .params(&[("amount", amount), ("currency", currency)])
            .send()
            .await;
        assert_eq!(r.status, status, "{amount} {currency}: {}", r.body);
        assert_eq!(r.error_code(), code, "{amount} {currency}");
        assert_eq!(
            r.body["error"]["param"].as_str(),
            param,
            "{amount} {currency}"
        );
        if status == 200 {
            assert_eq!(r.body["currency"], currency.to_lowercase());
        }
    }
    let listed = sandbox
        .get("/v1/payment_intents")
        .param("limit", "100")
        .send()
        .await;
    let accepted = AMOUNTS.iter().filter(|a| a.2 == 200).count();
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        accepted,
        "rejected requests stored nothing"
    );
}

#[tokio::test]
async fn missing_and_unknown_parameters_are_named() {
    let sandbox = spawn_sandbox().await;
    let missing = sandbox
        .post("/v1/payment_intents")
        .param("currency", "usd")
        .send()
        .await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (400, Some("parameter_missing"))
    );
    assert_eq!(missing.body["error"]["param"], "amount");
    assert_eq!(
        missing.body["error"]["message"],
        "Missing required param: amount."
    );

    let unknown = sandbox
        .post("/v1/payment_intents")
        .params(&[("amount", "1000"), ("currency", "usd"), ("colour", "red")])
        .send()
        .await;
    assert_eq!(unknown.error_code(), Some("parameter_unknown"));
    assert_eq!(
        unknown.body["error"]["message"],
        "Received unknown parameter: colour"
    );

    let nested = sandbox
        .post("/v1/customers")
        .param("invoice_settings[colour]", "red")
        .send()
        .await;
    assert_eq!(nested.body["error"]["param"], "invoice_settings[colour]");

    let no_attach_customer = sandbox
        .post("/v1/payment_methods/pm_card_visa/attach")
        .send()
        .await;
    assert_eq!(no_attach_customer.body["error"]["param"], "customer");
}

#[tokio::test]
async fn off_session_needs_confirm_and_descriptors_follow_card_rules() {
    let sandbox = spawn_sandbox().await;
    let r = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1000"),
            ("currency", "usd"),
            ("off_session", "true"),
        ])
        .send()
        .await;
    assert_eq!(r.body["error"]["param"], "off_session");
    let r = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1000"),
            ("currency", "usd"),
            ("statement_descriptor", "ACME"),
        ])
        .send()
        .await;
    assert_eq!(r.body["error"]["param"], "statement_descriptor");
    for bad in ["12345", "THIS SUFFIX IS TOO LONG!", "BAD*CHAR"] {
        let r = sandbox
            .post("/v1/payment_intents")
            .params(&[
                ("amount", "1000"),
                ("currency", "usd"),
                ("statement_descriptor_suffix", bad),
            ])
            .send()
            .await;
        assert_eq!(
            r.body["error"]["param"], "statement_descriptor_suffix",
            "{bad}"
        );
    }
    let ok = sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "1000"),
            ("currency", "usd"),
            ("statement_descriptor_suffix", "INV 1234"),
        ])
        .send()
        .await;
    assert_eq!(ok.body["statement_descriptor_suffix"], "INV 1234");
}

#[tokio::test]
async fn metadata_limits_are_stripes() {
    let sandbox = spawn_sandbox().await;
    let long_key = "k".repeat(41);
    let r = sandbox
        .post("/v1/customers")
        .param(&format!("metadata[{long_key}]"), "v")
        .send()
        .await;
    assert_eq!(r.body["error"]["param"], format!("metadata[{long_key}]"));
    let long_value = "v".repeat(501);
    let r = sandbox
        .post("/v1/customers")
        .param("metadata[note]", &long_value)
        .send()
        .await;
    assert_eq!(r.body["error"]["param"], "metadata[note]");
    let many: Vec<(String, String)> = (0..51)
        .map(|i| (format!("metadata[k{i}]"), "v".to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = sandbox.post("/v1/customers").params(&pairs).send().await;
    assert_eq!(r.body["error"]["param"], "metadata");
    let r = sandbox
        .post("/v1/customers")
        .params(&pairs[..50])
        .send()
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_stripes_404() {
    let sandbox = spawn_sandbox().await;
    for (method, path) in [
        ("GET", "/v1/widgets"),
        ("POST", "/v1/payment_intents/pi_x/refund"),
        ("DELETE", "/v1/payment_intents"),
        ("GET", "/v2/core"),
        ("GET", "/"),
    ] {
        let call = match method {
            "GET" => sandbox.get(path),
            "POST" => sandbox.post(path),
            _ => sandbox.delete(path),
        };
        let r = call.send().await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(
            r.body["error"]["message"],
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            )
        );
    }
    let r = sandbox.get("/v1/payment_intents/pi_missing").send().await;
    assert_eq!(
        r.body["error"]["message"],
        "No such payment_intent: 'pi_missing'"
    );
}

#[tokio::test]
async fn bodies_must_be_form_encoded() {
    let sandbox = spawn_sandbox().await;
    let json = sandbox
        .post("/v1/customers")
        .raw_body("application/json", r#"{"name":"x"}"#)
        .send()
        .await;
    assert_eq!(json.status, 400);
    assert!(
        json.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type")
    );
    let query = sandbox.post("/v1/customers?name=x").send().await;
    assert_eq!(query.status, 400);
    let malformed = sandbox
        .post("/v1/customers")
        .raw_body("application/x-www-form-urlencoded", "metadata[a=1")
        .send()
        .await;
    assert_eq!(malformed.status, 400);
    let huge = sandbox
        .post("/v1/customers")
        .raw_body("application/x-www-form-urlencoded", vec![b'a'; 2 << 20])
        .send()
        .await;
    assert_eq!(huge.status, 400);
}
