//! The payment store's listing against a real redis-server: pages of payments created in the
//! same millisecond, and a cursor whose payment changed status meanwhile.

use std::collections::HashSet;
use std::time::Duration;

use flint_shared::ids::PaymentId;
use flint_shared::payment::store::{JobAction, Store};
use flint_shared::payment::{CreatePaymentRequest, EventKind, Payment, Status};
use flint_shared::time::Timestamp;
use flint_testkit::redis::RedisServer;
use serde_json::json;

fn store(redis: &RedisServer) -> Store {
    Store::new(
        flint_shared::redis_target::RedisTarget::Standalone(redis.url()),
        "charges",
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
}

async fn create(store: &Store, n: usize, at: Timestamp) -> PaymentId {
    let request: CreatePaymentRequest = serde_json::from_value(json!({
        "customer": "cus_1", "amount": {"value": 2500, "currency": "usd"},
        "purpose": "subscription", "initiated_by": {"type": "service", "id": "billing"}
    }))
    .unwrap();
    let payment = Payment::create(PaymentId::generate(), request.validate(at).unwrap(), at);
    let id = payment.id.clone();
    store
        .create("acme", &format!("key-{n}"), "fp", payment, at)
        .await
        .unwrap();
    id
}

/// Every payment of the list, page by page, with `limit` a page.
async fn walk(store: &Store, status: Option<Status>, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list("acme", Some("cus_1"), status, limit, cursor.as_deref())
            .await
            .unwrap()
            .expect("a cursor from the list itself");
        seen.extend(page.payments.iter().map(|p| p.id.to_string()));
        if !page.has_more {
            return seen;
        }
        cursor = seen.last().cloned();
    }
}

#[tokio::test]
async fn pages_of_payments_created_in_one_millisecond_show_each_once() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let at = Timestamp::now();
    let mut ids = HashSet::new();
    for n in 0..25 {
        ids.insert(create(&store, n, at).await.to_string());
    }
    let seen = walk(&store, None, 4).await;
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);
    // Newest first means, within one millisecond, the index's own order reversed: byte order.
    let mut expected: Vec<String> = ids.into_iter().collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_cursor_whose_payment_changed_status_still_marks_its_place() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            create(
                &store,
                n,
                Timestamp::now().plus(Duration::from_millis(n as u64)),
            )
            .await,
        );
    }
    // Newest first: ids[5], ids[4], … The first page of pending ends at ids[4].
    let page = store
        .list("acme", None, Some(Status::Pending), 2, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.payments[1].id, ids[4]);
    // That payment is canceled before the next page is asked for.
    let (_, current) = store.get_any(ids[4].as_str()).await.unwrap().unwrap();
    let mut p = current.payment.clone();
    let now = Timestamp::now();
    p.status = Status::Canceled;
    p.record(EventKind::Canceled, None, now);
    assert!(
        store
            .transition(&current, &p, JobAction::Unschedule, now)
            .await
            .unwrap()
            .is_some()
    );
    let next = store
        .list(
            "acme",
            None,
            Some(Status::Pending),
            2,
            Some(ids[4].as_str()),
        )
        .await
        .unwrap()
        .expect("the cursor is still one of the tenant's payments");
    let next: Vec<&PaymentId> = next.payments.iter().map(|p| &p.id).collect();
    assert_eq!(next, [&ids[3], &ids[2]]);
    // Another tenant's payment, or none, is no cursor.
    assert!(
        store
            .list("other", None, None, 2, Some(ids[0].as_str()))
            .await
            .unwrap()
            .is_none()
    );
}

/// With `[redis] compact_created_events`, a pending payment's `created` event keeps no copy of
/// the payment while the payment has not changed (it reads its snapshot from the record), and
/// reads byte for byte the same before the payment's first change, after it, and through every
/// way events are read.
#[tokio::test]
async fn the_created_event_reads_the_same_before_and_after_its_payment_changes() {
    let redis = RedisServer::start();
    let store = store(&redis).with_compact_created_events(true);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let id = create(&store, 0, Timestamp::now()).await;
    let (_, current) = store.get_any(id.as_str()).await.unwrap().unwrap();
    let created = current.payment.events[0].id.clone();
    let key = format!("flint:{{charges}}:evt:{created}");

    // Lazy: no `d` (the JSON in full), and less than half the memory it takes in full.
    let stored: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("d")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, None);
    let lazy_bytes: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (event, before) = store.event_any(created.as_str()).await.unwrap().unwrap();
    assert_eq!(event.kind, EventKind::Created);
    let snapshot = serde_json::to_value(&event).unwrap();
    assert_eq!(snapshot["data"]["object"]["id"], id.as_str());
    assert_eq!(snapshot["data"]["object"]["status"], "pending");
    assert!(
        snapshot["data"]["object"].get("events").is_none(),
        "a snapshot is the payment without its timeline: {snapshot}"
    );
    let listed = store
        .events("acme", Default::default(), 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.events.len(), 1);
    assert_eq!(serde_json::to_value(&listed.events[0]).unwrap(), snapshot);

    // The payment changes: the event is written in full first, the same bytes.
    let mut p = current.payment.clone();
    let now = Timestamp::now();
    p.status = Status::Canceled;
    p.record(EventKind::Canceled, None, now);
    store
        .transition(&current, &p, JobAction::Unschedule, now)
        .await
        .unwrap()
        .unwrap();
    let stored: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("d")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(before.as_str()));
    let full_bytes: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        lazy_bytes * 2 < full_bytes,
        "lazy {lazy_bytes} bytes, in full {full_bytes}"
    );
    let (_, after) = store.event_any(created.as_str()).await.unwrap().unwrap();
    assert_eq!(after, before);
    let lazy_fields: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(&key)
        .arg("n")
        .arg("h1")
        .arg("z")
        .arg("p")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lazy_fields, [None, None, None, None]);
    // The payment's own listing of its events, and the canceled event in full.
    let of_payment = store
        .events(
            "acme",
            flint_shared::payment::store::EventFilter {
                kind: None,
                payment: Some(id.as_str()),
            },
            10,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<EventKind> = of_payment.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Canceled, EventKind::Created]);
    assert_eq!(
        serde_json::to_value(&of_payment.events[1]).unwrap(),
        snapshot
    );
}

/// Without `[redis] compact_created_events` (the default), the `created` event is written in
/// full, as older versions read it.
#[tokio::test]
async fn by_default_the_created_event_is_written_in_full() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let id = create(&store, 0, Timestamp::now()).await;
    let (_, current) = store.get_any(id.as_str()).await.unwrap().unwrap();
    let created = current.payment.events[0].id.clone();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (stored, lazy): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(format!("flint:{{charges}}:evt:{created}"))
        .arg("d")
        .arg("n")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, read) = store.event_any(created.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.as_deref(), Some(read.as_str()));
    assert_eq!(lazy, None);
}
