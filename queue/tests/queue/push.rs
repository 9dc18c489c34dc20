use flint_queue::{NewJob, Pushed, QueueError};
use flint_testkit::redis::RedisServer;

use crate::harness::*;

#[tokio::test]
async fn pushing_an_id_twice_makes_one_job_and_says_so() {
    let redis = RedisServer::start();
    let queue = queue(&redis, config("idem")).await;
    assert_eq!(
        queue.push(job(1)).await.unwrap(),
        ("job-1".to_owned(), Pushed::Enqueued)
    );
    assert_eq!(
        queue.push(job(1)).await.unwrap(),
        ("job-1".to_owned(), Pushed::Duplicate)
    );
    let batch = queue
        .push_batch(vec![job(1), job(2), job(2), job(3)])
        .await
        .unwrap();
    let kinds: Vec<Pushed> = batch.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        kinds,
        [
            Pushed::Duplicate,
            Pushed::Enqueued,
            Pushed::Duplicate,
            Pushed::Enqueued
        ]
    );
    assert_eq!(queue.stats().await.unwrap().ready, 3);
}

#[tokio::test]
async fn jobs_without_an_id_get_a_fresh_one() {
    let redis = RedisServer::start();
    let queue = queue(&redis, config("anon")).await;
    let (a, pa) = queue
        .push(NewJob::new(Job { n: 1, work_ms: 0 }))
        .await
        .unwrap();
    let (b, pb) = queue
        .push(NewJob::new(Job { n: 1, work_ms: 0 }))
        .await
        .unwrap();
    assert_ne!(a, b);
    assert_eq!((pa, pb), (Pushed::Enqueued, Pushed::Enqueued));
}

#[tokio::test]
async fn invalid_ids_are_refused_and_push_nothing() {
    let redis = RedisServer::start();
    let queue = queue(&redis, config("badid")).await;
    for bad in ["", "has space", &"x".repeat(201)] {
        let err = queue
            .push(NewJob::new(Job { n: 1, work_ms: 0 }).with_id(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, QueueError::InvalidId(_)), "{bad:?}: {err}");
    }
    assert_eq!(queue.stats().await.unwrap().ready, 0);
}

#[tokio::test]
async fn a_finished_job_id_can_be_pushed_again() {
    let redis = RedisServer::start();
    let queue = queue(&redis, config("again")).await;
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 1);
    queue.push(job(7)).await.unwrap();
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the first run",
        || async { (runs.count(7) == 1).then_some(()) },
    )
    .await;
    flint_testkit::poll_until(std::time::Duration::from_secs(10), "the ack", || async {
        (queue.stats().await.unwrap().leased == 0).then_some(())
    })
    .await;
    assert_eq!(
        queue.push(job(7)).await.unwrap().1,
        Pushed::Enqueued,
        "dedup covers live jobs only"
    );
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the second run",
        || async { (runs.count(7) == 2).then_some(()) },
    )
    .await;
    worker.stop().await;
}
