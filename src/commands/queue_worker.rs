//! `flint bench queue-worker` (hidden): one worker process on a queue, for `flint bench queue`
//! and the crash tests. Its jobs do nothing but count themselves: every run adds to
//! `flint:bench:{queue}:done` (batched every 20 ms), and with `--record` each run is also
//! written to `flint:bench:{queue}:runs` before the job "works", so a test can see runs that a
//! SIGKILL interrupted. Prints `worker ready` once it serves, stops on SIGTERM.
//!
//! The apalis-redis systems are built only with the `bench-baselines` feature (on by default,
//! left out of the container image); without it they are refused with exit code 2.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::*;
use flint_queue::{Outcome, Queue, QueueConfig};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::cli::{QueueSystem, QueueWorkerArgs};
use crate::client::Failure;

/// The benchmark's job: its number, and when it was pushed (µs since the epoch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchJob {
    pub n: u64,
    pub pushed_at_us: u64,
    /// Milliseconds the job "works" (sleeps).
    #[serde(default)]
    pub work_ms: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub fn done_key(queue: &str) -> String {
    format!("flint:bench:{{{queue}}}:done")
}

pub fn runs_key(queue: &str) -> String {
    format!("flint:bench:{{{queue}}}:runs")
}

#[derive(Clone)]
struct State {
    done: Arc<AtomicU64>,
    record: Option<(redis::aio::ConnectionManager, String)>,
}

async fn run_job(job: &BenchJob, state: &State) {
    if let Some((conn, key)) = &state.record {
        let mut conn = conn.clone();
        let _: Result<i64, _> = conn.hincr(key, job.n, 1).await;
    }
    if job.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.work_ms)).await;
    }
    state.done.fetch_add(1, Ordering::Relaxed);
}

async fn flint_job(job: BenchJob, state: Data<State>) -> Outcome {
    run_job(&job, &state).await;
    Outcome::Complete
}

#[cfg(feature = "bench-baselines")]
async fn apalis_job(job: BenchJob, state: Data<State>) {
    run_job(&job, &state).await;
}

/// Whether `system` is built into this binary: apalis-redis only with `bench-baselines`.
pub fn is_built(system: QueueSystem) -> bool {
    system == QueueSystem::Flint || cfg!(feature = "bench-baselines")
}

/// The usage error (exit code 2) for a system that is not built into this binary.
pub fn not_built(systems: &[QueueSystem]) -> Failure {
    let labels: Vec<&str> = systems.iter().map(|s| s.label()).collect();
    Failure::usage(format!(
        "{}: not built into this binary (it was built without the `bench-baselines` feature, \
         as the container image is); build with default features for the apalis-redis baselines",
        labels.join(", ")
    ))
}

/// apalis-redis 1.0.0 on `queue`: its default configuration, or `lock_tasks(false)`.
#[cfg(feature = "bench-baselines")]
pub async fn apalis_storage(
    system: QueueSystem,
    url: &str,
    queue: &str,
) -> anyhow::Result<apalis_redis::RedisStorage<BenchJob>> {
    Ok(
        apalis_redis::RedisStorage::new(apalis_redis::connect(url).await?).with_config(
            apalis_redis::Config::default()
                .queue(queue)
                .lock_tasks(system == QueueSystem::ApalisRedisDefault),
        ),
    )
}

pub async fn run(args: &QueueWorkerArgs) -> anyhow::Result<()> {
    if !is_built(args.system) {
        return Err(not_built(&[args.system]).into());
    }
    let client = redis::Client::open(args.redis_url.as_str())?;
    let conn = client.get_connection_manager().await?;
    let state = State {
        done: Arc::default(),
        record: args.record.then(|| (conn.clone(), runs_key(&args.queue))),
    };
    let reporter = tokio::spawn(report_done(
        conn,
        done_key(&args.queue),
        Arc::clone(&state.done),
    ));
    let name = format!(
        "bench-{}-{}",
        std::process::id(),
        flint_shared::ids::random_token(6)
    );
    let stop = super::shutdown_signal();
    match args.system {
        QueueSystem::Flint => {
            let config =
                QueueConfig::new(&args.queue).with_lease(Duration::from_millis(args.lease_ms));
            let queue = Queue::connect(&args.redis_url, config).await?;
            let worker = WorkerBuilder::new(name)
                .backend(queue.backend::<BenchJob>())
                .data(state)
                .concurrency(args.concurrency)
                .build(flint_job);
            println!("worker ready");
            worker
                .run_until(async {
                    stop.await;
                    Ok::<(), std::io::Error>(())
                })
                .await?;
        }
        #[cfg(feature = "bench-baselines")]
        QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
            let storage = apalis_storage(args.system, &args.redis_url, &args.queue).await?;
            let backend = storage.poll_with_interval(Duration::from_millis(100));
            let worker = WorkerBuilder::new(name)
                .backend(backend)
                .data(state)
                .concurrency(args.concurrency)
                .build(apalis_job);
            println!("worker ready");
            worker
                .run_until(async {
                    stop.await;
                    Ok::<(), std::io::Error>(())
                })
                .await?;
        }
        #[cfg(not(feature = "bench-baselines"))]
        QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
            unreachable!("refused above: not built into this binary")
        }
    }
    reporter.abort();
    Ok(())
}

/// Adds this process's completed runs to the shared counter every 20 ms.
async fn report_done(mut conn: redis::aio::ConnectionManager, key: String, done: Arc<AtomicU64>) {
    let mut reported = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = done.load(Ordering::Relaxed);
        if now > reported {
            let result: Result<i64, _> = conn.incr(&key, now - reported).await;
            if result.is_ok() {
                reported = now;
            }
        }
    }
}
