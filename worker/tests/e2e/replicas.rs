//! A worker under `[redis] min_replicas_acked`: a transition the replicas do not acknowledge
//! is not lost (it is on the primary) but is not taken as done either: the job runs again,
//! re-reads the record, and nothing is charged twice.

use std::sync::Arc;
use std::time::Duration;

use flint_queue::{LostLeases, Outcome};
use flint_testkit::processor::{Gate, Op, ScriptedProcessor};
use flint_testkit::redis::RedisServer;
use serde_json::json;

use crate::harness::*;
use crate::pipelines::{self, charged, deliver};

async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_charge_result_the_replicas_do_not_acknowledge_is_retried_and_charged_once() {
    let s = stack_configured(vec![100], false, |config| {
        config.redis.min_replicas_acked = 1;
        config.redis.min_replicas_timeout_ms = 300;
    })
    .await;
    let replica = RedisServer::start_replica_of(&s.redis).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let processor = ScriptedProcessor::new();
    let pipeline = pipelines::scripted(&s, &processor);

    // The replica stops before the job starts: its first write (the attempt opened) is not
    // acknowledged, so the job stops there, before anything is sent, and runs again later.
    replica.signal("STOP");
    assert!(matches!(
        pipeline.run(&pipelines::job(&id), LostLeases(0)).await,
        Outcome::RetryAt(_)
    ));
    assert!(
        processor.calls_of(Op::CreateIntent).is_empty(),
        "nothing sent"
    );
    replica.signal("CONT");

    // The next run settles the opened attempt first (nothing charged), then charges; the
    // replica stops while the charge is on its way, so the result's write is on the primary
    // only when the job would end.
    processor.find_intent(Ok(None));
    let in_flight = Gate::new();
    processor.create_intent_at(&in_flight, Ok(charged()));
    let run = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    in_flight.reached().await;
    replica.signal("STOP");
    in_flight.release();
    assert!(
        matches!(run.await.unwrap(), Outcome::RetryAt(_)),
        "not acknowledged by the replica: the job is not done"
    );
    let p = s.payment(&id).await;
    assert_eq!(
        p["status"], "succeeded",
        "the write is on the primary: {p:#}"
    );

    // Once the replica answers, the job runs again, finds the payment succeeded and ends,
    // without another request to the processor.
    replica.signal("CONT");
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    assert_eq!(
        processor.calls_of(Op::CreateIntent).len(),
        1,
        "charged once"
    );
    assert!(processor.calls_of(Op::ConfirmIntent).is_empty());
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "succeeded");
    let succeeded = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "off_session_payment.succeeded")
        .count();
    assert_eq!(succeeded, 1, "succeeded once: {p:#}");
    flint_testkit::poll_until(
        Duration::from_secs(10),
        "the replica to hold the result",
        || async {
            let status: Option<String> = redis::cmd("HGET")
                .arg(format!("flint:{{charges}}:pay:{id}"))
                .arg("s")
                .query_async(&mut conn(&replica).await)
                .await
                .unwrap();
            (status.as_deref() == Some("succeeded")).then_some(())
        },
    )
    .await;
}
