//! The payment store's listing against a real redis-server: pages of payments created in the
//! same millisecond, a cursor whose payment changed status meanwhile, and entries whose record
//! is gone, dropped from whichever status's index holds them (a page that meets many stops at
//! its budget and says more follow, so the next call goes on).

use std::collections::HashSet;
use std::time::Duration;

use flint_shared::config::StorageFormat;
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

/// The leanest writer: compact, without the unfiltered indexes (listing reads only the
/// per-status ones either way).
fn lean_store(redis: &RedisServer) -> Store {
    store(redis)
        .with_storage_format(StorageFormat::Compact)
        .with_unfiltered_indexes(false)
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

/// Cancels payment `id`.
async fn cancel(store: &Store, id: &str) {
    let (_, current) = store.get_any(id).await.unwrap().unwrap();
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
    cancel(&store, ids[4].as_str()).await;
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

/// Creates `n` payments one millisecond apart (so the listing's order is theirs, reversed),
/// canceling every other one: ids newest first.
async fn pending_and_canceled(store: &Store, n: usize) -> Vec<String> {
    let at = Timestamp::now();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = create(store, i, at.plus(Duration::from_millis(i as u64)))
            .await
            .to_string();
        if i % 2 == 1 {
            cancel(store, &id).await;
        }
        ids.push(id);
    }
    ids.reverse();
    ids
}

/// Deletes the records of `ids`, as their expiry would.
async fn forget(redis: &RedisServer, ids: &[String]) {
    let mut conn = redis.connect().await;
    for id in ids {
        let () = redis::cmd("DEL")
            .arg(format!("flint:{{charges}}:pay:{id}"))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// How many entries the tenant's index of `status` holds.
async fn entries(redis: &RedisServer, status: Status) -> u64 {
    redis::cmd("ZCARD")
        .arg(format!("flint:{{charges}}:idx:acme:st:{}", status.as_str()))
        .query_async(&mut redis.connect().await)
        .await
        .unwrap()
}

fn listed(page: &flint_shared::payment::store::Page) -> Vec<String> {
    page.payments.iter().map(|p| p.id.to_string()).collect()
}

#[tokio::test]
async fn entries_of_gone_records_are_dropped_from_whichever_status_holds_them() {
    let redis = RedisServer::start();
    let store = lean_store(&redis);
    let mut ids = pending_and_canceled(&store, 8).await;
    // A first page, then four older records go: two pending and two canceled.
    let first = store
        .list("acme", None, None, 2, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&first), ids[..2]);
    assert!(first.has_more);
    let gone = [
        ids[2].clone(),
        ids[4].clone(),
        ids[5].clone(),
        ids[7].clone(),
    ];
    forget(&redis, &gone).await;
    ids.retain(|id| !gone.contains(id));

    // The next page, from the cursor, passes over them and drops their entries.
    let rest = store
        .list("acme", None, None, 10, Some(&ids[1]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&rest), ids[2..]);
    assert!(!rest.has_more);
    assert_eq!(entries(&redis, Status::Pending).await, 2);
    assert_eq!(entries(&redis, Status::Canceled).await, 2);
    let all = store
        .list("acme", None, None, 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&all), ids);
}

#[tokio::test]
async fn a_page_that_meets_many_gone_records_stops_at_its_budget_and_the_next_goes_on() {
    let redis = RedisServer::start();
    let store = lean_store(&redis);
    let ids = pending_and_canceled(&store, 260).await;
    // The newest 250 are gone: more than a page of 5 may drop in one call (5 + 1 + 200).
    forget(&redis, &ids[..250]).await;
    let live = &ids[250..];

    let first = store
        .list("acme", None, None, 5, None)
        .await
        .unwrap()
        .unwrap();
    assert!(listed(&first).is_empty(), "{:?}", listed(&first));
    assert!(first.has_more, "stopped by its budget, so more may follow");
    let second = store
        .list("acme", None, None, 5, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&second), live[..5]);
    assert!(second.has_more);
    assert_eq!(
        entries(&redis, Status::Pending).await + entries(&redis, Status::Canceled).await,
        10
    );
}
