use std::time::Duration;

use flint_queue::keys::Keys;
use flint_testkit::poll_until;

use crate::harness::*;

pub async fn every_pushed_job_runs_once_and_nothing_of_it_stays_in_redis(env: Env) {
    let queue = env.queue(env.config("drain")).await;
    let jobs: Vec<_> = (0..500).map(job).collect();
    queue.push_batch(jobs).await.unwrap();
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 16);
    poll_until(Duration::from_secs(30), "500 jobs to run", || async {
        (runs.distinct() == 500).then_some(())
    })
    .await;
    poll_until(Duration::from_secs(10), "the queue to be empty", || async {
        let s = queue.stats().await.unwrap();
        (s.ready + s.leased + s.delayed == 0).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.total(), 500, "no job ran twice");
    // Only the (empty) stream itself remains: no per-job key, no leftover id.
    let stream = Keys::new(&queue.config().name).stream;
    assert_eq!(env.keys().await, vec![stream.clone()]);
    let mut conn = env.conn().await;
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0);
}

pub async fn two_workers_share_a_queue_without_running_a_job_twice(env: Env) {
    let queue = env.queue(env.config("shared")).await;
    queue
        .push_batch((0..1000).map(job).collect())
        .await
        .unwrap();
    let runs = Runs::new();
    let a = TestWorker::start(&queue, &runs, 8);
    let b = TestWorker::start(&queue, &runs, 8);
    poll_until(Duration::from_secs(30), "1000 jobs to run", || async {
        (runs.distinct() == 1000).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
    assert_eq!(runs.total(), 1000);
}

pub async fn an_idle_worker_blocks_on_redis_and_starts_a_pushed_job_at_once(env: Env) {
    // A 30 s blocking read: a job that starts within 2 s was delivered by the read waking up,
    // not by a poll interval.
    let config = env.config("idle").with_block(Duration::from_secs(30));
    let queue = env.queue(config).await;
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 4);
    // A first job proves the worker is up; afterwards it is idle in its 30 s blocking read.
    queue.push(job(100)).await.unwrap();
    poll_until(Duration::from_secs(5), "the first job", || async {
        runs.first_run(100)
    })
    .await;
    for n in 0..5 {
        let pushed = std::time::Instant::now();
        queue.push(job(n)).await.unwrap();
        let started = poll_until(
            Duration::from_secs(2),
            "the pushed job to start",
            || async { runs.first_run(n) },
        )
        .await;
        assert!(started.duration_since(pushed) < Duration::from_secs(2));
    }
    worker.stop().await;
}

pub async fn a_worker_that_stops_gives_back_what_it_did_not_start(env: Env) {
    let queue = env.queue(env.config("handback").with_batch(50)).await;
    let slow: Vec<_> = (0..60)
        .map(|n| flint_queue::NewJob::new(Job { n, work_ms: 300 }).with_id(format!("job-{n}")))
        .collect();
    queue.push_batch(slow).await.unwrap();
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 2);
    poll_until(
        Duration::from_secs(10),
        "the first jobs to start",
        || async { (runs.distinct() >= 2).then_some(()) },
    )
    .await;
    worker.stop().await;
    let started = runs.distinct();
    assert!(started < 60);
    // Unstarted jobs are ready again right away (not waiting out a lease).
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.leased, 0, "{stats:?}");
    assert_eq!(stats.ready as usize, 60 - started, "{stats:?}");
}

pub async fn consumers_of_exited_workers_are_removed_from_the_group(env: Env) {
    let config = env
        .config("prune")
        .with_consumer_idle_limit(Duration::from_millis(300));
    let queue = env.queue(config).await;
    let stream = Keys::new(&queue.config().name).stream;
    let mut conn = env.conn().await;
    // Ten processes that came and went: consumers holding nothing.
    for i in 0..10 {
        let () = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(&stream)
            .arg("workers")
            .arg(format!("gone-{i}"))
            .query_async(&mut conn)
            .await
            .map(|_: i64| ())
            .unwrap();
    }
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 1);
    let names = poll_until(
        Duration::from_secs(10),
        "the exited consumers to be removed",
        || async {
            let mut conn = env.conn().await;
            let consumers: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&stream)
                .arg("workers")
                .query_async(&mut conn)
                .await
                .ok()?;
            let names: Vec<String> = consumers
                .iter()
                .filter_map(|c| match c.get(1) {
                    Some(redis::Value::BulkString(b)) => {
                        Some(String::from_utf8_lossy(b).into_owned())
                    }
                    _ => None,
                })
                .collect();
            (!names.iter().any(|n| n.starts_with("gone-"))).then_some(names)
        },
    )
    .await;
    // The live worker's consumer may be pruned too while it holds nothing (Redis 7.0 counts
    // idle time from the last delivery); its next read recreates it, as this job shows.
    assert!(
        names.len() <= 1,
        "only the live worker may remain: {names:?}"
    );
    queue.push(job(1)).await.unwrap();
    poll_until(
        Duration::from_secs(5),
        "the live worker to keep working",
        || async { runs.first_run(1) },
    )
    .await;
    worker.stop().await;
}

pub async fn a_queue_in_another_queues_slot_runs_its_jobs_with_keys_only_in_that_slot(env: Env) {
    let (host_name, guest_name) = (env.name("host"), env.name("guest"));
    let host = env.queue(config(&host_name)).await;
    let guest = env.queue(config(&guest_name).in_slot_of(&host_name)).await;
    host.push(job(1)).await.unwrap();
    guest.push_batch((10..60).map(job).collect()).await.unwrap();
    let runs = Runs::new();
    let worker = TestWorker::start(&guest, &runs, 8);
    poll_until(
        Duration::from_secs(30),
        "the guest's 50 jobs to run",
        || async { (runs.distinct() == 50).then_some(()) },
    )
    .await;
    worker.stop().await;
    assert_eq!(runs.count(1), 0, "the host's job is not the guest's");
    assert_eq!(host.stats().await.unwrap().ready, 1);
    let keys = env.keys().await;
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("flint:{{{host_name}}}:"))),
        "{keys:?}"
    );
    assert!(
        keys.contains(&Keys::in_slot(&host_name, &guest_name).stream),
        "{keys:?}"
    );
}
