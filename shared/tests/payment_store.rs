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
