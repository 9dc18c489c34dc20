//! `flint bench e2e`: payments through the whole system.
//!
//! A private redis-server, the sandbox and the API run in this process; the charge worker is
//! its own process (`flint worker`), so its RSS is its own. The payments are created first;
//! the clock runs from the worker's start until it has settled them all (read from its
//! `/metrics`). With 300 ms added to every PaymentIntent request (a first charge is one
//! create-and-confirm request), a worker at concurrency C cannot beat C / 0.3 s payments per
//! second (Little's law); the ratio says how close it comes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flint_shared::config::{Config, FaultConfig, RedisConfig, Secret, StorageFormat, TenantConfig};
use flint_shared::payment::Status;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::bench_api::create_all;
use super::bench_cost::cpu_seconds;
use super::local_redis::{Layout, LocalRedis};
use crate::cli::{BenchE2eArgs, CardArg};

const API_KEY: &str = "flint-bench-e2e";
const SANDBOX_KEY: &str = "sk_test_flint";

#[derive(Debug, Serialize)]
struct Row {
    scenario: String,
    /// `standalone`, or `cluster` (three primaries, three partitions).
    redis: &'static str,
    /// `[redis] storage_format` of the API and the worker.
    storage_format: StorageFormat,
    payments: usize,
    concurrency: usize,
    /// The fleet's processor rate limit the worker ran with (per second).
    rate_limit: u32,
    latency_ms_per_charge: u64,
    /// Settled per second between 10 % and 90 % of the payments (steady state).
    payments_per_sec: f64,
    /// All payments over the whole run, worker start-up and the last latency included.
    overall_per_sec: f64,
    littles_law_bound: Option<f64>,
    ratio_to_bound: Option<f64>,
    worker_rss_mb: f64,
    /// Redis CPU time per payment while the worker settled them, on each primary (`INFO cpu`).
    redis_cpu_us_per_payment: Vec<f64>,
}

pub async fn run(args: &BenchE2eArgs) -> anyhow::Result<()> {
    if args.payments == 0 {
        bail!("--payments must be at least 1");
    }
    let layouts: &[Layout] = if args.cluster {
        &[Layout::Standalone, Layout::Cluster]
    } else {
        &[Layout::Standalone]
    };
    let mut rows = Vec::new();
    for (concurrency, latency_ms) in [(64, 0), (1000, 300)] {
        // Each scenario on every layout in turn, so that their ratio compares like with like
        // on a machine whose speed drifts.
        for &layout in layouts {
            rows.push(
                scenario(
                    layout,
                    args.storage_format.into(),
                    args.payments,
                    concurrency,
                    latency_ms,
                )
                .await?,
            );
        }
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        println!(
            "[redis] storage_format = {}",
            StorageFormat::from(args.storage_format).as_str()
        );
        println!(
            "{:<26} {:<10} {:>8} {:>6} {:>10} {:>10} {:>10} {:>7} {:>8}  Redis µs/payment (each primary)",
            "scenario",
            "redis",
            "payments",
            "conc",
            "steady/s",
            "overall/s",
            "bound/s",
            "ratio",
            "RSS MB",
        );
        for r in &rows {
            println!(
                "{:<26} {:<10} {:>8} {:>6} {:>10.0} {:>10.0} {:>10} {:>7} {:>8.1}  {}",
                r.scenario,
                r.redis,
                r.payments,
                r.concurrency,
                r.payments_per_sec,
                r.overall_per_sec,
                r.littles_law_bound
                    .map_or("-".into(), |b| format!("{b:.0}")),
                r.ratio_to_bound.map_or("-".into(), |x| format!("{x:.2}")),
                r.worker_rss_mb,
                r.redis_cpu_us_per_payment
                    .iter()
                    .map(|us| format!("{us:.0}"))
                    .collect::<Vec<_>>()
                    .join(" + ")
            );
        }
    }
    Ok(())
}

async fn scenario(
    layout: Layout,
    format: StorageFormat,
    payments: usize,
    concurrency: usize,
    latency_ms: u64,
) -> anyhow::Result<Row> {
    let system = System::start(layout, Storage::of(format)).await?;
    system.set_latency(latency_ms).await?;
    system.create(payments, CardArg::Named).await?;

    // With latency, the fleet's processor rate limit is set 1.2 times above the Little's-law
    // bound, as a deployment sets it near its processor's allowance. It is not what binds, but
    // it spaces the first thousand requests over 250 ms: sent at one instant, they come back
    // as one wave every 300 ms, and the sandbox's work on each wave delays its last answers
    // (0.82 of the bound against 0.89-0.90 in interleaved runs). Without latency, unlimited.
    let (limit, limit_burst) = if latency_ms > 0 {
        let bound = concurrency as f64 * 1000.0 / latency_ms as f64;
        let limit = (bound * 1.2) as u32;
        (limit, (limit / 100).max(1))
    } else {
        (1_000_000, 1_000_000)
    };
    // Each primary's connection, and its CPU so far.
    let (mut primaries, mut cpu_before) = (Vec::new(), Vec::new());
    for url in system.redis.primaries() {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        cpu_before.push(cpu_seconds(&mut conn).await?);
        primaries.push(conn);
    }
    let started = Instant::now();
    let worker = system.worker(concurrency, limit, limit_burst).await?;
    let mut rss_mb: f64 = 0.0;
    // The steady-state window: from the first sample at or past 10 % settled to the first at or
    // past 90 %, so the process start and the last batch's latency do not count.
    let (low, high) = (payments as f64 * 0.1, payments as f64 * 0.9);
    let mut first: Option<(Instant, f64)> = None;
    let mut last: Option<(Instant, f64)> = None;
    worker
        .wait_settled(&system.http, payments, |done| {
            rss_mb = rss_mb.max(rss(worker.pid));
            let now = Instant::now();
            if first.is_none() && done >= low {
                first = Some((now, done));
            }
            if last.is_none() && done >= high {
                last = Some((now, done));
            }
        })
        .await?;
    let elapsed = started.elapsed();
    drop(worker);
    let mut redis_cpu = Vec::new();
    for (conn, before) in primaries.iter_mut().zip(cpu_before) {
        redis_cpu.push((cpu_seconds(conn).await? - before) * 1e6 / payments as f64);
    }
    let overall = payments as f64 / elapsed.as_secs_f64();
    let rate = match (first, last) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => (n1 - n0) / (t1 - t0).as_secs_f64(),
        _ => overall,
    };
    let bound = (latency_ms > 0).then(|| concurrency as f64 / (latency_ms as f64 / 1000.0));
    Ok(Row {
        storage_format: format,
        scenario: if latency_ms == 0 {
            "instant sandbox".into()
        } else {
            format!("{latency_ms} ms charge latency")
        },
        redis: layout.name(),
        payments,
        concurrency,
        rate_limit: limit,
        latency_ms_per_charge: latency_ms,
        payments_per_sec: rate,
        overall_per_sec: overall,
        littles_law_bound: bound,
        ratio_to_bound: bound.map(|b| rate / b),
        worker_rss_mb: rss_mb,
        redis_cpu_us_per_payment: redis_cpu,
    })
}

/// What `flint bench e2e` and `flint bench cost` run payments through: a private Redis (one
/// server, or a cluster), the sandbox with 20 customers and their cards, and the API (one
/// tenant, its rate limit lifted), all in this process.
#[derive(Debug)]
pub(super) struct System {
    pub(super) redis: LocalRedis,
    pub(super) http: reqwest::Client,
    sandbox_url: String,
    api_url: String,
    /// SHA-256 of the tenant's API key, for the worker's configuration.
    digest: String,
    /// Customer id and saved card of each customer.
    customers: Vec<(String, String)>,
    /// How the API and the worker write payments.
    storage: Storage,
}

/// How a benchmark's API and worker write payments: `[redis] storage_format` and
/// `unfiltered_indexes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Storage {
    pub storage_format: StorageFormat,
    pub unfiltered_indexes: bool,
}

impl Storage {
    /// `format`, with the other settings at their defaults.
    pub(super) fn of(format: StorageFormat) -> Storage {
        Storage {
            storage_format: format,
            unfiltered_indexes: RedisConfig::default().unfiltered_indexes,
        }
    }

    pub(super) fn configure(self, redis: &mut RedisConfig) {
        redis.storage_format = self.storage_format;
        redis.unfiltered_indexes = self.unfiltered_indexes;
    }

    /// The same, as a `flint` process's environment.
    fn env(self) -> [(&'static str, &'static str); 2] {
        [
            ("FLINT__REDIS__STORAGE_FORMAT", self.storage_format.as_str()),
            (
                "FLINT__REDIS__UNFILTERED_INDEXES",
                if self.unfiltered_indexes {
                    "true"
                } else {
                    "false"
                },
            ),
        ]
    }
}

impl System {
    pub(super) async fn start(layout: Layout, storage: Storage) -> anyhow::Result<System> {
        let redis = LocalRedis::start(layout).await?;
        let sandbox_config = flint_shared::config::SandboxConfig {
            listen: "127.0.0.1:0".parse()?,
            api_keys: vec![Secret::new(SANDBOX_KEY)],
            ..Default::default()
        };
        let sandbox = flint_sandbox::Sandbox::bind(sandbox_config).await?;
        let sandbox_url = sandbox.base_url();
        tokio::spawn(sandbox.run(std::future::pending()));

        let digest = hex::encode(Sha256::digest(API_KEY.as_bytes()));
        let mut config = Config::default();
        redis.configure(&mut config);
        storage.configure(&mut config.redis);
        config.enqueuer.listen = "127.0.0.1:0".parse()?;
        config.enqueuer.rate_limit_per_second = 1_000_000;
        config.enqueuer.rate_limit_burst = 1_000_000;
        config.tenants = vec![TenantConfig {
            id: "bench".into(),
            api_key_sha256: digest.clone(),
            processor_secret_key: Secret::new(SANDBOX_KEY),
        }];
        let api = flint_enqueuer::Application::build(&config).await?;
        let api_url = format!("http://{}", api.local_addr());
        tokio::spawn(api.run(std::future::pending()));

        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let mut customers = Vec::new();
        for _ in 0..20 {
            let c: Value = http
                .post(format!("{sandbox_url}/v1/customers"))
                .bearer_auth(SANDBOX_KEY)
                .form(&[
                    ("payment_method", "pm_card_visa"),
                    ("invoice_settings[default_payment_method]", "pm_card_visa"),
                ])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let cus = c["id"].as_str().context("customer")?.to_owned();
            let pm = c["invoice_settings"]["default_payment_method"]
                .as_str()
                .context("pm")?
                .to_owned();
            customers.push((cus, pm));
        }
        Ok(System {
            redis,
            http,
            sandbox_url,
            api_url,
            digest,
            customers,
            storage,
        })
    }

    /// Adds `latency_ms` to every PaymentIntent request the sandbox answers.
    async fn set_latency(&self, latency_ms: u64) -> anyhow::Result<()> {
        let faults = FaultConfig {
            latency_fixed_ms: latency_ms,
            path_prefix: Some("/v1/payment_intents".into()),
            ..Default::default()
        };
        self.http
            .post(format!("{}/__sandbox/faults", self.sandbox_url))
            .json(&faults)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Creates `payments` payments due now, 64 in flight, round robin over the customers,
    /// charging `card`.
    pub(super) async fn create(&self, payments: usize, card: CardArg) -> anyhow::Result<()> {
        let base = format!("{}/v1/off_session_payments", self.api_url);
        create_all(&self.http, &base, API_KEY, "e2e", payments, 64, |n| {
            let (cus, pm) = &self.customers[n % self.customers.len()];
            let mut body = json!({"customer": cus, "amount": {"value": 1000, "currency": "usd"},
                "purpose": "subscription", "initiated_by": {"type": "service", "id": "bench"}});
            if card == CardArg::Named {
                body["payment_method"] = json!(pm);
            }
            body
        })
        .await
    }

    /// A `flint worker` process at `concurrency` under the fleet's processor rate limit `limit`
    /// per second (burst `burst`), started once it listens. Killed when dropped.
    pub(super) async fn worker(
        &self,
        concurrency: usize,
        limit: u32,
        burst: u32,
    ) -> anyhow::Result<Worker> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("worker.toml");
        std::fs::write(
            &file,
            format!(
                "[log]\nlevel = \"error\"\n{}[worker]\nconcurrency = {concurrency}\n\
                 [processor]\napi_base = \"{}\"\nrate_limit_per_second = {limit}\nrate_limit_burst = {burst}\n\
                 [[tenants]]\nid = \"bench\"\napi_key_sha256 = \"{}\"\nprocessor_secret_key = \"{SANDBOX_KEY}\"\n",
                self.redis.toml(),
                self.sandbox_url,
                self.digest
            ),
        )?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("--config")
            .arg(&file)
            .args(["worker", "--listen", "127.0.0.1:0"])
            .envs(self.storage.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = lines.next_line().await?.context("worker did not start")?;
        let metrics_url = format!("{}/metrics", line.rsplit(' ').next().context("worker url")?);
        let pid = child.id().context("worker pid")?;
        Ok(Worker {
            _child: child,
            metrics_url,
            pid,
            _dir: dir,
        })
    }
}

/// A `flint worker` process of a [`System`]; killed when dropped.
#[derive(Debug)]
pub(super) struct Worker {
    _child: tokio::process::Child,
    metrics_url: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Worker {
    /// Reads the worker's `/metrics` every 20 ms until it has settled `payments` payments
    /// (at most 600 s), calling `sample` with the number settled after each read.
    pub(super) async fn wait_settled(
        &self,
        http: &reqwest::Client,
        payments: usize,
        mut sample: impl FnMut(f64),
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let text = http.get(&self.metrics_url).send().await?.text().await?;
            let done = finished(&text, None);
            sample(done);
            if done >= payments as f64 {
                // Every payment charges a good card: a figure of payments that ended otherwise
                // would not be of a charge.
                let succeeded = finished(&text, Some(Status::Succeeded));
                if succeeded < done {
                    bail!("{succeeded} of {done} payments succeeded: the run measured no charges");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{done} of {payments} payments settled in 600 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sum of `flint_payments_finished_total` over its labels, or those of one status.
fn finished(metrics: &str, status: Option<Status>) -> f64 {
    let label = status.map(|s| format!("status=\"{}\"", s.as_str()));
    metrics
        .lines()
        .filter(|l| l.starts_with("flint_payments_finished_total"))
        .filter(|l| {
            label
                .as_ref()
                .is_none_or(|label| l.contains(label.as_str()))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Resident set size of `pid` in MB (Linux).
fn rss(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
