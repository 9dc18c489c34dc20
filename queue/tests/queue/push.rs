use flint_queue::{NewJob, Pushed, QueueError};

use crate::harness::*;

pub async fn pushing_an_id_twice_makes_one_job_and_says_so(env: Env) {
    let queue = env.queue(env.config("idem")).await;
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

pub async fn jobs_without_an_id_get_a_fresh_one(env: Env) {
    let queue = env.queue(env.config("anon")).await;
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

pub async fn invalid_ids_are_refused_and_push_nothing(env: Env) {
    let queue = env.queue(env.config("badid")).await;
    for bad in ["", "has space", &"x".repeat(201)] {
        let err = queue
            .push(NewJob::new(Job { n: 1, work_ms: 0 }).with_id(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, QueueError::InvalidId(_)), "{bad:?}: {err}");
    }
    assert_eq!(queue.stats().await.unwrap().ready, 0);
}

pub async fn a_finished_job_id_can_be_pushed_again(env: Env) {
    let queue = env.queue(env.config("again")).await;
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
