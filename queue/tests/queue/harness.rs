//! Where a test runs ([`Env`]: a standalone server or a Redis Cluster), and a test worker: an
//! apalis worker on a Flint queue whose handler records every run and returns what the test
//! scripted for that job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use flint_queue::keys::Keys;
use flint_queue::{Outcome, Queue, QueueConfig, RedisConnection, RedisTarget, Timeouts};
use flint_testkit::cluster::RedisCluster;
use flint_testkit::redis::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The kind of Redis a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

/// A test's Redis. In [`Mode::Standalone`] a `redis-server` of the test's own. In
/// [`Mode::Cluster`] the one cluster that the cluster tests running at a time share (started
/// by the first, stopped when the last lets go of it: a cluster takes seconds to form); its
/// queues are apart from other tests' by name ([`Env::name`]), so by hash tag.
pub struct Env {
    target: RedisTarget,
    /// Appended to the test's queue names (empty on a server of the test's own).
    suffix: String,
    /// Held for the test's lifetime: its server, or its share of the cluster.
    _server: Option<RedisServer>,
    _cluster: Option<Arc<RedisCluster>>,
}

impl Env {
    pub fn start(mode: Mode) -> Env {
        match mode {
            Mode::Standalone => {
                let server = RedisServer::start();
                Env {
                    target: RedisTarget::Standalone(server.url()),
                    suffix: String::new(),
                    _server: Some(server),
                    _cluster: None,
                }
            }
            Mode::Cluster => {
                static NEXT: AtomicU64 = AtomicU64::new(1);
                let cluster = shared_cluster();
                Env {
                    target: RedisTarget::Cluster(cluster.nodes()),
                    suffix: format!("~{}~", NEXT.fetch_add(1, Ordering::Relaxed)),
                    _server: None,
                    _cluster: Some(cluster),
                }
            }
        }
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The test's name for queue `base`: `base` itself on a server of its own, unique to the
    /// test on a shared cluster (`base~N~`).
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// [`config`] for the test's queue `base`.
    pub fn config(&self, base: &str) -> QueueConfig {
        config(&self.name(base))
    }

    pub async fn queue(&self, config: QueueConfig) -> Queue {
        Queue::connect_to(&self.target, config)
            .await
            .expect("queue connects")
    }

    /// A connection of the test's own (routed by key on a cluster).
    pub async fn conn(&self) -> RedisConnection {
        self.target
            .connect(Timeouts::default())
            .await
            .expect("redis connects")
    }

    /// Every key of the test's queues (of every queue on a server of its own), sorted.
    pub async fn keys(&self) -> Vec<String> {
        // Every key of the test's queues has the suffix in it, and no other test's has.
        let pattern = format!("*{}*", self.suffix);
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

/// The cluster the cluster tests share while any of them runs.
fn shared_cluster() -> Arc<RedisCluster> {
    static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(RedisCluster::start());
    *shared = Arc::downgrade(&cluster);
    cluster
}

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

pub fn job(n: u64) -> flint_queue::NewJob<Job> {
    flint_queue::NewJob::new(Job { n, work_ms: 0 }).with_id(format!("job-{n}"))
}

/// `fq_run_now` from the queue's Lua library, as a user's script calls it (a payment's resume):
/// returns `moved`, `pushed` or `marked`.
pub async fn run_now(env: &Env, queue: &Queue, job_id: &str) -> String {
    let keys = Keys::new(&queue.config().name);
    let payload = serde_json::to_string(&Job { n: 0, work_ms: 0 }).unwrap();
    let script = flint_queue::lua::script("return fq_run_now(fq_queue(1), ARGV[1], ARGV[2])");
    let mut invocation = script.prepare_invoke();
    for key in keys.job_keys() {
        invocation.key(key);
    }
    invocation
        .arg(job_id)
        .arg(payload)
        .invoke_async(&mut env.conn().await)
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
