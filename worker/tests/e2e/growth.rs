//! Every key is bounded: payments are created, finished (succeeded, failed, paused and then
//! expired) and forgotten after their retention, and Redis comes back to where it was — the same
//! keys and about the same memory. (Card-rule keys carry their own expiry, up to 400 days for a
//! "never" block; the cards here leave none.)

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use flint_shared::ids::PaymentId;
use flint_shared::payment::network::CardRules;
use flint_shared::payment::store::{Created, Store};
use flint_shared::payment::{CreatePaymentRequest, Payment};
use flint_shared::processor::CardBrand;
use flint_shared::time::Timestamp;
use flint_testkit::poll_until;
use flint_testkit::processor::ScriptedProcessor;
use flint_worker::charge::Pipeline;
use flint_worker::charge::decide::Policy;
use flint_worker::sweeper::Sweeper;
use serde_json::json;

use crate::harness::*;
use crate::pipelines::{self, charged, needs_customer, rejected};

/// Kept one second after finishing; idempotency keys one second.
fn short_lived(s: &Stack) -> Store {
    Store::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

async fn create(store: &Store, n: usize) -> PaymentId {
    let request: CreatePaymentRequest = serde_json::from_value(json!({
        "customer": format!("cus_{}", n % 7), "payment_method": "pm_1",
        "amount": {"value": 2500, "currency": "usd"}, "purpose": "subscription",
        "initiated_by": {"type": "service", "id": "billing"}, "metadata": {"n": n.to_string()}
    }))
    .unwrap();
    let now = Timestamp::now();
    let payment = Payment::create(PaymentId::generate(), request.validate(now).unwrap(), now);
    let id = payment.id.clone();
    let created = store
        .create("acme", &format!("growth-{n}"), "fp", payment, now)
        .await
        .unwrap();
    assert!(matches!(created, Created::New(_)));
    id
}

/// Every key in Redis, and its `used_memory`.
async fn footprint(conn: &mut redis::aio::MultiplexedConnection) -> (BTreeSet<String>, i64) {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    (keys.into_iter().collect(), used)
}

/// Creates `n` payments (succeeding, rejected, paused) and waits until all are final.
async fn round(store: &Store, processor: &ScriptedProcessor, offset: usize, n: usize) {
    let mut ids = Vec::new();
    for i in offset..offset + n {
        let _ = match i % 4 {
            0 | 1 => processor.create_intent(Ok(charged())),
            2 => processor.create_intent(Err(rejected())),
            _ => processor.create_intent(Err(needs_customer())),
        };
        ids.push(create(store, i).await);
    }
    poll_until(Duration::from_secs(30), "every payment final", || async {
        for id in &ids {
            let (_, v) = store.get_any(id.as_str()).await.unwrap()?;
            if !v.payment.status.is_final() {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test]
async fn redis_returns_to_its_baseline_once_payments_are_finished_and_forgotten() {
    let s = api_only(vec![100]).await;
    let processor = ScriptedProcessor::new().with_card_brand(CardBrand::Mastercard);
    let policy = Policy {
        paused_expiry: Duration::from_millis(300),
        ..flint_worker::policy(&s.config)
    };
    let pipeline = Arc::new(Pipeline::new(
        short_lived(&s),
        HashMap::from([("acme".to_owned(), processor.clone())]),
        policy,
        CardRules::new(
            flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
            "charges",
        ),
    ));
    let _worker = pipelines::worker(&s, pipeline).await;
    let sweeper = Sweeper::new(short_lived(&s), "growth".into(), Duration::from_secs(60));
    let store = short_lived(&s);
    let mut conn = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Once every payment is forgotten, only the queue's and the sweeper's own keys are left.
    let settled = |conn: redis::aio::MultiplexedConnection| {
        let sweeper = &sweeper;
        async move {
            let mut conn = conn;
            sweeper.tick(Timestamp::now()).await.unwrap();
            let (keys, _) = footprint(&mut conn).await;
            let payments = keys.iter().filter(|k| {
                [":pay:", ":idem:", ":idx:", ":live", ":expiring", ":card:"]
                    .iter()
                    .any(|part| k.contains(part))
            });
            (payments.count() == 0).then_some(keys)
        }
    };

    // A first round loads every script and creates the queue's keys.
    round(&store, &processor, 0, 8).await;
    let baseline_keys = poll_until(Duration::from_secs(30), "the first round forgotten", || {
        settled(conn.clone())
    })
    .await;
    let (_, baseline_memory) = footprint(&mut conn).await;

    round(&store, &processor, 100, 200).await;
    let (during, during_memory) = footprint(&mut conn).await;
    assert!(
        during.len() > baseline_keys.len() + 200,
        "{} keys while the payments are kept",
        during.len()
    );
    let keys = poll_until(Duration::from_secs(30), "the payments forgotten", || {
        settled(conn.clone())
    })
    .await;
    assert_eq!(keys, baseline_keys, "the same keys as before");
    let (_, memory) = footprint(&mut conn).await;
    eprintln!(
        "used_memory: {baseline_memory} before, {during_memory} with 200 payments kept, {memory} after"
    );
    assert!(
        (memory - baseline_memory).abs() < 128 * 1024,
        "used_memory {memory} vs {baseline_memory} before"
    );
}
