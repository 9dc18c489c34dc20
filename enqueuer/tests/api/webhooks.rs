//! `/v1/webhook_endpoints` and redelivery: an endpoint's secret shown once, every change
//! checked, tenants apart, and events queued for delivery only while an endpoint wants them.
use flint_queue::{Queue, QueueConfig};
use serde_json::{Value, json};

use crate::helpers::*;

flint_testkit::in_both_layouts!(
    an_endpoint_is_made_listed_changed_rotated_and_deleted_with_its_secret_shown_only_twice,
    bad_endpoints_name_the_field_and_change_nothing,
    a_tenant_has_at_most_sixteen_endpoints_and_sees_only_its_own,
    events_are_queued_for_delivery_only_while_an_endpoint_wants_them,
);

const URL: &str = "https://hooks.example.com/flint";

async fn endpoint(app: &TestApp, events: Value) -> Answer {
    app.post(
        "/v1/webhook_endpoints",
        Some(json!({"url": URL, "enabled_events": events, "description": "billing"})),
    )
    .await
}

async fn an_endpoint_is_made_listed_changed_rotated_and_deleted_with_its_secret_shown_only_twice() {
    let app = spawn_app().await;
    let made = endpoint(&app, json!(["*"])).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.id();
    assert!(id.starts_with("we_"));
    let secret = made.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(made.body["url"], URL);
    assert_eq!(made.body["enabled_events"], json!(["*"]));
    assert_eq!(made.body["disabled"], false);

    let one = app.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(one.status, 200);
    let listed = app.get("/v1/webhook_endpoints").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    for shown in [&one.body, &listed.body] {
        let text = shown.to_string();
        assert!(!text.contains(&secret), "a secret is shown again: {text}");
        assert!(!text.contains("whsec_"), "{text}");
    }

    let changed = app
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            Some(json!({"enabled_events": ["off_session_payment.failed"], "disabled": true})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body["enabled_events"],
        json!(["off_session_payment.failed"])
    );
    assert_eq!(changed.body["disabled"], true);
    assert_eq!(changed.body["url"], URL);

    let rotated = app
        .post(&format!("/v1/webhook_endpoints/{id}/rotate_secret"), None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);

    let deleted = app
        .delete_as(KEY_A, &format!("/v1/webhook_endpoints/{id}"))
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["deleted"], true);
    let gone = app.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(gone.status, 404);
    let again = app
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(again.status, 404, "an update never brings an endpoint back");
}

async fn bad_endpoints_name_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"url": "http://hooks.example.com", "enabled_events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com", "enabled_events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "enabled_events": ["*"]}), "url"),
        (json!({"url": URL, "enabled_events": []}), "enabled_events"),
        (
            json!({"url": URL, "enabled_events": ["off_session_payment.charged"]}),
            "enabled_events",
        ),
        (
            json!({"url": URL, "enabled_events": ["*", "off_session_payment.failed"]}),
            "enabled_events",
        ),
        (
            json!({"url": URL, "enabled_events": ["*"], "description": "a\u{7}b"}),
            "description",
        ),
        (json!({"enabled_events": ["*"]}), "url"),
        (
            json!({"url": URL, "enabled_events": ["*"], "secret": "whsec_mine"}),
            "secret",
        ),
    ];
    for (body, param) in cases {
        let answer = app.post("/v1/webhook_endpoints", Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.param(), Some(param), "{body}: {}", answer.body);
    }
    let none = app.post("/v1/webhook_endpoints", None).await;
    assert_eq!(none.status, 400);
    let id = endpoint(&app, json!(["*"])).await.id();
    let bad_update = app
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            Some(json!({"url": "ftp://hooks.example.com"})),
        )
        .await;
    assert_eq!(bad_update.status, 400);
    assert_eq!(bad_update.param(), Some("url"));
    let long = app
        .post(
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            Some(json!({"expire_current_in_secs": 8 * 86_400})),
        )
        .await;
    assert_eq!(long.status, 400);
    assert_eq!(long.param(), Some("expire_current_in_secs"));
    let listed = app.get("/v1/webhook_endpoints").await;
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "only the good one was made");
    assert_eq!(data[0]["url"], URL, "a refused update changed nothing");
    for path in [
        "/v1/webhook_endpoints/we_nope",
        "/v1/webhook_endpoints/osp_1",
    ] {
        assert_eq!(app.get(path).await.status, 404, "{path}");
    }
}

async fn a_tenant_has_at_most_sixteen_endpoints_and_sees_only_its_own() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..16 {
        let made = endpoint(&app, json!(["*"])).await;
        assert_eq!(made.status, 201);
        ids.push(made.id());
    }
    let seventeenth = endpoint(&app, json!(["*"])).await;
    assert_eq!(seventeenth.status, 409);
    assert_eq!(seventeenth.code(), Some("webhook_endpoint_limit_reached"));
    let theirs = app.get_as(KEY_B, "/v1/webhook_endpoints").await;
    assert_eq!(theirs.body["data"], json!([]));
    let id = &ids[0];
    assert_eq!(
        app.get_as(KEY_B, &format!("/v1/webhook_endpoints/{id}"))
            .await
            .status,
        404
    );
    let update = app
        .post_as(
            KEY_B,
            &format!("/v1/webhook_endpoints/{id}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(update.status, 404);
    let delete = app
        .delete_as(KEY_B, &format!("/v1/webhook_endpoints/{id}"))
        .await;
    assert_eq!(delete.status, 404);
    let rotate = app
        .post_as(
            KEY_B,
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            None,
        )
        .await;
    assert_eq!(rotate.status, 404);
    let mine = app.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(mine.body["disabled"], false);
}

/// Webhook jobs waiting or running, in every partition.
async fn webhook_jobs(app: &TestApp) -> u64 {
    let mut jobs = 0;
    for (p, tag) in (0u16..).zip(app.partitions.tags()) {
        let queue = Queue::connect(
            &app.redis.url(),
            QueueConfig::new("webhooks").in_partition(p, tag.clone()),
        )
        .await
        .unwrap();
        let stats = queue.stats().await.unwrap();
        jobs += stats.ready + stats.delayed + stats.leased;
    }
    jobs
}

async fn events_are_queued_for_delivery_only_while_an_endpoint_wants_them() {
    let app = spawn_app().await;
    app.create("before", &body()).await;
    assert_eq!(
        webhook_jobs(&app).await,
        0,
        "no endpoint, nothing to deliver"
    );
    let first = app.get("/v1/events").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .post(&format!("/v1/events/{first}/redeliver"), None)
        .await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.code(), Some("no_webhook_endpoint"));

    endpoint(&app, json!(["off_session_payment.created"])).await;
    let id = app.create("after", &body()).await.id();
    assert_eq!(webhook_jobs(&app).await, 1, "the new event's dispatch");
    app.post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    assert_eq!(
        webhook_jobs(&app).await,
        2,
        "every event gets a dispatch; the worker sends only what endpoints want"
    );
    let again = app
        .post(&format!("/v1/events/{first}/redeliver"), None)
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.body["endpoints"], 1);
    assert_eq!(webhook_jobs(&app).await, 3);
    let theirs = app
        .post_as(KEY_B, &format!("/v1/events/{first}/redeliver"), None)
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(webhook_jobs(&app).await, 3);
}
