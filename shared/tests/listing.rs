//! Listing merges a tenant's per-status indexes in a real redis-server: entries whose record is
//! gone are dropped from whichever index holds them, and a page that meets many of them stops
//! at its budget and says more follow, so the next call goes on.

use std::time::Duration;

use flint_shared::config::StorageFormat;
use flint_shared::ids::PaymentId;
use flint_shared::payment::store::{JobAction, Store};
use flint_shared::payment::{CreatePaymentRequest, Payment, Status};
use flint_shared::time::Timestamp;
use flint_testkit::redis::RedisServer;
use redis::aio::MultiplexedConnection;
use serde_json::json;

fn store(redis: &RedisServer) -> Store {
    Store::new(
        flint_shared::redis_target::RedisTarget::Standalone(redis.url()),
        "charges",
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .with_storage_format(StorageFormat::Compact)
    .with_unfiltered_indexes(false)
}

/// Creates `n` payments one millisecond apart (so the listing's order is theirs, reversed),
/// canceling every other one: ids oldest first.
async fn payments(store: &Store, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut at = Timestamp::now();
    for i in 0..n {
        let request: CreatePaymentRequest = serde_json::from_value(json!({
            "customer": "cus_1", "amount": {"value": 2500, "currency": "usd"},
            "purpose": "subscription", "initiated_by": {"type": "service", "id": "billing"},
            "context": {"invoice_id": format!("in_{i}")}
        }))
        .unwrap();
        at = at.plus(Duration::from_millis(1));
        let payment = Payment::create(PaymentId::generate(), request.validate(at).unwrap(), at);
        let id = payment.id.to_string();
        store
            .create("acme", &format!("key-{id}"), "fp", payment, at)
            .await
            .unwrap();
        if i % 2 == 1 {
            let (_, current) = store.get_any(&id).await.unwrap().unwrap();
            let mut canceled = current.payment.clone();
            canceled.status = Status::Canceled;
            let written = store
                .transition(&current, &canceled, JobAction::Unschedule, at)
                .await
                .unwrap();
            assert!(written.is_some());
        }
        ids.push(id);
    }
    ids
}

async fn forget(conn: &mut MultiplexedConnection, ids: &[String]) {
    for id in ids {
        let () = redis::cmd("DEL")
            .arg(format!("flint:{{charges}}:pay:{id}"))
            .query_async(conn)
            .await
            .unwrap();
    }
}

async fn entries(conn: &mut MultiplexedConnection, status: Status) -> u64 {
    redis::cmd("ZCARD")
        .arg(format!("flint:{{charges}}:idx:acme:st:{}", status.as_str()))
        .query_async(conn)
        .await
        .unwrap()
}

fn listed(page: &flint_shared::payment::store::Page) -> Vec<String> {
    page.payments.iter().map(|p| p.id.to_string()).collect()
}

#[tokio::test]
async fn entries_of_gone_records_are_dropped_from_whichever_status_holds_them() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut conn = redis.connect().await;
    let mut ids = payments(&store, 8).await;
    ids.reverse();
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
    forget(&mut conn, &gone).await;
    ids.retain(|id| !gone.contains(id));

    // The next page, from the cursor, passes over them and drops their entries.
    let rest = store
        .list("acme", None, None, 10, Some(&ids[1]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed(&rest), ids[2..]);
    assert!(!rest.has_more);
    assert_eq!(entries(&mut conn, Status::Pending).await, 2);
    assert_eq!(entries(&mut conn, Status::Canceled).await, 2);
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
    let store = store(&redis);
    let mut conn = redis.connect().await;
    let ids = payments(&store, 260).await;
    // The newest 250 are gone: more than a page of 5 may drop in one call (5 + 1 + 200).
    forget(&mut conn, &ids[10..]).await;
    let mut live: Vec<String> = ids[..10].to_vec();
    live.reverse();

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
        entries(&mut conn, Status::Pending).await + entries(&mut conn, Status::Canceled).await,
        10
    );
}
