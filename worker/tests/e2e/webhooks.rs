//! Events delivered to a real local receiver: signed so that the official Standard Webhooks
//! library verifies them, retried after errors, timeouts and a receiver that is down,
//! dead-lettered when they never get through (and replayable), and signed with both secrets
//! during a rotation's overlap.

use std::collections::BTreeSet;
use std::time::Duration;

use flint_queue::{Queue, QueueConfig, QueueStats, Replayed};
use flint_shared::config::{Config, StorageFormat};
use flint_shared::webhook::sign::generate_secret;
use flint_testkit::poll_until;
use serde_json::{Value, json};

use crate::harness::*;
use crate::receiver::{Delivery, Receiver, Reply, verify_with_official_library};

flint_testkit::in_both_layouts!(
    every_event_reaches_the_receiver_signed_as_the_official_library_verifies,
    in_the_compact_format_the_created_event_is_delivered_as_it_was,
    a_delivery_is_retried_after_errors_and_a_timeout_until_the_receiver_accepts,
    a_receiver_down_for_a_while_gets_the_event_once_it_is_back,
    a_delivery_that_never_gets_through_is_dead_lettered_with_the_last_answer_and_replays,
    during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one,
    a_rotation_racing_updates_is_never_undone,
);

async fn hooks_stack(adjust: impl FnOnce(&mut Config)) -> Stack {
    stack_configured(vec![100], true, |c| {
        c.webhooks.allow_http = true;
        c.webhooks.allow_private_networks = true;
        c.webhooks.first_retry_delay_ms = 50;
        c.webhooks.timeout_ms = 500;
        adjust(c);
    })
    .await
}

async fn endpoint(s: &Stack, url: &str, events: Value) -> Value {
    let made = s
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "enabled_events": events}),
        )
        .await;
    assert!(made["secret"].is_string(), "{made}");
    made
}

/// A payment body part that keeps it pending for an hour: its only event is `created`.
fn scheduled() -> Value {
    let later = flint_shared::time::Timestamp::now().plus(Duration::from_secs(3600));
    json!({ "charge_at": later.to_string() })
}

/// The webhook queue of every partition.
async fn webhook_queue(s: &Stack) -> Vec<Queue> {
    let partitions =
        flint_shared::partition::Partitions::new(&s.config.queue.name, s.config.queue.partitions);
    let mut queues = Vec::new();
    for (p, tag) in (0u16..).zip(partitions.tags()) {
        let config = QueueConfig::new("webhooks").in_partition(p, tag.clone());
        queues.push(Queue::connect(&s.redis.url(), config).await.unwrap());
    }
    queues
}

/// The webhook queue's depth, summed over its partitions.
async fn stats(queues: &[Queue]) -> QueueStats {
    let mut all = Vec::new();
    for queue in queues {
        all.push(queue.stats().await.unwrap());
    }
    all.into_iter().sum()
}

async fn received(rx: &Receiver, n: usize) -> Vec<Delivery> {
    poll_until(
        Duration::from_secs(30),
        &format!("{n} deliveries"),
        || async {
            let d = rx.deliveries();
            (d.len() >= n).then_some(d)
        },
    )
    .await
}

/// Waits until nothing is left to deliver.
async fn drained(queue: &[Queue]) {
    poll_until(Duration::from_secs(30), "no delivery left", || async {
        let s = stats(queue).await;
        (s.ready + s.leased + s.delayed == 0).then_some(())
    })
    .await;
}

async fn every_event_reaches_the_receiver_signed_as_the_official_library_verifies() {
    every_event_reaches_the_receiver(StorageFormat::Json).await;
    every_event_reaches_the_receiver(StorageFormat::Compact).await;
}

/// `[redis] storage_format = "compact"`: a pending payment's `created` event has no key of its
/// own and is made from the payment's record; it is delivered, redelivered, and after the
/// payment changes (when it is written in full) redelivered again with the same bytes, each
/// time signed as the official library verifies.
async fn in_the_compact_format_the_created_event_is_delivered_as_it_was() {
    let s = hooks_stack(|c| c.redis.storage_format = StorageFormat::Compact).await;
    let rx = Receiver::start().await;
    let made = endpoint(&s, &rx.url(), json!(["*"])).await;
    let secret = made["secret"].as_str().unwrap().to_owned();
    let id = s.pay("cus_none", None, scheduled()).await;
    let first = received(&rx, 1).await.remove(0);
    assert_eq!(first.event()["type"], "off_session_payment.created");
    let partitions =
        flint_shared::partition::Partitions::new(&s.config.queue.name, s.config.queue.partitions);
    let prefix = format!("flint:{{{}}}", partitions.tag(partitions.of_payment(&id)));
    let mut redis = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let event_key = format!("{prefix}:evt:{}", first.id);
    let (exists, kept): (u64, Option<String>) = redis::pipe()
        .cmd("EXISTS")
        .arg(&event_key)
        .cmd("HGET")
        .arg(format!("{prefix}:pay:{id}"))
        .arg("l")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((exists, kept.is_some()), (0, true), "kept in the payment");

    let again = s
        .post(&format!("/v1/events/{}/redeliver", first.id), json!({}))
        .await;
    assert_eq!(again["object"], "event_redelivery", "{again}");
    let second = received(&rx, 2).await.remove(1);
    assert_eq!(second.body, first.body);

    let canceled = s
        .post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&event_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 1, "written in full once the payment changed");
    s.post(&format!("/v1/events/{}/redeliver", first.id), json!({}))
        .await;
    let all = received(&rx, 4).await;
    let created: Vec<&Delivery> = all.iter().filter(|d| d.id == first.id).collect();
    assert_eq!(created.len(), 3, "{all:?}");
    assert!(created.iter().all(|d| d.body == first.body));
    verify_with_official_library(&secret, &all, true);
}

async fn every_event_reaches_the_receiver(format: StorageFormat) {
    let s = hooks_stack(|c| c.redis.storage_format = format).await;
    let rx = Receiver::start().await;
    let made = endpoint(&s, &rx.url(), json!(["*"])).await;
    let secret = made["secret"].as_str().unwrap();
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    s.settles(&id, &["succeeded"]).await;
    let deliveries = received(&rx, 3).await;
    let types: BTreeSet<String> = deliveries
        .iter()
        .map(|d| d.event()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "off_session_payment.attempt_started".to_owned(),
            "off_session_payment.created".to_owned(),
            "off_session_payment.succeeded".to_owned(),
        ])
    );
    let listed = s.get(&format!("/v1/events?payment={id}")).await;
    let listed: BTreeSet<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for d in &deliveries {
        let event = d.event();
        assert_eq!(
            d.id,
            event["id"].as_str().unwrap(),
            "webhook-id is the event id"
        );
        assert!(listed.contains(d.id.as_str()));
        assert_eq!(event["tenant"], "acme");
        assert_eq!(event["data"]["object"]["id"], id.as_str());
    }
    // The created event is the payment as it was created, and reads the same from the API.
    let created = deliveries
        .iter()
        .find(|d| d.event()["type"] == "off_session_payment.created")
        .unwrap();
    assert_eq!(created.event()["data"]["object"]["status"], "pending");
    assert!(created.event()["data"]["object"].get("events").is_none());
    assert_eq!(
        s.get(&format!("/v1/events/{}", created.id)).await,
        created.event()
    );
    verify_with_official_library(secret, &deliveries, true);
    verify_with_official_library(&generate_secret(), &deliveries, false);
    let mut tampered = deliveries[0].clone();
    tampered.body = tampered.body.replace("acme", "evil");
    verify_with_official_library(secret, &[tampered], false);
}

async fn a_delivery_is_retried_after_errors_and_a_timeout_until_the_receiver_accepts() {
    let s = hooks_stack(|_| {}).await;
    let rx = Receiver::start().await;
    rx.script(&[
        Reply::Status(500),
        Reply::Status(503),
        Reply::Hang(Duration::from_secs(2)),
        Reply::Status(301),
    ]);
    endpoint(&s, &rx.url(), json!(["off_session_payment.created"])).await;
    let id = s.pay("cus_none", None, scheduled()).await;
    let queue = webhook_queue(&s).await;
    let deliveries = received(&rx, 5).await;
    drained(&queue).await;
    let deliveries = rx
        .deliveries()
        .into_iter()
        .chain(deliveries)
        .collect::<Vec<_>>();
    let ids: BTreeSet<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one event, the same webhook-id on every try");
    assert_eq!(deliveries[0].event()["data"]["object"]["id"], id.as_str());
    assert_eq!(
        rx.deliveries().len(),
        5,
        "accepted on the fifth try, then nothing more"
    );
    assert_eq!(stats(&queue).await.dead, 0);
}

async fn a_receiver_down_for_a_while_gets_the_event_once_it_is_back() {
    let s = hooks_stack(|_| {}).await;
    // A port nothing listens on, for now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    endpoint(
        &s,
        &format!("http://{addr}/hooks"),
        json!(["off_session_payment.created"]),
    )
    .await;
    s.pay("cus_none", None, scheduled()).await;
    let queue = webhook_queue(&s).await;
    // Refused, and waiting to be tried again.
    poll_until(
        Duration::from_secs(10),
        "a retry to be scheduled",
        || async { (stats(&queue).await.delayed == 1).then_some(()) },
    )
    .await;
    let rx = Receiver::start_on(addr).await;
    let deliveries = received(&rx, 1).await;
    assert_eq!(deliveries[0].event()["type"], "off_session_payment.created");
    drained(&queue).await;
    assert_eq!(stats(&queue).await.dead, 0);
}

async fn a_delivery_that_never_gets_through_is_dead_lettered_with_the_last_answer_and_replays() {
    let s = hooks_stack(|c| c.webhooks.retry_for_secs = 1).await;
    let rx = Receiver::start().await;
    rx.script(&[Reply::Status(503); 10_000]);
    endpoint(&s, &rx.url(), json!(["off_session_payment.created"])).await;
    s.pay("cus_none", None, scheduled()).await;
    let queue = webhook_queue(&s).await;
    poll_until(Duration::from_secs(30), "a dead letter", || async {
        (stats(&queue).await.dead == 1).then_some(())
    })
    .await;
    assert!(rx.deliveries().len() >= 2, "retried before giving up");
    // The one partition holding the dead letter.
    let mut holder = None;
    for q in &queue {
        if q.stats().await.unwrap().dead == 1 {
            holder = Some(q);
        }
    }
    let holder = holder.expect("a partition holds the dead letter");
    let dead = holder.dead_letters(10).await.unwrap();
    let event = rx.deliveries()[0].id.clone();
    assert!(dead[0].reason.contains("HTTP 503"), "{}", dead[0].reason);
    assert!(dead[0].reason.contains(&event), "{}", dead[0].reason);
    // The receiver is fixed; the dead letter is replayed and gets through.
    rx.clear_script();
    let before = rx.deliveries().len();
    assert_eq!(
        holder
            .replay_dead_letter(&dead[0].dead_letter_id)
            .await
            .unwrap(),
        Replayed::Replayed
    );
    received(&rx, before + 1).await;
    drained(&queue).await;
    assert_eq!(stats(&queue).await.dead, 0);
}

async fn during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one() {
    let s = hooks_stack(|_| {}).await;
    let rx = Receiver::start().await;
    let made = endpoint(&s, &rx.url(), json!(["off_session_payment.created"])).await;
    let first = made["secret"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    let rotated = s
        .post(
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            json!({"expire_current_in_secs": 3600}),
        )
        .await;
    let second = rotated["secret"].as_str().unwrap().to_owned();
    s.pay("cus_none", None, scheduled()).await;
    let overlap = received(&rx, 1).await;
    assert_eq!(overlap[0].signature.split(' ').count(), 2);
    verify_with_official_library(&first, &overlap, true);
    verify_with_official_library(&second, &overlap, true);

    let rotated = s
        .post(
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            json!({"expire_current_in_secs": 0}),
        )
        .await;
    let third = rotated["secret"].as_str().unwrap().to_owned();
    s.pay("cus_none", None, scheduled()).await;
    let after = received(&rx, 2).await[1..].to_vec();
    assert_eq!(after[0].signature.split(' ').count(), 1);
    verify_with_official_library(&third, &after, true);
    verify_with_official_library(&second, &after, false);
    verify_with_official_library(&first, &after, false);
}

async fn a_rotation_racing_updates_is_never_undone() {
    let s = hooks_stack(|_| {}).await;
    let rx = Receiver::start().await;
    let made = endpoint(&s, &rx.url(), json!(["off_session_payment.created"])).await;
    let mut current = made["secret"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    for round in 1..=5 {
        // One rotation that retires the current secret at once, among updates that each read
        // the endpoint and write it back.
        let mut updates = Vec::new();
        for i in 0..20 {
            let (http, url) = (
                s.http.clone(),
                format!("{}/v1/webhook_endpoints/{id}", s.api),
            );
            updates.push(tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(API_KEY)
                    .json(&json!({"description": format!("update {i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        // The rotation is asked again while the endpoint is too busy to change (409).
        let new = loop {
            let rotated = s
                .post(
                    &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
                    json!({"expire_current_in_secs": 0}),
                )
                .await;
            match rotated["secret"].as_str() {
                Some(secret) => break secret.to_owned(),
                None => assert_eq!(
                    rotated["error"]["code"], "webhook_endpoint_busy",
                    "{rotated}"
                ),
            }
        };
        for u in updates {
            let status = u.await.unwrap();
            assert!(status == 200 || status == 409, "{status}");
        }
        s.pay("cus_none", None, scheduled()).await;
        let delivered = received(&rx, round).await[round - 1..].to_vec();
        verify_with_official_library(&new, &delivered, true);
        verify_with_official_library(&current, &delivered, false);
        current = new;
    }
}
