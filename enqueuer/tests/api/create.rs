use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::helpers::*;

flint_testkit::in_both_layouts!(
    a_created_payment_is_pending_stored_and_queued,
    the_same_key_and_body_return_the_same_payment_marked_as_replayed,
    the_same_key_with_another_body_is_a_409,
    idempotency_keys_are_per_tenant,
    concurrent_creates_with_one_key_make_exactly_one_payment,
    a_future_charge_at_schedules_the_first_attempt,
);

async fn a_created_payment_is_pending_stored_and_queued() {
    let app = spawn_app().await;
    let r = app.create("order-1", &body()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("idempotent-replayed"), None);
    let id = r.id();
    assert!(id.starts_with("osp_"));
    assert_eq!(r.body["object"], "off_session_payment");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["amount"], json!({"value": 2000, "currency": "usd"}));
    assert_eq!(r.body["context"]["invoice_id"], "in_7");
    assert_eq!(r.body["events"][0]["type"], "off_session_payment.created");
    assert_eq!(
        r.body["retry_policy"],
        json!({"strategy": "scheduled", "max_attempts": 4, "window_hours": 336,
            "fallback_to_other_cards": false})
    );

    let fetched = app.get(&format!("/v1/off_session_payments/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, r.body);
    assert_eq!(app.stats().await.ready, 1, "its charge job is queued");
}

async fn the_same_key_and_body_return_the_same_payment_marked_as_replayed() {
    let app = spawn_app().await;
    let first = app.create("order-2", &body()).await;
    let again = app.create("order-2", &body()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(app.stats().await.ready, 1, "one job, not two");
}

async fn the_same_key_with_another_body_is_a_409() {
    let app = spawn_app().await;
    app.create("order-3", &body()).await;
    let mut other = body();
    other["amount"]["value"] = json!(2001);
    let r = app.create("order-3", &other).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), Some("idempotency_key_reused"));
    assert_eq!(r.body["error"]["type"], "idempotency_error");
    // Key order and whitespace are not differences.
    let reordered: serde_json::Value =
        serde_json::from_str(&serde_json::to_string_pretty(&body()).unwrap()).unwrap();
    assert_eq!(app.create("order-3", &reordered).await.status, 202);
}

async fn idempotency_keys_are_per_tenant() {
    let app = spawn_app().await;
    let a = app.create_as(KEY_A, "shared-key", &body()).await;
    let b = app.create_as(KEY_B, "shared-key", &body()).await;
    assert_eq!((a.status, b.status), (202, 202));
    assert_ne!(a.id(), b.id());
    assert_eq!(b.header("idempotent-replayed"), None);
}

async fn concurrent_creates_with_one_key_make_exactly_one_payment() {
    let app = spawn_app().await;
    let answers = futures_join(&app, 24).await;
    let ids: std::collections::HashSet<String> = answers.iter().map(|a| a.id()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.header("idempotent-replayed").is_none())
            .count(),
        1
    );
    assert_eq!(app.stats().await.ready, 1);
    let list = app.get("/v1/off_session_payments").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

async fn futures_join(app: &TestApp, n: usize) -> Vec<Answer> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url) = (app.http.clone(), app.url("/v1/off_session_payments"));
        set.spawn(async move {
            Answer::from(
                http.post(url)
                    .bearer_auth(KEY_A)
                    .header("Idempotency-Key", "race")
                    .json(&body())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        out.push(r);
    }
    out
}

async fn a_future_charge_at_schedules_the_first_attempt() {
    let app = spawn_app().await;
    let at = SystemTime::now() + Duration::from_secs(3600);
    let at = time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap();
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut b = body();
    b["charge_at"] = json!(text);
    let r = app.create("later", &b).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["next_attempt_at"], json!(text));
    let stats = app.stats().await;
    assert_eq!((stats.ready, stats.delayed), (0, 1));
}
