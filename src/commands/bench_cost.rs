//! `flint bench cost`: what a payment costs Redis, in memory while it waits and in CPU from
//! create to settlement.
//!
//! Memory: a private redis-server and the API in this process (as in `flint bench api`). N
//! payments are created through the API, 64 in flight, each for its own customer with an
//! invoice id (the rows of a billing run, as `flint bench import` sends them) and due in 180
//! days; no worker runs. `used_memory` of `INFO memory` before and after gives bytes per pending
//! payment. To split it, every key is listed (SCAN) and grouped by the shape of its name (ids
//! and digests written `*`); `MEMORY USAGE … SAMPLES 0` is read for up to 200 keys of each kind
//! and the kind's total estimated as their mean times its number of keys (exact for kinds of
//! 200 keys or fewer, such as the shared sorted sets and hashes). What no key's `MEMORY USAGE`
//! counts (the keyspace's hash tables, the expiries of idempotency claims, allocator rounding)
//! is the rest of the difference.
//!
//! CPU: a fresh redis-server with the sandbox and the API (as in `flint bench e2e`). M payments
//! due now are created, then one `flint worker` process at concurrency 64 settles them against
//! the instant sandbox. Redis's CPU time is `INFO cpu` (`used_cpu_user` + `used_cpu_sys`: its
//! own getrusage over all its threads, in microseconds, where `/proc/<pid>/stat` gives the same
//! in ticks of 10 ms), read before the creates, after them, and once the worker has settled
//! every payment and acknowledged every job. `INFO commandstats` is reset before each phase and
//! read after it. Redis's idle CPU (serverCron, the clients' polls) is measured for a second
//! first: it is part of the totals and reported beside them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use super::bench_api::{KEY, SET_REQUESTS, create_all, port_of, redis_set_rate, start_api_with};
use super::bench_e2e::{Storage, System};
use super::bench_queue::commandstats;
use super::local_redis::Layout;
use super::redis_child::RedisChild;
use crate::cli::{BenchCostArgs, CardArg};
use flint_shared::config::StorageFormat;

/// Creates in flight, in both phases.
const IN_FLIGHT: usize = 64;
/// How far ahead the pending payments are due.
const DUE_IN_DAYS: u64 = 180;
/// Keys of each kind whose `MEMORY USAGE` is read.
const SAMPLE: usize = 200;
/// What the projection is for.
const PROJECTED: f64 = 10_000_000.0;
/// The bench's own commands, left out of the command table.
const OWN: &[&str] = &["info", "config|resetstat", "type"];
/// The commands that run a script; their time includes the commands the script runs.
const SCRIPTS: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];

#[derive(Debug, Serialize)]
struct Summary {
    redis_version: String,
    /// One per way of writing payments ([`STORAGES`]), JSON (the baseline) first.
    runs: Vec<Run>,
}

/// What each run measures: the defaults (JSON, the baseline), compact, and compact without
/// the unfiltered indexes.
const STORAGES: [Storage; 3] = [
    Storage {
        storage_format: StorageFormat::Json,
        unfiltered_indexes: true,
    },
    Storage {
        storage_format: StorageFormat::Compact,
        unfiltered_indexes: true,
    },
    Storage {
        storage_format: StorageFormat::Compact,
        unfiltered_indexes: false,
    },
];

#[derive(Debug, Serialize)]
struct Run {
    #[serde(flatten)]
    storage: Storage,
    memory: Memory,
    cpu: Cpu,
}

#[derive(Debug, Serialize)]
struct Memory {
    pending: usize,
    /// Customers the payments are spread over.
    customers: usize,
    due_in_days: u64,
    creates_per_sec: f64,
    used_memory_before: u64,
    used_memory_after: u64,
    /// (`used_memory` after − before) / pending.
    bytes_per_payment: f64,
    /// The same for `used_memory_rss` (what the OS sees; moves in pages).
    rss_bytes_per_payment: f64,
    /// `bytes_per_payment` × 10 million, in GB (10⁹ bytes).
    projected_gb_for_10m: f64,
    kinds: Vec<KindCost>,
    /// `bytes_per_payment` less what the kinds account for.
    unattributed_bytes_per_payment: f64,
}

#[derive(Debug, Serialize)]
struct KindCost {
    /// The key's name after `flint:{queue}:`, ids and digests written `*`.
    kind: String,
    keys: u64,
    /// Keys whose `MEMORY USAGE` was read; the rest are estimated from their mean.
    sampled: usize,
    bytes_per_key: f64,
    bytes_per_payment: f64,
}

#[derive(Debug, Serialize)]
struct Cpu {
    payments: usize,
    card: CardArg,
    worker_concurrency: usize,
    create_seconds: f64,
    settle_seconds: f64,
    /// Redis CPU (user + system) over both phases, per payment.
    redis_cpu_us_per_payment: f64,
    create_us_per_payment: f64,
    /// From the worker's start until every job is acknowledged.
    settle_us_per_payment: f64,
    /// Redis's CPU rate with nothing to do, times the run's duration, per payment (included
    /// in the figures above).
    idle_us_per_payment: f64,
    /// Time inside scripts (eval, evalsha, …) by `INFO commandstats`, per payment.
    scripts_us_per_payment: f64,
    /// 1e6 / `redis_cpu_us_per_payment`: payments per second one core of Redis could carry.
    ceiling_payments_per_sec: f64,
    /// The baseline: Redis CPU per SET under `redis-benchmark -t set` on the same Redis in the
    /// same run (absent without redis-benchmark).
    redis_cpu_us_per_set: Option<f64>,
    /// `redis_cpu_us_per_payment` / `redis_cpu_us_per_set`.
    payment_in_sets: Option<f64>,
    commandstats: Vec<CommandCost>,
}

#[derive(Debug, Serialize)]
struct CommandCost {
    command: String,
    calls_per_payment: f64,
    us_per_call: f64,
    us_per_payment: f64,
    create_us_per_payment: f64,
    settle_us_per_payment: f64,
}

pub async fn run(args: &BenchCostArgs) -> anyhow::Result<()> {
    if args.pending == 0 || args.payments == 0 {
        bail!("--pending and --payments must be at least 1");
    }
    let customers = args.customers.unwrap_or(args.pending);
    if customers == 0 {
        bail!("--customers must be at least 1");
    }
    // Each on its own fresh redis-server, one after the other.
    let mut runs = Vec::new();
    let mut redis_version = String::new();
    for storage in STORAGES {
        let (version, memory) = memory(args.pending, customers, storage).await?;
        let cpu = cpu(args.payments, args.card, storage).await?;
        redis_version = version;
        runs.push(Run {
            storage,
            memory,
            cpu,
        });
    }
    let summary = Summary {
        redis_version,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print(&summary);
    }
    Ok(())
}

async fn memory(
    pending: usize,
    customers: usize,
    storage: Storage,
) -> anyhow::Result<(String, Memory)> {
    let redis = RedisChild::start()?;
    let mut conn = connect(&redis).await?;
    let api = start_api_with(&redis.url(), |c| storage.configure(&mut c.redis)).await?;
    let base = format!("{api}/v1/off_session_payments");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let server = info(&mut conn, "server").await?;
    let version = field(&server, "redis_version").unwrap_or("?").to_owned();
    let before = info(&mut conn, "memory").await?;

    let due = flint_shared::time::Timestamp::now()
        .plus(Duration::from_secs(DUE_IN_DAYS * 86_400))
        .to_string();
    let started = Instant::now();
    create_all(&http, &base, KEY, "cost", pending, IN_FLIGHT, |n| {
        json!({"customer": format!("cus_{}", n % customers), "amount": {"value": 1000 + n % 9000, "currency": "usd"},
            "purpose": "subscription", "context": {"invoice_id": format!("in_{n}")},
            "initiated_by": {"type": "service", "id": "bench"}, "charge_at": due})
    })
    .await?;
    let creates_per_sec = pending as f64 / started.elapsed().as_secs_f64();
    let after = info(&mut conn, "memory").await?;

    let used = |info: &str, name: &str| -> anyhow::Result<u64> {
        field(info, name)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("INFO memory has no {name}"))
    };
    let (used_before, used_after) = (used(&before, "used_memory")?, used(&after, "used_memory")?);
    let per_payment = |a: u64, b: u64| (b as f64 - a as f64) / pending as f64;
    let bytes_per_payment = per_payment(used_before, used_after);
    let rss_bytes_per_payment = per_payment(
        used(&before, "used_memory_rss")?,
        used(&after, "used_memory_rss")?,
    );
    let kinds = census(&mut conn, pending).await?;
    let attributed: f64 = kinds.iter().map(|k| k.bytes_per_payment).sum();
    Ok((
        version,
        Memory {
            pending,
            customers,
            due_in_days: DUE_IN_DAYS,
            creates_per_sec,
            used_memory_before: used_before,
            used_memory_after: used_after,
            bytes_per_payment,
            rss_bytes_per_payment,
            projected_gb_for_10m: bytes_per_payment * PROJECTED / 1e9,
            kinds,
            unattributed_bytes_per_payment: bytes_per_payment - attributed,
        },
    ))
}

/// Every key, grouped by [`kind`], with the mean `MEMORY USAGE` of up to [`SAMPLE`] of each
/// kind; most bytes per payment first.
async fn census(
    conn: &mut redis::aio::MultiplexedConnection,
    pending: usize,
) -> anyhow::Result<Vec<KindCost>> {
    let mut kinds: BTreeMap<String, (u64, Vec<u64>)> = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        let mut pipe = redis::pipe();
        let mut asked = Vec::new();
        for key in keys {
            let kind = kind(&key);
            let (count, _) = kinds.entry(kind.clone()).or_default();
            *count += 1;
            if *count as usize <= SAMPLE {
                pipe.cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&key)
                    .arg("SAMPLES")
                    .arg(0);
                asked.push(kind);
            }
        }
        if !asked.is_empty() {
            let sizes: Vec<Option<u64>> = pipe.query_async(conn).await?;
            for (kind, size) in asked.into_iter().zip(sizes) {
                if let (Some(size), Some((_, sizes))) = (size, kinds.get_mut(&kind)) {
                    sizes.push(size);
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut costs: Vec<KindCost> = kinds
        .into_iter()
        .filter(|(_, (_, sizes))| !sizes.is_empty())
        .map(|(kind, (keys, sizes))| {
            let bytes_per_key = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
            KindCost {
                kind,
                keys,
                sampled: sizes.len(),
                bytes_per_key,
                bytes_per_payment: bytes_per_key * keys as f64 / pending as f64,
            }
        })
        .collect();
    costs.sort_by(|a, b| b.bytes_per_payment.total_cmp(&a.bytes_per_payment));
    Ok(costs)
}

/// A key's name after the queue's `flint:{q}:` prefix, with each part of 16 characters or more
/// (payment and event ids, digests) written `*`: `pay:*`, `idx:bench:cus:*:st:pending`.
fn kind(key: &str) -> String {
    let name = key.split_once("}:").map_or(key, |(_, rest)| rest);
    name.split(':')
        .map(|part| if part.len() >= 16 { "*" } else { part })
        .collect::<Vec<_>>()
        .join(":")
}

async fn cpu(payments: usize, card: CardArg, storage: Storage) -> anyhow::Result<Cpu> {
    let system = System::start(Layout::Standalone, storage).await?;
    let redis = system.redis.standalone()?;
    let mut conn = connect(redis).await?;
    let idle_from = (Instant::now(), cpu_seconds(&mut conn).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rate =
        (cpu_seconds(&mut conn).await? - idle_from.1) / idle_from.0.elapsed().as_secs_f64();

    // The baseline, before the payments: Redis's CPU per SET of `redis-benchmark`.
    let set_from = cpu_seconds(&mut conn).await?;
    let set_us = match port_of(&redis.url()) {
        Some(port) if redis_set_rate(port).await.is_some() => {
            Some((cpu_seconds(&mut conn).await? - set_from) * 1e6 / f64::from(SET_REQUESTS))
        }
        _ => None,
    };

    reset_stats(&mut conn).await?;
    let (t0, cpu0) = (Instant::now(), cpu_seconds(&mut conn).await?);
    system.create(payments, card).await?;
    let (t1, cpu1) = (Instant::now(), cpu_seconds(&mut conn).await?);
    let created = commandstats(&info(&mut conn, "commandstats").await?);

    reset_stats(&mut conn).await?;
    let worker = system.worker(IN_FLIGHT, 1_000_000, 1_000_000).await?;
    worker.wait_settled(&system.http, payments, |_| ()).await?;
    // Settled is counted before the job is acknowledged: wait until no job is left.
    let ids = flint_queue::keys::Keys::new(&flint_shared::config::Config::default().queue.name).ids;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kind: String = redis::cmd("TYPE").arg(&ids).query_async(&mut conn).await?;
        if kind == "none" || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t2, cpu2) = (Instant::now(), cpu_seconds(&mut conn).await?);
    let settled = commandstats(&info(&mut conn, "commandstats").await?);
    drop(worker);

    let per = |x: f64| x / payments as f64;
    // Calls and microseconds of each command, while creating [0] and settling [1].
    let mut commands: BTreeMap<String, [(u64, u64); 2]> = BTreeMap::new();
    for (phase, stats) in [created, settled].into_iter().enumerate() {
        for c in stats {
            if !OWN.contains(&c.name.as_str()) {
                commands.entry(c.name).or_default()[phase] = (c.calls, c.usec);
            }
        }
    }
    let mut table: Vec<CommandCost> = commands
        .into_iter()
        .map(
            |(command, [(c_calls, c_usec), (s_calls, s_usec)])| CommandCost {
                command,
                calls_per_payment: per((c_calls + s_calls) as f64),
                us_per_call: (c_usec + s_usec) as f64 / (c_calls + s_calls).max(1) as f64,
                us_per_payment: per((c_usec + s_usec) as f64),
                create_us_per_payment: per(c_usec as f64),
                settle_us_per_payment: per(s_usec as f64),
            },
        )
        .collect();
    table.sort_by(|a, b| b.us_per_payment.total_cmp(&a.us_per_payment));
    let total = per((cpu2 - cpu0) * 1e6);
    Ok(Cpu {
        payments,
        card,
        worker_concurrency: IN_FLIGHT,
        create_seconds: (t1 - t0).as_secs_f64(),
        settle_seconds: (t2 - t1).as_secs_f64(),
        redis_cpu_us_per_payment: total,
        create_us_per_payment: per((cpu1 - cpu0) * 1e6),
        settle_us_per_payment: per((cpu2 - cpu1) * 1e6),
        idle_us_per_payment: per(idle_rate * (t2 - t0).as_secs_f64() * 1e6),
        scripts_us_per_payment: table
            .iter()
            .filter(|c| SCRIPTS.contains(&c.command.as_str()))
            .map(|c| c.us_per_payment)
            .sum(),
        ceiling_payments_per_sec: 1e6 / total,
        redis_cpu_us_per_set: set_us,
        payment_in_sets: set_us.map(|set| total / set),
        commandstats: table,
    })
}

async fn connect(redis: &RedisChild) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?)
}

async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(conn).await?)
}

/// The value of `name` in an `INFO` reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Redis's CPU time so far, user and system, in seconds.
pub(super) async fn cpu_seconds(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<f64> {
    let cpu = info(conn, "cpu").await?;
    ["used_cpu_user", "used_cpu_sys"]
        .into_iter()
        .map(|name| {
            field(&cpu, name)
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("INFO cpu has no {name}"))
        })
        .sum()
}

async fn reset_stats(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await?;
    Ok(())
}

fn print_run(redis_version: &str, r: &Run) {
    println!(
        "[redis] storage_format = {}, unfiltered_indexes = {}",
        r.storage.storage_format.as_str(),
        r.storage.unfiltered_indexes
    );
    let m = &r.memory;
    println!(
        "Memory per pending payment: {} payments for {} customers created through the API \
         ({:.0}/s, {IN_FLIGHT} in flight), due in {} days, no worker; redis-server {}",
        m.pending, m.customers, m.creates_per_sec, m.due_in_days, redis_version
    );
    println!(
        "  used_memory {:.1} MB → {:.1} MB: {:.0} bytes per pending payment (used_memory_rss: {:.0})",
        m.used_memory_before as f64 / 1e6,
        m.used_memory_after as f64 / 1e6,
        m.bytes_per_payment,
        m.rss_bytes_per_payment
    );
    println!(
        "  10 million pending: {:.1} GB of used_memory",
        m.projected_gb_for_10m
    );
    println!(
        "  {:<34} {:>8} {:>8} {:>11} {:>13}",
        "key kind (MEMORY USAGE)", "keys", "sampled", "bytes/key", "bytes/payment"
    );
    for k in &m.kinds {
        println!(
            "  {:<34} {:>8} {:>8} {:>11.0} {:>13.1}",
            k.kind, k.keys, k.sampled, k.bytes_per_key, k.bytes_per_payment
        );
    }
    println!(
        "  {:<34} {:>8} {:>8} {:>11} {:>13.1}",
        "in no key (keyspace tables, expiries)", "", "", "", m.unattributed_bytes_per_payment
    );
    println!("  (kinds with more keys than sampled are estimated: mean of the sample × keys)");

    let c = &r.cpu;
    println!();
    println!(
        "Redis CPU per payment: {} payments due now, created through the API, then settled by one \
         `flint worker` (concurrency {}) against the instant sandbox; {}",
        c.payments,
        c.worker_concurrency,
        match c.card {
            CardArg::Named => "each payment names its card",
            CardArg::Default => "no payment names a card (the customer's default is charged)",
        }
    );
    println!(
        "  create      {:>7.1} µs  ({:.1} s)",
        c.create_us_per_payment, c.create_seconds
    );
    println!(
        "  settlement  {:>7.1} µs  ({:.1} s, the worker's start included)",
        c.settle_us_per_payment, c.settle_seconds
    );
    println!(
        "  total       {:>7.1} µs per payment → one Redis core carries at most {:.0} payments/s",
        c.redis_cpu_us_per_payment, c.ceiling_payments_per_sec
    );
    if let (Some(set), Some(sets)) = (c.redis_cpu_us_per_set, c.payment_in_sets) {
        println!(
            "  baseline: redis-benchmark SET costs Redis {set:.2} µs of CPU: a payment costs {sets:.0} SETs"
        );
    }
    println!(
        "  of which Redis idle (serverCron, polls) {:.1} µs; inside scripts (commandstats) {:.1} µs",
        c.idle_us_per_payment, c.scripts_us_per_payment
    );
    println!(
        "  {:<20} {:>13} {:>9} {:>10} {:>10} {:>10}",
        "command", "calls/payment", "µs/call", "µs/payment", "create", "settlement"
    );
    for r in &c.commandstats {
        println!(
            "  {:<20} {:>13.2} {:>9.2} {:>10.2} {:>10.2} {:>10.2}",
            r.command,
            r.calls_per_payment,
            r.us_per_call,
            r.us_per_payment,
            r.create_us_per_payment,
            r.settle_us_per_payment
        );
    }
    println!(
        "  (a script's time includes the commands it runs, which also have their own rows: the \
         rows do not add up)"
    );
}

fn print(s: &Summary) {
    for run in &s.runs {
        print_run(&s.redis_version, run);
        println!();
    }
    let Some((json, others)) = s.runs.split_first() else {
        return;
    };
    for other in others {
        println!(
            "{}{} against json, same run: memory {:.0} / {:.0} bytes per pending payment ({:.2}×), \
             Redis CPU {:.1} / {:.1} µs per payment ({:.2}×)",
            other.storage.storage_format.as_str(),
            if other.storage.unfiltered_indexes {
                ""
            } else {
                " without the unfiltered indexes"
            },
            other.memory.bytes_per_payment,
            json.memory.bytes_per_payment,
            other.memory.bytes_per_payment / json.memory.bytes_per_payment,
            other.cpu.redis_cpu_us_per_payment,
            json.cpu.redis_cpu_us_per_payment,
            other.cpu.redis_cpu_us_per_payment / json.cpu.redis_cpu_us_per_payment,
        );
    }
}
