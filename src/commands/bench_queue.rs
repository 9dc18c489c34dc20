//! `flint bench queue`: Flint's queue against apalis-redis 1.0.0, same Redis, same run.
//!
//! Drain: worker processes (`flint bench queue-worker`) start first; then N no-op jobs are
//! pushed in batches of 1,000 with at most 5,000 waiting at any time — apalis-redis wedges when
//! more than about 8,000 jobs are due at once (Lua's `unpack` limit in its fetch script),
//! so every system is fed the same bounded way. Throughput is N over the time from the first
//! push to the last completion. Redis commands per job come from `INFO commandstats` over the
//! scenario, leaving out the bench's own bookkeeping commands (GET, INCRBY, INFO, CONFIG).
//! Pickup latency is measured in-process: one idle worker, jobs pushed one at a time, the
//! time from push to handler start. apalis-redis has no blocking fetch, so its worker polls
//! every 100 ms. Push rates: one job per call, and batches of 500 (apalis: `push_bulk`).
//!
//! apalis-redis is built only with the `bench-baselines` feature (on by default). A binary
//! without it (the container image's) runs Flint's side alone and says so on stderr, before the
//! run and after the results; asked for nothing but apalis-redis systems, it refuses with exit
//! code 2.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apalis::prelude::*;
use flint_queue::{NewJob, Outcome, Queue, QueueConfig};
use redis::AsyncCommands;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::queue_worker::{BenchJob, done_key, is_built, not_built, now_us};
use super::redis_child::RedisChild;
use crate::cli::{BenchQueueArgs, QueueSystem};

const FEED_BATCH: u64 = 1000;
const MAX_BACKLOG: u64 = 5000;
const PUSH_SINGLE: u64 = 2000;
const PUSH_BATCHED: u64 = 50_000;

#[derive(Debug, Serialize)]
struct Row {
    system: &'static str,
    workers: usize,
    jobs: u64,
    jobs_per_sec: f64,
    /// Throughput relative to apalis-redis with lock_tasks(false) and as many workers.
    ratio_to_apalis_nolock: Option<f64>,
    redis_cmds_per_job: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
    push_single_per_sec: f64,
    push_batched_per_sec: f64,
}

pub async fn run(args: &BenchQueueArgs) -> anyhow::Result<()> {
    if args.jobs == 0 || args.workers.contains(&0) || args.concurrency == 0 {
        bail!("--jobs, --workers and --concurrency must be at least 1");
    }
    let (systems, missing): (Vec<QueueSystem>, Vec<QueueSystem>) =
        args.systems.iter().partition(|s| is_built(**s));
    let missing = (!missing.is_empty()).then(|| not_built(&missing));
    if systems.is_empty() {
        return Err(missing.expect("no system requested is built").into());
    }
    if let Some(missing) = &missing {
        eprintln!("skipped: {missing}");
    }
    let child;
    let url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            child = RedisChild::start()?;
            child.url()
        }
    };
    let client = redis::Client::open(url.as_str()).context("invalid --redis-url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("cannot reach Redis")?;

    let mut rows = Vec::new();
    for &system in &systems {
        let (p50, p99) = pickup_latency(system, &url, args.latency_samples).await?;
        let (single, batched) = push_rates(system, &url).await?;
        for &workers in &args.workers {
            let queue = format!("bench-{}-{workers}-{}", system.label(), std::process::id());
            let (jobs_per_sec, cmds) =
                drain(system, &url, &queue, workers, args, &mut conn).await?;
            cleanup(&mut conn, &queue).await?;
            eprintln!(
                "{} × {workers}: {jobs_per_sec:.0} jobs/s, {cmds:.2} redis commands/job",
                system.label()
            );
            rows.push(Row {
                system: system.label(),
                workers,
                jobs: args.jobs,
                jobs_per_sec,
                ratio_to_apalis_nolock: None,
                redis_cmds_per_job: cmds,
                pickup_p50_ms: p50,
                pickup_p99_ms: p99,
                push_single_per_sec: single,
                push_batched_per_sec: batched,
            });
        }
    }
    let baselines: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.system == QueueSystem::ApalisRedisNolock.label())
        .map(|r| (r.workers, r.jobs_per_sec))
        .collect();
    for row in &mut rows {
        row.ratio_to_apalis_nolock = baselines
            .iter()
            .find(|(w, _)| *w == row.workers)
            .map(|(_, base)| row.jobs_per_sec / base);
    }
    print_rows(&rows, args.json)?;
    if let Some(missing) = &missing {
        // Again after the table, where the empty "vs nolock" column needs it.
        eprintln!("skipped: {missing}");
    }
    Ok(())
}

fn print_rows(rows: &[Row], json: bool) -> anyhow::Result<()> {
    if json {
        for row in rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!(
        "{:<22} {:>7} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>11} {:>12}",
        "system",
        "workers",
        "jobs",
        "jobs/s",
        "vs nolock",
        "cmds/job",
        "pickup50",
        "pickup99",
        "push 1/s",
        "push 500/s"
    );
    for r in rows {
        let ratio = r
            .ratio_to_apalis_nolock
            .map_or("-".to_owned(), |x| format!("{x:.2}x"));
        println!(
            "{:<22} {:>7} {:>8} {:>10.0} {:>8} {:>9.2} {:>7.2}ms {:>7.2}ms {:>11.0} {:>12.0}",
            r.system,
            r.workers,
            r.jobs,
            r.jobs_per_sec,
            ratio,
            r.redis_cmds_per_job,
            r.pickup_p50_ms,
            r.pickup_p99_ms,
            r.push_single_per_sec,
            r.push_batched_per_sec
        );
    }
    Ok(())
}

/// A pusher for either system.
enum Pusher {
    Flint(Queue),
    #[cfg(feature = "bench-baselines")]
    Apalis(apalis_redis::RedisStorage<BenchJob>),
}

impl Pusher {
    async fn new(system: QueueSystem, url: &str, queue: &str) -> anyhow::Result<Pusher> {
        Ok(match system {
            QueueSystem::Flint => {
                Pusher::Flint(Queue::connect(url, QueueConfig::new(queue)).await?)
            }
            #[cfg(feature = "bench-baselines")]
            QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
                Pusher::Apalis(super::queue_worker::apalis_storage(system, url, queue).await?)
            }
            #[cfg(not(feature = "bench-baselines"))]
            QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
                unreachable!("`run` runs only the systems built into this binary")
            }
        })
    }

    async fn push(&mut self, jobs: Vec<BenchJob>) -> anyhow::Result<()> {
        match self {
            Pusher::Flint(q) => {
                let jobs: Vec<_> = jobs
                    .into_iter()
                    .map(|j| NewJob::new(j.clone()).with_id(format!("j{}", j.n)))
                    .collect();
                if jobs.len() == 1 {
                    q.push(jobs.into_iter().next().expect("one job")).await?;
                } else {
                    q.push_batch(jobs).await?;
                }
            }
            #[cfg(feature = "bench-baselines")]
            Pusher::Apalis(s) => {
                if jobs.len() == 1 {
                    s.push(jobs.into_iter().next().expect("one job"))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                } else {
                    s.push_bulk(jobs)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
        }
        Ok(())
    }
}

fn job(n: u64) -> BenchJob {
    BenchJob {
        n,
        pushed_at_us: now_us(),
        work_ms: 0,
    }
}

async fn drain(
    system: QueueSystem,
    url: &str,
    queue: &str,
    workers: usize,
    args: &BenchQueueArgs,
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..workers {
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "bench",
                "queue-worker",
                "--system",
                system_arg(system),
                "--redis-url",
                url,
                "--queue",
                queue,
            ])
            .args(["--concurrency", &args.concurrency.to_string()])
            .env("FLINT__LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        if !matches!(ready, Ok(Ok(Some(ref l))) if l == "worker ready") {
            bail!("a {} worker did not start", system.label());
        }
        children.push(child);
    }
    let mut pusher = Pusher::new(system, url, queue).await?;
    let done = done_key(queue);
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await?;
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < args.jobs {
        let completed: u64 = conn.get::<_, Option<u64>>(&done).await?.unwrap_or(0);
        if pushed - completed.min(pushed) >= MAX_BACKLOG {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let n = FEED_BATCH.min(args.jobs - pushed);
        pusher.push((pushed..pushed + n).map(job).collect()).await?;
        pushed += n;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let completed: u64 = conn.get::<_, Option<u64>>(&done).await?.unwrap_or(0);
        if completed >= args.jobs {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} × {workers} did not drain {} jobs in 600 s ({completed} done)",
                system.label(),
                args.jobs
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    for child in &mut children {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for mut child in children {
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    Ok((
        args.jobs as f64 / elapsed.as_secs_f64(),
        commands(&stats) as f64 / args.jobs as f64,
    ))
}

fn system_arg(system: QueueSystem) -> &'static str {
    system.label()
}

/// Calls in `INFO commandstats`, without the bench's own bookkeeping.
fn commands(info: &str) -> u64 {
    const OWN: &[&str] = &["get", "incrby", "info", "config|resetstat", "config"];
    commandstats(info)
        .into_iter()
        .filter(|c| !OWN.contains(&c.name.as_str()))
        .map(|c| c.calls)
        .sum()
}

/// One line of `INFO commandstats`.
#[derive(Debug)]
pub(super) struct CommandStat {
    /// As Redis names it: `evalsha`, `config|resetstat`.
    pub(super) name: String,
    pub(super) calls: u64,
    /// Microseconds spent in the command; a script's includes the commands it ran, which are
    /// also counted on their own lines.
    pub(super) usec: u64,
}

/// The lines of `INFO commandstats`.
pub(super) fn commandstats(info: &str) -> Vec<CommandStat> {
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                    .parse::<u64>()
                    .ok()
            };
            Some(CommandStat {
                name: name.to_owned(),
                calls: field("calls")?,
                usec: field("usec")?,
            })
        })
        .collect()
}

async fn cleanup(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for pattern in [format!("*{queue}*")] {
        let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await?;
        keys.extend(found);
    }
    for chunk in keys.chunks(500) {
        let () = redis::cmd("UNLINK").arg(chunk).query_async(conn).await?;
    }
    Ok(())
}

async fn flint_pickup(job: BenchJob, tx: Data<mpsc::UnboundedSender<u64>>) -> Outcome {
    let _ = tx.send(now_us().saturating_sub(job.pushed_at_us));
    Outcome::Complete
}

#[cfg(feature = "bench-baselines")]
async fn apalis_pickup(job: BenchJob, tx: Data<mpsc::UnboundedSender<u64>>) {
    let _ = tx.send(now_us().saturating_sub(job.pushed_at_us));
}

/// p50 and p99 of push-to-start latency with one idle worker, in ms.
async fn pickup_latency(
    system: QueueSystem,
    url: &str,
    samples: usize,
) -> anyhow::Result<(f64, f64)> {
    let queue = format!("bench-latency-{}-{}", system.label(), std::process::id());
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
        Ok::<(), std::io::Error>(())
    };
    let worker = match system {
        QueueSystem::Flint => {
            let q = Queue::connect(url, QueueConfig::new(&queue)).await?;
            let w = WorkerBuilder::new("latency")
                .backend(q.backend::<BenchJob>())
                .data(tx)
                .concurrency(1)
                .build(flint_pickup);
            tokio::spawn(async move { w.run_until(stop).await })
        }
        #[cfg(feature = "bench-baselines")]
        QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
            let s = super::queue_worker::apalis_storage(system, url, &queue).await?;
            let w = WorkerBuilder::new(format!("latency-{}", flint_shared::ids::random_token(6)))
                .backend(s.poll_with_interval(Duration::from_millis(100)))
                .data(tx)
                .concurrency(1)
                .build(apalis_pickup);
            tokio::spawn(async move { w.run_until(stop).await })
        }
        #[cfg(not(feature = "bench-baselines"))]
        QueueSystem::ApalisRedisDefault | QueueSystem::ApalisRedisNolock => {
            unreachable!("`run` runs only the systems built into this binary")
        }
    };
    let mut pusher = Pusher::new(system, url, &queue).await?;
    let mut latencies = Vec::with_capacity(samples);
    // A warm-up job, then samples, each pushed to a worker that has gone idle again.
    for n in 0..=samples as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        pusher.push(vec![job(n)]).await?;
        let latency = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await?
            .context("worker stopped")?;
        if n > 0 {
            latencies.push(latency);
        }
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    let client = redis::Client::open(url)?;
    cleanup(
        &mut client.get_multiplexed_async_connection().await?,
        &queue,
    )
    .await?;
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    Ok((pct(0.50), pct(0.99)))
}

/// Jobs pushed per second, one per call and in batches of 500.
async fn push_rates(system: QueueSystem, url: &str) -> anyhow::Result<(f64, f64)> {
    let queue = format!("bench-push-{}-{}", system.label(), std::process::id());
    let mut pusher = Pusher::new(system, url, &queue).await?;
    let started = Instant::now();
    for n in 0..PUSH_SINGLE {
        pusher.push(vec![job(n)]).await?;
    }
    let single = PUSH_SINGLE as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut n = PUSH_SINGLE;
    while n < PUSH_SINGLE + PUSH_BATCHED {
        pusher.push((n..n + 500).map(job).collect()).await?;
        n += 500;
    }
    let batched = PUSH_BATCHED as f64 / started.elapsed().as_secs_f64();
    let client = redis::Client::open(url)?;
    cleanup(
        &mut client.get_multiplexed_async_connection().await?,
        &queue,
    )
    .await?;
    Ok((single, batched))
}
