use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flint_queue::{NewJob, Outcome};
use flint_testkit::poll_until;

use crate::harness::*;

pub async fn depth_per_state_and_the_oldest_ready_age_are_reported(env: Env) {
    let queue = env.queue(env.config("depth")).await;
    let empty = queue.stats().await.unwrap();
    assert_eq!(
        (
            empty.ready,
            empty.leased,
            empty.delayed,
            empty.dead,
            empty.oldest_ready_age_ms
        ),
        (0, 0, 0, 0, 0)
    );

    queue.push_batch((0..5).map(job).collect()).await.unwrap();
    queue
        .push_batch(
            (10..13)
                .map(|n| job(n).run_at(SystemTime::now() + Duration::from_secs(3600)))
                .collect(),
        )
        .await
        .unwrap();
    let age = poll_until(
        Duration::from_secs(5),
        "the oldest ready job to age",
        || async {
            let s = queue.stats().await.unwrap();
            (s.oldest_ready_age_ms >= 50).then_some(s)
        },
    )
    .await;
    assert_eq!((age.ready, age.leased, age.delayed, age.dead), (5, 0, 3, 0));

    // Two slow jobs leased, one dead-lettered.
    let runs = Runs::scripted(Arc::new(|job, _| {
        Ok(if job.n == 100 {
            Outcome::DeadLetter("x".into())
        } else {
            Outcome::Complete
        })
    }));
    queue
        .push(NewJob::new(Job { n: 100, work_ms: 0 }).with_id("dead-one"))
        .await
        .unwrap();
    let slow = queue.config().clone();
    drop(slow);
    let worker = TestWorker::start(&queue, &runs, 8);
    poll_until(
        Duration::from_secs(10),
        "ready jobs to drain and one to die",
        || async {
            let s = queue.stats().await.unwrap();
            (s.ready == 0 && s.leased == 0 && s.dead == 1 && s.delayed == 3).then_some(())
        },
    )
    .await;
    assert_eq!(queue.stats().await.unwrap().oldest_ready_age_ms, 0);
    worker.stop().await;
}

pub async fn leased_jobs_are_counted_while_they_run(env: Env) {
    let queue = env.queue(env.config("leased")).await;
    let slow: Vec<_> = (0..3)
        .map(|n| NewJob::new(Job { n, work_ms: 1500 }).with_id(format!("s{n}")))
        .collect();
    queue.push_batch(slow).await.unwrap();
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 3);
    let stats = poll_until(Duration::from_secs(5), "three leased jobs", || async {
        let s = queue.stats().await.unwrap();
        (s.leased == 3).then_some(s)
    })
    .await;
    assert_eq!(stats.ready, 0);
    worker.stop().await;
}

pub async fn depth_is_exported_as_prometheus_gauges(env: Env) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let name = env.name("gauges");
    let queue = env.queue(config(&name)).await;
    queue.push_batch((0..4).map(job).collect()).await.unwrap();
    let stats = queue.stats().await.unwrap();
    metrics::with_local_recorder(&recorder, || {
        flint_queue::metrics::record(queue.config(), &stats);
    });
    let text = handle.render();
    assert!(
        text.contains(&format!(
            r#"flint_queue_jobs{{queue="{name}",partition="0",state="ready"}} 4"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"flint_queue_jobs{{queue="{name}",partition="0",state="dead"}} 0"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"flint_queue_oldest_ready_age_seconds{{queue="{name}",partition="0"}}"#
        )),
        "{text}"
    );
}

pub async fn every_key_a_queue_writes_carries_its_hash_tag(env: Env) {
    let name = env.name("tagged");
    let tag = format!("flint:{{{name}}}:");
    let queue = env.queue(config(&name)).await;
    let runs = Runs::scripted(Arc::new(|job, _| {
        Ok(if job.n % 2 == 0 {
            Outcome::DeadLetter("x".into())
        } else {
            Outcome::Complete
        })
    }));
    queue.push_batch((0..10).map(job).collect()).await.unwrap();
    queue
        .push(job(99).run_at(SystemTime::now() + Duration::from_secs(3600)))
        .await
        .unwrap();
    let worker = TestWorker::start(&queue, &runs, 2);
    poll_until(Duration::from_secs(10), "10 runs", || async {
        (runs.distinct() == 10).then_some(())
    })
    .await;
    worker.stop().await;
    let keys = env.keys().await;
    assert!(keys.len() >= 4, "{keys:?}");
    for key in keys {
        assert!(key.starts_with(&tag), "{key}");
    }
}
