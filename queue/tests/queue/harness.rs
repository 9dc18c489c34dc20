//! A test worker: an apalis worker on a Flint queue whose handler records every run and
//! returns what the test scripted for that job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use flint_queue::{Outcome, Queue, QueueConfig};
use flint_testkit::redis::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Job {
    pub n: u64,
    /// How long the handler works.
    pub work_ms: u64,
}

/// What a handler does with a job on a given run (1-based); default: complete.
pub type Script = Arc<dyn Fn(&Job, usize) -> Result<Outcome, String> + Send + Sync>;

#[derive(Clone)]
pub struct Runs {
    pub runs: Arc<Mutex<HashMap<u64, Vec<Instant>>>>,
    script: Script,
}

impl Runs {
    pub fn new() -> Self {
        Runs::scripted(Arc::new(|_, _| Ok(Outcome::Complete)))
    }

    pub fn scripted(script: Script) -> Self {
        Runs {
            runs: Arc::default(),
            script,
        }
    }

    pub fn count(&self, n: u64) -> usize {
        self.runs.lock().unwrap().get(&n).map_or(0, Vec::len)
    }

    pub fn distinct(&self) -> usize {
        self.runs.lock().unwrap().len()
    }

    pub fn total(&self) -> usize {
        self.runs.lock().unwrap().values().map(Vec::len).sum()
    }

    pub fn first_run(&self, n: u64) -> Option<Instant> {
        self.runs
            .lock()
            .unwrap()
            .get(&n)
            .and_then(|r| r.first().copied())
    }

    pub fn run_times(&self, n: u64) -> Vec<Instant> {
        self.runs
            .lock()
            .unwrap()
            .get(&n)
            .cloned()
            .unwrap_or_default()
    }
}

async fn handle(job: Job, runs: Data<Runs>) -> Result<Outcome, String> {
    let run = {
        let mut all = runs.runs.lock().unwrap();
        let entry = all.entry(job.n).or_default();
        entry.push(Instant::now());
        entry.len()
    };
    if job.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.work_ms)).await;
    }
    (runs.script)(&job, run)
}

pub struct TestWorker {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl TestWorker {
    pub fn start(queue: &Queue, runs: &Runs, concurrency: usize) -> TestWorker {
        let (stop, stopped) = oneshot::channel::<()>();
        let backend = queue.backend::<Job>();
        let worker = WorkerBuilder::new(format!("test-{}", backend.consumer()))
            .backend(backend)
            .data(runs.clone())
            .concurrency(concurrency)
            .build(handle);
        let done = tokio::spawn(async move {
            worker
                .run_until(async {
                    let _ = stopped.await;
                    Ok::<(), std::io::Error>(())
                })
                .await
                .expect("the worker never fails");
        });
        TestWorker {
            stop: Some(stop),
            done,
        }
    }

    /// Asks the worker to stop and waits until it has (in-flight jobs finish, acks flush).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.done)
            .await
            .expect("worker stops")
            .expect("worker task");
    }

    pub fn is_running(&self) -> bool {
        !self.done.is_finished()
    }
}

pub fn config(name: &str) -> QueueConfig {
    QueueConfig::new(name)
        .with_lease(Duration::from_secs(2))
        .with_block(Duration::from_millis(500))
}

pub async fn queue(redis: &RedisServer, config: QueueConfig) -> Queue {
    Queue::connect(&redis.url(), config)
        .await
        .expect("queue connects")
}

pub async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key in the database.
pub async fn keys(redis: &RedisServer) -> Vec<String> {
    let mut conn = redis_conn(redis).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

pub fn job(n: u64) -> flint_queue::NewJob<Job> {
    flint_queue::NewJob::new(Job { n, work_ms: 0 }).with_id(format!("job-{n}"))
}

/// `fq_run_now` from the queue's Lua library, as a user's script calls it (a payment's resume):
/// returns `moved`, `pushed` or `marked`.
pub async fn run_now(redis: &RedisServer, queue: &str, job_id: &str) -> String {
    let keys = flint_queue::keys::Keys::new(queue);
    let payload = serde_json::to_string(&Job { n: 0, work_ms: 0 }).unwrap();
    let mut conn = redis_conn(redis).await;
    let script = flint_queue::lua::script("return fq_run_now(fq_queue(1), ARGV[1], ARGV[2])");
    let mut invocation = script.prepare_invoke();
    for key in keys.job_keys() {
        invocation.key(key);
    }
    invocation
        .arg(job_id)
        .arg(payload)
        .invoke_async(&mut conn)
        .await
        .unwrap()
}

/// The process's Prometheus recorder, installed on first use, for metrics that background
/// tasks of any thread record.
pub fn global_metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other global recorder in the queue tests")
    })
}

/// A counter's value in the process's recorder (0 when it was never recorded).
pub fn counter(name_and_labels: &str) -> u64 {
    global_metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}
