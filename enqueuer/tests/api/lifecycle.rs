use serde_json::json;

use crate::helpers::*;

flint_testkit::in_both_layouts!(
    canceling_a_pending_payment_cancels_it_and_its_scheduled_job,
    canceling_during_processing_stops_further_attempts_and_says_so,
    finished_payments_cannot_be_canceled,
    resuming_a_paused_payment_queues_it_again_with_the_new_method,
    retry_now_moves_a_scheduled_retry_to_now,
    only_paused_or_retrying_payments_resume,
);

async fn canceling_a_pending_payment_cancels_it_and_its_scheduled_job() {
    let app = spawn_app().await;
    let mut b = body();
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    b["charge_at"] = json!(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let id = app.create("c1", &b).await.id();
    assert_eq!(app.stats().await.delayed, 1);
    let r = app
        .post(
            &format!("/v1/off_session_payments/{id}/cancel"),
            Some(json!({"reason": "customer left"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "canceled");
    assert_eq!(r.body["next_attempt_at"], serde_json::Value::Null);
    let last = r.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "off_session_payment.canceled");
    assert_eq!(last["detail"], "customer left");
    assert_eq!(app.stats().await.delayed, 0, "the scheduled job is gone");
    // Canceling again changes nothing.
    let again = app
        .post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["events"].as_array().unwrap().len(), 2);
    // A finished payment is kept for the retention only: the reaper forgets it then (with its
    // index entries), and the record's own TTL, a week later, is the backstop.
    let mut conn = app.redis().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(app.payment_key(&id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 36 * 86_400 && ttl <= 37 * 86_400, "{ttl}");
    let reap_at: f64 = redis::cmd("ZSCORE")
        .arg(format!("{}:expiring", app.prefix_of(&id)))
        .arg(&id)
        .query_async(&mut conn)
        .await
        .unwrap();
    let in_30_days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30 * 86_400_000) as f64;
    assert!((in_30_days - reap_at).abs() < 60_000.0, "{reap_at}");
}

async fn canceling_during_processing_stops_further_attempts_and_says_so() {
    let app = spawn_app().await;
    let id = app.create("c2", &body()).await.id();
    app.force_status(&id, "processing", 1).await;
    let r = app
        .post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "processing");
    assert_eq!(r.body["cancel_requested"], true);
}

async fn finished_payments_cannot_be_canceled() {
    let app = spawn_app().await;
    let id = app.create("c3", &body()).await.id();
    app.force_status(&id, "succeeded", 1).await;
    let r = app
        .post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    assert_eq!((r.status, r.code()), (409, Some("payment_not_cancelable")));
    assert_eq!(
        app.get(&format!("/v1/off_session_payments/{id}"))
            .await
            .body["status"],
        "succeeded"
    );
}

async fn resuming_a_paused_payment_queues_it_again_with_the_new_method() {
    let app = spawn_app().await;
    let id = app.create("r1", &body()).await.id();
    // The first job ran (a worker took it): the queue is empty, the payment paused.
    let mut conn = app.redis().await;
    let queue = flint_queue::keys::Keys::of_partition(
        app.partitions.tag(app.partitions.of_payment(&id)),
        "charges",
    );
    let () = redis::cmd("DEL")
        .arg(&queue.stream)
        .arg(&queue.ids)
        .query_async(&mut conn)
        .await
        .unwrap();
    app.force_status(&id, "paused", 1).await;
    let r = app
        .post(
            &format!("/v1/off_session_payments/{id}/resume"),
            Some(json!({"payment_method": "pm_new"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["payment_method"], "pm_new");
    assert_eq!(
        r.body["events"].as_array().unwrap().last().unwrap()["type"],
        "off_session_payment.resumed"
    );
    assert_eq!(app.stats().await.ready, 1, "queued again");
}

async fn retry_now_moves_a_scheduled_retry_to_now() {
    let app = spawn_app().await;
    let mut b = body();
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(5);
    b["charge_at"] = json!(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let id = app.create("r2", &b).await.id();
    // Not yet attempted: nothing to retry.
    let r = app
        .post(&format!("/v1/off_session_payments/{id}/resume"), None)
        .await;
    assert_eq!((r.status, r.code()), (409, Some("payment_not_resumable")));
    // After a soft decline the job waits for its retry.
    app.force_status(&id, "pending", 1).await;
    let r = app
        .post(&format!("/v1/off_session_payments/{id}/resume"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stats = app.stats().await;
    assert_eq!(
        (stats.ready, stats.delayed),
        (1, 0),
        "due now, not in 5 hours"
    );
}

async fn only_paused_or_retrying_payments_resume() {
    let app = spawn_app().await;
    let id = app.create("r3", &body()).await.id();
    for status in ["processing", "succeeded", "failed", "canceled"] {
        app.force_status(&id, status, 1).await;
        let r = app
            .post(&format!("/v1/off_session_payments/{id}/resume"), None)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (409, Some("payment_not_resumable")),
            "{status}"
        );
    }
    let bad = app
        .post(
            &format!("/v1/off_session_payments/{id}/resume"),
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!((bad.status, bad.param()), (400, Some("colour")));
}
