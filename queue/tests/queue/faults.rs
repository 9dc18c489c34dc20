use std::time::{Duration, Instant};

use flint_queue::keys::Keys;
use flint_queue::{NewJob, Queue, RedisTarget};
use flint_testkit::cluster::RedisCluster;
use flint_testkit::poll_until;
use flint_testkit::redis::{Persistence, RedisServer};

use crate::harness::*;

/// A queue on a server the test kills or restarts, by url (as a standalone deployment
/// connects).
async fn standalone_queue(redis: &RedisServer, name: &str) -> Queue {
    Queue::connect(&redis.url(), config(name))
        .await
        .expect("queue connects")
}

pub async fn a_long_job_keeps_its_lease_while_its_worker_lives(env: Env) {
    // Lease 600 ms, job 2.5 s: without renewal another worker would take it over.
    let config = env.config("long").with_lease(Duration::from_millis(600));
    let queue = env.queue(config).await;
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

pub async fn jobs_of_a_worker_that_vanished_run_elsewhere_after_the_lease(env: Env) {
    let config = env.config("vanish").with_lease(Duration::from_millis(1000));
    let queue = env.queue(config).await;
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
    let queue = standalone_queue(&redis, "restart").await;
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
    let queue = standalone_queue(&redis, "late").await;
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

/// The cluster's counterpart of a restart: the primary serving the queue's slot is SIGKILLed
/// while a worker drains the queue, and its replica takes over. Every job the replica had
/// before the kill runs, the worker never exits, and jobs pushed after the failover run too.
/// At least once: a job in flight at the kill whose lease or acknowledgement had not reached
/// the replica runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_failover_of_their_queues_primary_on_a_cluster() {
    const N: u64 = 2000;
    const LATER: u64 = 100;
    let mut cluster = RedisCluster::start();
    let target = RedisTarget::Cluster(cluster.nodes());
    let queue = Queue::connect_to(&target, config("failover"))
        .await
        .expect("queue connects");
    let primary = cluster.primary_for_key(&Keys::new("failover").stream);
    let jobs = |range: std::ops::Range<u64>| -> Vec<_> {
        range
            .map(|n| NewJob::new(Job { n, work_ms: 1 }).with_id(format!("f{n}")))
            .collect()
    };
    queue.push_batch(jobs(0..N)).await.unwrap();
    // A write of the test's own on that primary, then WAIT: the replica has acknowledged
    // everything written before it, every push included.
    // Its reply timeout is above WAIT's own 5 s (the default would cut a slow WAIT short).
    let mut direct = redis::Client::open(primary.as_str())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg("{failover}:pushed")
        .arg(1)
        .query_async(&mut direct)
        .await
        .unwrap();
    let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(replicas, 1, "the replica has every push");

    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 8);
    poll_until(
        Duration::from_secs(30),
        "the drain to be under way",
        || async { (runs.distinct() >= 200).then_some(()) },
    )
    .await;
    let killed = Instant::now();
    let promoted = tokio::task::block_in_place(|| cluster.failover_to_replica_of(&primary));
    eprintln!("{promoted} promoted {:?} after the kill", killed.elapsed());
    poll_until(
        Duration::from_secs(30),
        "a push through the new primary",
        || async { queue.push_batch(jobs(N..N + LATER)).await.ok() },
    )
    .await;
    poll_until(
        Duration::from_secs(60),
        "every job to complete after the failover",
        || async {
            let s = queue.stats().await.ok()?;
            (runs.distinct() as u64 == N + LATER && s.ready + s.leased + s.delayed == 0)
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "drained {:?} after the kill; {} runs of {} jobs",
        killed.elapsed(),
        runs.total(),
        N + LATER
    );
    assert!(
        worker.is_running(),
        "the worker must not exit on a failover"
    );
    worker.stop().await;
}
