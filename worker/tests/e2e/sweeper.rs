//! The sweeper proves every payment has a way forward: a healthy system repairs nothing; a
//! payment whose job was deleted by hand, or acknowledged away while the payment still needed
//! it, gets its job back; one that keeps losing it requires attention; one worker sweeps at a
//! time, and a long walk continues where it stopped.

use std::time::Duration;

use flint_queue::Outcome;
use flint_shared::payment::Status;
use flint_shared::time::Timestamp;
use flint_testkit::processor::ScriptedProcessor;
use flint_worker::sweeper::{Limits, MAX_REPAIRS, Sweeper};
use serde_json::{Value, json};

use crate::harness::*;
use crate::pipelines::{self, charged, deliver, mid_attempt, needs_customer};

flint_testkit::in_both_layouts!(
    a_healthy_system_repairs_nothing_and_counts_what_waits_for_an_operator,
    a_payment_whose_job_is_gone_gets_it_back_and_goes_on,
    a_payment_that_keeps_losing_its_job_requires_attention,
    one_worker_sweeps_at_a_time,
);

fn sweeper(s: &Stack, holder: &str) -> Sweeper {
    Sweeper::new(
        pipelines::store(s),
        holder.to_owned(),
        Duration::from_secs(60),
    )
}

/// Deletes everything of payment `id`'s job, wherever it is: what a bug, an operator or a lost
/// write could do.
async fn delete_job(s: &Stack, id: &str) {
    let mut conn = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let partitions =
        flint_shared::partition::Partitions::new(&s.config.queue.name, s.config.queue.partitions);
    let keys = flint_queue::keys::Keys::of_partition(
        partitions.tag(partitions.of_payment(id)),
        &s.config.queue.name,
    );
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    for (entry, fields) in entries {
        if fields.iter().any(|(k, v)| k == "id" && v == id) {
            let () = redis::pipe()
                .cmd("XACK")
                .arg(&keys.stream)
                .arg("workers")
                .arg(&entry)
                .ignore()
                .cmd("XDEL")
                .arg(&keys.stream)
                .arg(&entry)
                .ignore()
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    let () = redis::pipe()
        .zrem(&keys.delayed, id)
        .ignore()
        .hdel(&keys.delayed_data, id)
        .ignore()
        .hdel(&keys.ids, id)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn in_an_hour() -> Value {
    json!({"charge_at": Timestamp::now().plus(Duration::from_secs(3600)).rfc3339()})
}

async fn a_healthy_system_repairs_nothing_and_counts_what_waits_for_an_operator() {
    let s = api_only(vec![100]).await;
    let processor = ScriptedProcessor::new();
    processor
        .create_intent(Err(needs_customer()))
        .create_intent(Ok(charged()));
    let pipeline = pipelines::scripted(&s, &processor);
    let _scheduled = s.pay("cus_1", Some("pm_1"), in_an_hour()).await;
    let paused = s.pay("cus_1", Some("pm_1"), json!({})).await;
    assert!(matches!(
        deliver(&pipeline, &paused).await,
        Outcome::RetryAt(_)
    ));
    let succeeded = s.pay("cus_2", Some("pm_2"), json!({})).await;
    assert_eq!(deliver(&pipeline, &succeeded).await, Outcome::Complete);
    let stuck = s.pay("cus_3", Some("pm_3"), json!({})).await;
    assert_eq!(
        pipeline
            .run(&pipelines::job(&stuck), flint_queue::LostLeases(5))
            .await,
        Outcome::Complete
    );
    assert_eq!(s.payment(&stuck).await["status"], "requires_attention");

    let tick = sweeper(&s, "a").tick(Timestamp::now()).await.unwrap();
    assert!(tick.swept);
    assert_eq!(tick.scanned, 3, "the payments that are not final");
    assert!(tick.repaired.is_empty(), "{tick:?}");
    assert!(tick.given_up.is_empty());
    assert_eq!(tick.requiring_attention, Some(1));
    // What every worker reports as flint_payments_requiring_attention, from the indexes.
    let store = pipelines::store(&s);
    assert_eq!(
        store
            .count_in_status(&["acme", "another"], Status::RequiresAttention)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_in_status(&["acme"], Status::Succeeded)
            .await
            .unwrap(),
        1
    );
}

async fn a_payment_whose_job_is_gone_gets_it_back_and_goes_on() {
    let s = api_only(vec![100]).await;
    // A scheduled payment whose delayed job was deleted by hand.
    let scheduled = s.pay("cus_1", Some("pm_1"), in_an_hour()).await;
    delete_job(&s, &scheduled).await;
    // A payment mid-attempt whose job was acknowledged away (a worker reported it done while
    // the payment still needed it).
    let mid = s.pay("cus_2", Some("pm_2"), json!({})).await;
    mid_attempt(&s, &mid, |_| {}).await;
    delete_job(&s, &mid).await;
    let queues = pipelines::partition_queues(&s).await;
    let depth = || async {
        let mut all = Vec::new();
        for queue in &queues {
            all.push(queue.stats().await.unwrap());
        }
        let sum: flint_queue::QueueStats = all.into_iter().sum();
        (sum.ready, sum.delayed)
    };
    assert_eq!(depth().await, (0, 0));

    let tick = sweeper(&s, "a").tick(Timestamp::now()).await.unwrap();
    let mut repaired: Vec<(String, &str)> = tick
        .repaired
        .iter()
        .map(|(id, status)| (id.clone(), status.as_str()))
        .collect();
    repaired.sort();
    let mut expected = vec![(scheduled.clone(), "pending"), (mid.clone(), "processing")];
    expected.sort();
    assert_eq!(repaired, expected);
    assert_eq!(depth().await.0, 2, "both jobs are back");
    let metrics = flint_shared::telemetry::prometheus().render();
    for reason in ["pending_without_job", "processing_without_job"] {
        assert!(
            metrics.contains(&format!(
                "flint_payments_repaired_total{{reason=\"{reason}\"}}"
            )),
            "{metrics}"
        );
    }
    // Nothing more to repair, and the restored jobs carry the payments on: the scheduled one
    // waits for its time, the interrupted attempt is settled.
    let again = sweeper(&s, "a").tick(Timestamp::now()).await.unwrap();
    assert!(again.repaired.is_empty(), "{again:?}");
    let processor = ScriptedProcessor::new();
    processor.find_intent(Ok(Some(charged())));
    let pipeline = pipelines::scripted(&s, &processor);
    assert!(matches!(
        deliver(&pipeline, &scheduled).await,
        Outcome::RetryAt(_)
    ));
    assert_eq!(deliver(&pipeline, &mid).await, Outcome::Complete);
    assert_eq!(s.payment(&mid).await["status"], "succeeded");
}

async fn a_payment_that_keeps_losing_its_job_requires_attention() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), in_an_hour()).await;
    let sweeper = sweeper(&s, "a");
    for n in 1..=MAX_REPAIRS {
        delete_job(&s, &id).await;
        let tick = sweeper.tick(Timestamp::now()).await.unwrap();
        assert_eq!(tick.repaired.len(), 1, "repair {n}");
    }
    delete_job(&s, &id).await;
    let tick = sweeper.tick(Timestamp::now()).await.unwrap();
    assert!(tick.repaired.is_empty());
    assert_eq!(tick.given_up, std::slice::from_ref(&id));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "requires_attention", "{p:#}");
    assert_eq!(p["attention"]["reason"], "job_lost");
    // Visible, counted, and not looping: the next sweep leaves it to an operator.
    let tick = sweeper.tick(Timestamp::now()).await.unwrap();
    assert!(tick.repaired.is_empty() && tick.given_up.is_empty());
    assert_eq!(tick.requiring_attention, Some(1));
}

async fn one_worker_sweeps_at_a_time() {
    let s = api_only(vec![100]).await;
    let (a, b) = (sweeper(&s, "a"), sweeper(&s, "b"));
    assert!(a.tick(Timestamp::now()).await.unwrap().swept);
    assert!(
        !b.tick(Timestamp::now()).await.unwrap().swept,
        "a holds the lock"
    );
    assert!(
        a.tick(Timestamp::now()).await.unwrap().swept,
        "and keeps it"
    );
}

#[tokio::test]
async fn a_walk_longer_than_a_tick_continues_where_it_stopped() {
    let s = api_only(vec![100]).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let id = s.pay(&format!("cus_{i}"), Some("pm_1"), in_an_hour()).await;
        delete_job(&s, &id).await;
        ids.push(id);
    }
    let sweeper = sweeper(&s, "a").with_limits(Limits {
        batch: 10,
        batches_per_tick: 2,
        ..Limits::default()
    });
    let first = sweeper.tick(Timestamp::now()).await.unwrap();
    assert_eq!(first.scanned, 20);
    assert_eq!(first.repaired.len(), 20);
    assert_eq!(first.requiring_attention, None, "the walk is not over");
    let second = sweeper.tick(Timestamp::now()).await.unwrap();
    assert_eq!(second.scanned, 5);
    assert_eq!(second.requiring_attention, Some(0));
    let mut repaired: Vec<String> = first
        .repaired
        .into_iter()
        .chain(second.repaired)
        .map(|(id, _)| id)
        .collect();
    repaired.sort();
    ids.sort();
    assert_eq!(repaired, ids, "every payment once");
}

#[tokio::test]
async fn an_endpoint_mark_a_partition_lost_is_restored_so_its_events_are_delivered_again() {
    flint_testkit::layouts::in_partitions(3);
    let s = stack_configured(vec![100], false, |c| {
        c.webhooks.allow_http = true;
        c.webhooks.allow_private_networks = true;
    })
    .await;
    let made = s
        .post(
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}),
        )
        .await;
    let endpoint = made["id"].as_str().unwrap().to_owned();
    let partitions = flint_shared::partition::Partitions::new("charges", 3);
    let marks = |p: usize| format!("flint:{{{}}}:whe:acme", partitions.tag(p));
    let mut conn = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for p in 1..3 {
        let marked: bool = redis::cmd("HEXISTS")
            .arg(marks(p))
            .arg(&endpoint)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(marked, "partition {p} knows the tenant has an endpoint");
    }
    // Lost, as a failover before replication could lose it.
    let () = redis::cmd("DEL")
        .arg(marks(2))
        .query_async(&mut conn)
        .await
        .unwrap();
    let tick = sweeper(&s, "a")
        .with_tenants(vec!["acme".to_owned()])
        .tick(Timestamp::now())
        .await
        .unwrap();
    assert!(tick.swept);
    let restored: bool = redis::cmd("HEXISTS")
        .arg(marks(2))
        .arg(&endpoint)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(restored, "the sweeper restored the mark");
}
