//! Leases under stalls and outcomes under races: a worker whose runtime is frozen (as a stalled
//! or stopped process is) loses its lease, the job runs elsewhere, and nothing the stalled
//! worker reports afterwards touches it; a job that keeps losing its lease is dead-lettered;
//! a job asked to run again while it completes runs again with its own payload.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use apalis::prelude::*;
use flint_queue::{LostLeases, Outcome, Queue, QueueConfig, RedisTarget};
use flint_testkit::poll_until;
use tokio::sync::{Notify, oneshot};

use crate::harness::*;

/// A worker on its own thread and single-threaded runtime whose handler blocks that thread
/// until released: its fetch, renew and ack tasks freeze with it, as in a stopped process.
struct FrozenWorker {
    release: std_mpsc::Sender<()>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FrozenWorker {
    fn start(
        target: &RedisTarget,
        config: QueueConfig,
        seen: Arc<Mutex<Vec<u32>>>,
    ) -> FrozenWorker {
        let (release, gate) = std_mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let (stop, stopped) = oneshot::channel::<()>();
        let target = target.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let queue = Queue::connect_to(&target, config).await.unwrap();
                let handler = move |_job: Job, lost: LostLeases| {
                    let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
                    async move {
                        seen.lock().unwrap().push(lost.0);
                        // Blocks the runtime's only thread: nothing of this worker runs.
                        let _ = gate.lock().unwrap().recv();
                        Outcome::Complete
                    }
                };
                let worker = WorkerBuilder::new("frozen")
                    .backend(queue.backend::<Job>())
                    .concurrency(1)
                    .build(handler);
                worker
                    .run_until(async {
                        let _ = stopped.await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await
                    .unwrap();
            });
        });
        FrozenWorker {
            release,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Lets the frozen handlers complete.
    fn thaw(&self) {
        for _ in 0..10 {
            let _ = self.release.send(());
        }
    }

    /// Thaws the worker and stops it.
    fn finish(mut self) {
        self.thaw();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn lease_config(name: &str) -> QueueConfig {
    QueueConfig::new(name)
        .with_lease(Duration::from_secs(1))
        .with_block(Duration::from_millis(200))
}

pub async fn a_stalled_worker_loses_its_lease_and_its_late_outcome_changes_nothing(env: Env) {
    let config = lease_config(&env.name("stall"));
    let queue = env.queue(config.clone()).await;
    let frozen_seen = Arc::new(Mutex::new(Vec::new()));
    let frozen = FrozenWorker::start(env.target(), config.clone(), Arc::clone(&frozen_seen));
    queue.push(job(1)).await.unwrap();
    poll_until(Duration::from_secs(10), "the first delivery", || async {
        (!frozen_seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;

    // A live worker takes the job over after the lease, sees the lost delivery, and schedules
    // the job for later.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ran = Arc::new(Notify::new());
    let (s, r) = (Arc::clone(&seen), Arc::clone(&ran));
    let handler = move |_job: Job, lost: LostLeases| {
        let (s, r) = (Arc::clone(&s), Arc::clone(&r));
        async move {
            s.lock().unwrap().push(lost.0);
            r.notify_one();
            Outcome::RetryAt(SystemTime::now() + Duration::from_secs(3600))
        }
    };
    let live = WorkerBuilder::new("live")
        .backend(queue.backend::<Job>())
        .concurrency(1)
        .build(handler);
    let (stop_live, live_stopped) = oneshot::channel::<()>();
    let live = tokio::spawn(async move {
        live.run_until(async {
            let _ = live_stopped.await;
            Ok::<(), std::io::Error>(())
        })
        .await
    });
    ran.notified().await;
    assert_eq!(*seen.lock().unwrap(), [1], "one delivery lost its lease");
    poll_until(
        Duration::from_secs(5),
        "the retry to be scheduled",
        || async { (queue.stats().await.unwrap().delayed == 1).then_some(()) },
    )
    .await;

    // The stalled worker wakes up and reports its run complete: that entry is not its any more,
    // and the outcome is ignored (counted as stale).
    let stale = format!(
        r#"flint_queue_stale_outcomes_total{{queue="{}"}}"#,
        queue.config().name
    );
    let before = counter(&stale);
    frozen.thaw();
    poll_until(
        Duration::from_secs(10),
        "the late outcome to be fenced",
        || async { (counter(&stale) > before).then_some(()) },
    )
    .await;
    frozen.finish();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.delayed, stats.dead),
        (0, 0, 1, 0),
        "the job is still scheduled"
    );
    let ids: Option<String> = redis::cmd("HGET")
        .arg(flint_queue::keys::Keys::new(&queue.config().name).ids)
        .arg("job-1")
        .query_async(&mut env.conn().await)
        .await
        .unwrap();
    assert_eq!(ids.as_deref(), Some("1"), "the job is still live");
    let _ = stop_live.send(());
    live.await.unwrap().unwrap();
}

pub async fn a_job_that_keeps_losing_its_lease_is_dead_lettered_with_the_reason(env: Env) {
    let config = lease_config(&env.name("poison")).with_max_lost_leases(1);
    let queue = env.queue(config.clone()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Each delivery freezes the worker that takes it; a third worker finds the job's lease
    // lost twice in a row, one more than allowed.
    let workers: Vec<FrozenWorker> = (0..3)
        .map(|_| FrozenWorker::start(env.target(), config.clone(), Arc::clone(&seen)))
        .collect();
    queue.push(job(1)).await.unwrap();
    let dead = poll_until(Duration::from_secs(20), "a dead letter", || async {
        queue.dead_letters(10).await.unwrap().into_iter().next()
    })
    .await;
    assert_eq!(dead.job_id, "job-1");
    assert!(
        dead.reason.contains("lease ran out 2 times in a row"),
        "{}",
        dead.reason
    );
    assert_eq!(*seen.lock().unwrap(), [0, 1]);
    for w in workers {
        w.finish();
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.delayed), (0, 0, 0));
}

pub async fn a_job_asked_to_run_again_while_it_completes_runs_again_with_its_payload(env: Env) {
    let queue = env.queue(env.config("again-complete")).await;
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (s, r, n) = (
        Arc::clone(&started),
        Arc::clone(&release),
        Arc::clone(&runs),
    );
    // The first run completes only once the job has been asked to run again.
    let handler = move |job: Job| {
        let (s, r, n) = (Arc::clone(&s), Arc::clone(&r), Arc::clone(&n));
        async move {
            let first = {
                let mut runs = n.lock().unwrap();
                runs.push(job.n);
                runs.len() == 1
            };
            if first {
                s.notify_one();
                r.notified().await;
            }
            Outcome::Complete
        }
    };
    let worker = WorkerBuilder::new("again")
        .backend(queue.backend::<Job>())
        .concurrency(2)
        .build(handler);
    tokio::spawn(async move { worker.run().await });
    queue.push(job(7)).await.unwrap();
    started.notified().await;
    assert_eq!(run_now(&env, &queue, "job-7").await, "marked");
    release.notify_one();
    poll_until(Duration::from_secs(10), "a second run", || async {
        (runs.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        *runs.lock().unwrap(),
        [7, 7],
        "the same job, decoded both times"
    );
    poll_until(Duration::from_secs(5), "the queue to empty", || async {
        let s = queue.stats().await.unwrap();
        (s.ready + s.leased + s.delayed == 0).then_some(s)
    })
    .await;
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
}

pub async fn a_run_whose_job_its_own_worker_took_over_cannot_acknowledge_the_new_run(env: Env) {
    // Renewals far apart: the worker's own reclaim takes the job over after the lease, while
    // its first run is still going, and fetches it again.
    let config =
        lease_config(&env.name("self-takeover")).with_renew_every(Duration::from_secs(3600));
    let queue = env.queue(config).await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let (release_first, release_second) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (n, r1, r2) = (
        Arc::clone(&runs),
        Arc::clone(&release_first),
        Arc::clone(&release_second),
    );
    let handler = move |_job: Job, lost: LostLeases| {
        let (n, r1, r2) = (Arc::clone(&n), Arc::clone(&r1), Arc::clone(&r2));
        async move {
            let run = {
                let mut runs = n.lock().unwrap();
                runs.push(lost.0);
                runs.len()
            };
            if run == 1 {
                // The first run outlives its lease, then reports done.
                r1.notified().await;
                Outcome::Complete
            } else {
                // The run that holds the job now schedules it for later, once the first run's
                // outcome has come and gone.
                r2.notified().await;
                Outcome::RetryAt(SystemTime::now() + Duration::from_secs(3600))
            }
        }
    };
    let worker = WorkerBuilder::new("self")
        .backend(queue.backend::<Job>())
        .concurrency(2)
        .build(handler);
    tokio::spawn(async move { worker.run().await });
    queue.push(job(1)).await.unwrap();
    poll_until(Duration::from_secs(10), "the second run", || async {
        (runs.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    // Both runs are in flight in one worker. The first finishes: its "done" is for the entry
    // it was given, which is no longer held, and must not finish the job the second run holds.
    let stale = format!(
        r#"flint_queue_stale_outcomes_total{{queue="{}"}}"#,
        queue.config().name
    );
    let before = counter(&stale);
    release_first.notify_one();
    poll_until(
        Duration::from_secs(10),
        "the first run's outcome fenced",
        || async { (counter(&stale) > before).then_some(()) },
    )
    .await;
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.leased, stats.delayed),
        (1, 0),
        "the second run still holds the job"
    );
    release_second.notify_one();
    poll_until(Duration::from_secs(5), "the retry scheduled", || async {
        (queue.stats().await.unwrap().delayed == 1).then_some(())
    })
    .await;
    assert_eq!(*runs.lock().unwrap(), [0, 1]);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.delayed),
        (0, 0, 1),
        "the job is scheduled as the run that held it said"
    );
}
