use std::time::Duration;

use flint_queue::NewJob;
use flint_testkit::poll_until;
use flint_testkit::redis::{Persistence, RedisServer};

use crate::harness::*;

#[tokio::test]
async fn a_long_job_keeps_its_lease_while_its_worker_lives() {
    let redis = RedisServer::start();
    // Lease 600 ms, job 2.5 s: without renewal another worker would take it over.
    let config = config("long").with_lease(Duration::from_millis(600));
    let queue = queue(&redis, config).await;
    let runs = Runs::new();
    let a = TestWorker::start(&queue, &runs, 1);
    let b = TestWorker::start(&queue, &runs, 1);
    queue
        .push(
            NewJob::new(Job {
                n: 1,
                work_ms: 2500,
            })
            .with_id("long"),
        )
        .await
        .unwrap();
    poll_until(
        Duration::from_secs(10),
        "the long job to finish",
        || async {
            let s = queue.stats().await.unwrap();
            (runs.count(1) >= 1 && s.leased == 0 && s.ready == 0).then_some(())
        },
    )
    .await;
    a.stop().await;
    b.stop().await;
    assert_eq!(
        runs.count(1),
        1,
        "the job was taken over while its worker was alive"
    );
}

#[tokio::test]
async fn jobs_of_a_worker_that_vanished_run_elsewhere_after_the_lease() {
    let redis = RedisServer::start();
    let config = config("vanish").with_lease(Duration::from_millis(1000));
    let queue = queue(&redis, config).await;
    queue
        .push_batch(
            (0..20)
                .map(|n| NewJob::new(Job { n, work_ms: 3000 }).with_id(format!("v{n}")))
                .collect(),
        )
        .await
        .unwrap();
    // A worker on its own runtime, which is then torn down without any shutdown: its leases
    // stay in Redis exactly as after a crash. (The SIGKILL test of real processes is in the
    // root package's tests.)
    let runs = Runs::new();
    let (q, doomed_runs) = (queue.clone(), runs.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let worker = TestWorker::start(&q, &doomed_runs, 20);
            poll_until(
                Duration::from_secs(10),
                "the doomed worker to lease all jobs",
                || async { (doomed_runs.distinct() == 20).then_some(()) },
            )
            .await;
            // Dropping the handle would stop the worker gracefully; a crash does not.
            std::mem::forget(worker);
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
    // The runtime is gone with the thread; nothing renews or acknowledges those leases.
    let survivor_runs = Runs::new();
    let fast: Vec<_> = (0..20)
        .map(|n| NewJob::new(Job { n, work_ms: 0 }).with_id(format!("v{n}")))
        .collect();
    assert!(
        queue
            .push_batch(fast)
            .await
            .unwrap()
            .iter()
            .all(|(_, p)| *p == flint_queue::Pushed::Duplicate)
    );
    let survivor = TestWorker::start(&queue, &survivor_runs, 20);
    poll_until(
        Duration::from_secs(15),
        "the survivor to run all 20 jobs",
        || async { (survivor_runs.distinct() == 20).then_some(()) },
    )
    .await;
    survivor.stop().await;
}

#[tokio::test]
async fn workers_ride_out_a_redis_restart_and_every_kept_job_completes() {
    let mut redis = RedisServer::start_with(Persistence::Aof);
    let queue = queue(&redis, config("restart")).await;
    let jobs: Vec<_> = (0..3000)
        .map(|n| NewJob::new(Job { n, work_ms: 1 }).with_id(format!("r{n}")))
        .collect();
    queue.push_batch(jobs).await.unwrap();
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 8);
    poll_until(
        Duration::from_secs(30),
        "the drain to be under way",
        || async { (runs.distinct() >= 300).then_some(()) },
    )
    .await;
    redis.restart();
    poll_until(
        Duration::from_secs(90),
        "every job to complete after the restart",
        || async {
            let s = queue.stats().await.ok()?;
            (runs.distinct() == 3000 && s.ready + s.leased + s.delayed == 0).then_some(())
        },
    )
    .await;
    assert!(
        worker.is_running(),
        "the worker must not exit on a Redis restart"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_started_while_redis_is_down_waits_and_then_works() {
    let mut redis = RedisServer::start_with(Persistence::Aof);
    let queue = queue(&redis, config("late")).await;
    queue.push_batch((0..10).map(job).collect()).await.unwrap();
    redis.kill();
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 2);
    redis.start_again();
    poll_until(
        Duration::from_secs(30),
        "the jobs to run once redis is back",
        || async { (runs.distinct() == 10).then_some(()) },
    )
    .await;
    assert!(worker.is_running());
    worker.stop().await;
}
