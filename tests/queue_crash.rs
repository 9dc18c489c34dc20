//! Crash recovery with real processes: queue workers (`flint bench queue-worker`) killed with
//! SIGKILL mid-drain; the survivors run the dead worker's jobs once its lease has run out.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flint_queue::{NewJob, Queue, QueueConfig};
use flint_testkit::redis::RedisServer;
use flint_testkit::{poll_until, process};
use redis::AsyncCommands;

const FLINT: &str = env!("CARGO_BIN_EXE_flint");
const LEASE_MS: u64 = 2000;

struct Worker(Child);

impl Worker {
    fn start(redis: &RedisServer, queue: &str) -> Worker {
        let mut child = Command::new(FLINT)
            .args([
                "bench",
                "queue-worker",
                "--system",
                "flint",
                "--record",
                "--concurrency",
                "16",
            ])
            .args([
                "--redis-url",
                &redis.url(),
                "--queue",
                queue,
                "--lease-ms",
                &LEASE_MS.to_string(),
            ])
            .env("FLINT__LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "worker ready");
        Worker(child)
    }

    fn kill9(&mut self) {
        process::signal(&self.0, "KILL");
        let _ = self.0.wait();
    }

    fn terminate(&mut self) {
        process::terminate(&mut self.0, Duration::from_secs(30));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn runs(redis: &RedisServer, queue: &str) -> HashMap<u64, u64> {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    conn.hgetall(format!("flint:bench:{{{queue}}}:runs"))
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_of_a_worker_killed_with_sigkill_run_on_another_within_the_lease() {
    const JOBS: u64 = 400;
    let redis = RedisServer::start();
    let queue = Queue::connect(&redis.url(), QueueConfig::new("crash"))
        .await
        .unwrap();
    let jobs = (0..JOBS)
        .map(|n| {
            NewJob::new(serde_json::json!({"n": n, "pushed_at_us": 0, "work_ms": 100}))
                .with_id(format!("job-{n}"))
        })
        .collect();
    queue.push_batch(jobs).await.unwrap();

    let mut doomed = Worker::start(&redis, "crash");
    let mut survivor = Worker::start(&redis, "crash");
    poll_until(
        Duration::from_secs(20),
        "the drain to be under way",
        || async { (runs(&redis, "crash").await.len() >= 60).then_some(()) },
    )
    .await;
    let leased_at_kill = queue.stats().await.unwrap().leased;
    doomed.kill9();
    let killed = Instant::now();
    // A replacement process starts at once: its identity is new, so nothing refuses it.
    let mut replacement = Worker::start(&redis, "crash");

    poll_until(Duration::from_secs(60), "every job to complete", || async {
        let s = queue.stats().await.unwrap();
        (s.ready + s.leased + s.delayed == 0 && runs(&redis, "crash").await.len() as u64 == JOBS)
            .then_some(())
    })
    .await;
    let recovered_in = killed.elapsed();
    assert!(
        recovered_in < Duration::from_millis(LEASE_MS) + Duration::from_secs(8),
        "the killed worker's jobs took {recovered_in:?} to finish elsewhere (lease {LEASE_MS} ms)"
    );

    let runs = runs(&redis, "crash").await;
    assert_eq!(runs.len() as u64, JOBS, "every job ran");
    let repeated = runs.values().filter(|r| **r > 1).count() as u64;
    assert!(
        repeated <= leased_at_kill,
        "{repeated} jobs ran twice, but only {leased_at_kill} were leased at the kill"
    );
    assert!(
        runs.values().all(|r| *r <= 2),
        "no job ran more than twice: {runs:?}"
    );
    assert!(
        repeated >= 1,
        "the killed worker was running jobs, so some ran again elsewhere"
    );
    eprintln!(
        "killed worker's jobs finished elsewhere {recovered_in:?} after the kill; {repeated} ran twice"
    );

    survivor.terminate();
    replacement.terminate();
    assert_eq!(queue.stats().await.unwrap().leased, 0);
}
