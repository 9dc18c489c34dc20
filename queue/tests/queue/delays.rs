use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flint_queue::{NewJob, Outcome};
use flint_testkit::poll_until;

use crate::harness::*;

pub async fn a_delayed_job_does_not_run_before_its_time(env: Env) {
    let queue = env.queue(env.config("later")).await;
    let runs = Runs::new();
    let worker = TestWorker::start(&queue, &runs, 2);
    let due = Instant::now() + Duration::from_millis(800);
    queue
        .push(job(1).run_at(SystemTime::now() + Duration::from_millis(800)))
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap().delayed, 1);
    let ran = poll_until(Duration::from_secs(10), "the delayed job", || async {
        runs.first_run(1)
    })
    .await;
    assert!(ran >= due, "ran {:?} early", due - ran);
    worker.stop().await;
}

pub async fn a_handler_retry_runs_the_job_again_at_the_time_it_asked(env: Env) {
    let queue = env.queue(env.config("retry")).await;
    let runs = Runs::scripted(Arc::new(|_, run| {
        Ok(if run < 3 {
            Outcome::RetryAt(SystemTime::now() + Duration::from_millis(300))
        } else {
            Outcome::Complete
        })
    }));
    let worker = TestWorker::start(&queue, &runs, 2);
    queue.push(job(1)).await.unwrap();
    poll_until(Duration::from_secs(10), "three runs", || async {
        (runs.count(1) == 3).then_some(())
    })
    .await;
    let times = runs.run_times(1);
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(300),
            "{:?}",
            pair[1] - pair[0]
        );
    }
    poll_until(Duration::from_secs(5), "the queue to empty", || async {
        let s = queue.stats().await.unwrap();
        (s.ready + s.leased + s.delayed == 0).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.count(1), 3, "the backend never retries on its own");
}

pub async fn a_retried_job_keeps_its_id_so_pushes_stay_deduplicated(env: Env) {
    let queue = env.queue(env.config("retryid")).await;
    let runs = Runs::scripted(Arc::new(|_, run| {
        Ok(if run == 1 {
            Outcome::RetryAt(SystemTime::now() + Duration::from_secs(60))
        } else {
            Outcome::Complete
        })
    }));
    let worker = TestWorker::start(&queue, &runs, 1);
    queue.push(job(1)).await.unwrap();
    poll_until(
        Duration::from_secs(10),
        "the retry to be scheduled",
        || async { (queue.stats().await.unwrap().delayed == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        queue.push(job(1)).await.unwrap().1,
        flint_queue::Pushed::Duplicate
    );
    worker.stop().await;
}

/// Delays without wedges: 200,000 jobs due at the same instant all drain.
pub async fn two_hundred_thousand_jobs_due_at_once_all_drain(env: Env) {
    const N: u64 = 200_000;
    let queue = env.queue(env.config("herd").with_batch(256)).await;
    // Far enough ahead that all are still waiting when the push ends, then all due at once.
    let at = SystemTime::now() + Duration::from_secs(15);
    let jobs: Vec<_> = (0..N)
        .map(|n| {
            NewJob::new(Job { n, work_ms: 0 })
                .with_id(format!("j{n}"))
                .run_at(at)
        })
        .collect();
    let pushing = std::time::Instant::now();
    queue.push_batch(jobs).await.unwrap();
    eprintln!("pushed {N} delayed jobs in {:?}", pushing.elapsed());
    assert_eq!(queue.stats().await.unwrap().delayed, N);
    let runs = Runs::new();
    let workers: Vec<_> = (0..2)
        .map(|_| TestWorker::start(&queue, &runs, 64))
        .collect();
    poll_until(
        Duration::from_secs(240),
        "all 200,000 jobs to run",
        || async { (runs.distinct() as u64 == N).then_some(()) },
    )
    .await;
    for w in workers {
        w.stop().await;
    }
    assert_eq!(runs.total() as u64, N);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.delayed), (0, 0, 0));
}

pub async fn a_live_job_marked_again_runs_once_more_at_once_whatever_it_reported(env: Env) {
    let queue = env.queue(env.config("again")).await;
    // The first run asks for a retry in an hour; the mark overrides it.
    let runs = Runs::scripted(Arc::new(|_, run| {
        Ok(if run == 1 {
            Outcome::RetryAt(SystemTime::now() + Duration::from_secs(3600))
        } else {
            Outcome::Complete
        })
    }));
    let worker = TestWorker::start(&queue, &runs, 2);
    let mut slow = job(1);
    slow.args.work_ms = 400;
    queue.push(slow).await.unwrap();
    poll_until(
        Duration::from_secs(10),
        "the first run to start",
        || async { (runs.count(1) == 1).then_some(()) },
    )
    .await;
    // What a payment's resume does to its live job, through the queue's own Lua.
    assert_eq!(run_now(&env, &queue, "job-1").await, "marked");
    poll_until(Duration::from_secs(10), "a second run", || async {
        (runs.count(1) == 2).then_some(())
    })
    .await;
    poll_until(Duration::from_secs(5), "the queue to empty", || async {
        let s = queue.stats().await.unwrap();
        (s.ready + s.leased + s.delayed == 0).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.count(1), 2, "once more, not again and again");
}
