use serde_json::{Value, json};

use crate::helpers::*;

/// (mutation of the valid body, expected code, expected param).
fn cases() -> Vec<(Value, &'static str, &'static str)> {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = body();
        f(&mut b);
        b
    };
    vec![
        (
            with(&|b| b["colour"] = json!("red")),
            "parameter_invalid",
            "colour",
        ),
        (
            with(&|b| b["amount"]["value"] = json!("2000")),
            "parameter_invalid",
            "amount.value",
        ),
        (
            with(&|b| b["amount"]["value"] = json!(10)),
            "amount_too_small",
            "amount.value",
        ),
        (
            with(&|b| b["amount"]["value"] = json!(100_000_000)),
            "amount_too_large",
            "amount.value",
        ),
        (
            with(&|b| b["amount"]["currency"] = json!("xyz")),
            "invalid_currency",
            "amount.currency",
        ),
        (
            with(&|b| b["amount"]["extra"] = json!(1)),
            "parameter_invalid",
            "amount.extra",
        ),
        (
            with(&|b| {
                b.as_object_mut()
                    .unwrap()
                    .remove("customer")
                    .map(drop)
                    .unwrap()
            }),
            "parameter_missing",
            "customer",
        ),
        (
            with(&|b| b["purpose"] = json!("gift")),
            "parameter_invalid",
            "purpose",
        ),
        (
            with(&|b| b["initiated_by"] = json!({"type": "robot", "id": "x"})),
            "parameter_invalid",
            "initiated_by.type",
        ),
        (
            with(&|b| b["purpose"] = json!("support")),
            "parameter_invalid",
            "initiated_by.type",
        ),
        (
            with(&|b| {
                b["purpose"] = json!("support");
                b["initiated_by"] = json!({"type": "operator", "id": "alice"});
            }),
            "parameter_missing",
            "initiated_by.reason",
        ),
        (
            with(&|b| b["metadata"] = json!({"k".repeat(41): "v"})),
            "parameter_invalid",
            "",
        ),
        (
            with(&|b| b["charge_at"] = json!("2020-01-01T00:00:00Z")),
            "parameter_invalid",
            "charge_at",
        ),
        (
            with(&|b| b["charge_at"] = json!("2099-01-01T00:00:00Z")),
            "parameter_invalid",
            "charge_at",
        ),
        (
            with(&|b| b["charge_at"] = json!("next tuesday")),
            "parameter_invalid",
            "charge_at",
        ),
        (
            with(&|b| b["statement_descriptor_suffix"] = json!("***")),
            "parameter_invalid",
            "statement_descriptor_suffix",
        ),
        (
            with(&|b| b["retry_policy"] = json!({"strategy": "scheduled", "max_attempts": 99})),
            "parameter_invalid",
            "retry_policy.max_attempts",
        ),
        (
            with(&|b| b["retry_policy"] = json!({"strategy": "sometimes"})),
            "parameter_invalid",
            "retry_policy.strategy",
        ),
    ]
}

#[tokio::test]
async fn each_invalid_body_is_a_400_naming_the_field_and_stores_nothing() {
    let app = spawn_app().await;
    for (i, (b, code, param)) in cases().into_iter().enumerate() {
        let r = app.create(&format!("bad-{i}"), &b).await;
        assert_eq!(r.status, 400, "case {i}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "case {i}");
        assert_eq!(r.code(), Some(code), "case {i}: {}", r.body);
        if param.is_empty() {
            assert!(
                r.param().unwrap().starts_with("metadata["),
                "case {i}: {}",
                r.body
            );
        } else {
            assert_eq!(r.param(), Some(param), "case {i}: {}", r.body);
        }
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let list = app.get("/v1/off_session_payments").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
    let stats = app.stats().await;
    assert_eq!(stats.ready + stats.delayed, 0);
    // A rejected request does not consume its key.
    assert_eq!(app.create("bad-0", &body()).await.status, 202);
}

#[tokio::test]
async fn the_idempotency_key_is_required_and_bounded() {
    let app = spawn_app().await;
    let r = Answer::from(
        app.http
            .post(app.url("/v1/off_session_payments"))
            .bearer_auth(KEY_A)
            .json(&body())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.code(), r.param()),
        (400, Some("parameter_missing"), Some("Idempotency-Key"))
    );
    let r = app.create(&"k".repeat(256), &body()).await;
    assert_eq!((r.status, r.param()), (400, Some("Idempotency-Key")));
}

#[tokio::test]
async fn bodies_must_be_json_and_small() {
    let app = spawn_app().await;
    let send = |content_type: &'static str, raw: Vec<u8>| {
        let request = app
            .http
            .post(app.url("/v1/off_session_payments"))
            .bearer_auth(KEY_A)
            .header("Idempotency-Key", "raw")
            .header("content-type", content_type)
            .body(raw);
        async move { Answer::from(request.send().await.unwrap()).await }
    };
    let r = send("text/plain", body().to_string().into_bytes()).await;
    assert_eq!((r.status, r.code()), (415, Some("unsupported_media_type")));
    let r = send("application/json", b"{not json".to_vec()).await;
    assert_eq!((r.status, r.code()), (400, Some("invalid_json")));
    let r = send("application/json", Vec::new()).await;
    assert_eq!((r.status, r.code()), (400, Some("parameter_missing")));
    let r = send("application/json", vec![b' '; 70_000]).await;
    assert_eq!((r.status, r.code()), (413, Some("body_too_large")));
    let r = send("application/json", b"[1,2,3]".to_vec()).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn unknown_routes_and_ids_are_json_404s() {
    let app = spawn_app().await;
    for path in [
        "/v1/nothing",
        "/v1/off_session_payments/osp_nope",
        "/v1/off_session_payments/../../etc",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.code(), Some("resource_missing"), "{path}");
    }
}

#[tokio::test]
async fn generated_nonsense_never_gets_a_5xx() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let app = spawn_app().await;
    let mut rng = StdRng::seed_from_u64(42);
    let values = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!(""),
        json!([]),
        json!({}),
        json!(true),
        json!("é\u{0}"),
    ];
    let fields = [
        "customer",
        "payment_method",
        "amount",
        "purpose",
        "context",
        "initiated_by",
        "description",
        "metadata",
        "charge_at",
        "retry_policy",
        "zzz",
    ];
    for i in 0..400 {
        let mut b = body();
        for _ in 0..rng.random_range(1..4) {
            let field = fields[rng.random_range(0..fields.len())];
            let value = values[rng.random_range(0..values.len())].clone();
            if rng.random_bool(0.3) && (b[field].is_object() || b[field].is_null()) {
                b[field]["value"] = value;
            } else {
                b[field] = value;
            }
        }
        let r = app.create(&format!("fuzz-{i}"), &b).await;
        assert!(r.status < 500, "{b} → {} {}", r.status, r.body);
        if r.status >= 400 {
            assert!(r.body["error"]["code"].is_string(), "{}", r.body);
        }
    }
}
