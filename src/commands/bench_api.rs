//! `flint bench api`: creates per second through the enqueuer, against Redis's own SET rate.
//!
//! The enqueuer runs in this process on port 0 against Redis (a private redis-server unless
//! `--redis-url`), with one tenant and its rate limit lifted. Closed-loop scenarios keep 1, 16
//! and 64 creates in flight, each with a fresh Idempotency-Key. The fixed-rate scenario starts
//! one create every 1/rate s whatever the previous ones do and measures latency from the time
//! each was due, so a stall shows up in the percentiles instead of being hidden
//! (coordinated omission). The reference is `redis-benchmark -t set` on the same Redis, run in
//! the same session: a create costs one Lua script of about ten Redis commands, so the ratio
//! says how close the API comes to what Redis can do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use flint_shared::config::{Config, Secret, TenantConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::redis_child::RedisChild;
use crate::cli::BenchApiArgs;

pub(super) const KEY: &str = "flint-bench-api-key";

#[derive(Debug, Serialize)]
struct Row {
    scenario: String,
    requests: u64,
    errors: u64,
    creates_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    redis_set_per_sec: Option<f64>,
}

pub async fn run(args: &BenchApiArgs) -> anyhow::Result<()> {
    if args.seconds == 0 || args.rate == 0 {
        bail!("--seconds and --rate must be at least 1");
    }
    let child;
    let url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            child = RedisChild::start()?;
            child.url()
        }
    };
    let port = port_of(&url);
    let base = format!("{}/v1/off_session_payments", start_api(&url).await?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let duration = Duration::from_secs(args.seconds);
    let set_rate = match port {
        Some(port) => redis_set_rate(port).await,
        None => None,
    };

    let mut rows = Vec::new();
    for concurrency in [1, 16, 64] {
        let m = closed_loop(&client, &base, concurrency, duration).await;
        rows.push(m.row(
            format!("closed loop, {concurrency} in flight"),
            duration,
            set_rate,
        ));
    }
    let m = fixed_rate(&client, &base, args.rate, duration).await;
    rows.push(m.row(format!("fixed rate {}/s", args.rate), duration, set_rate));

    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        println!(
            "redis-benchmark SET: {}",
            set_rate.map_or("n/a (redis-benchmark not found)".to_owned(), |r| format!(
                "{r:.0}/s"
            ))
        );
        println!(
            "{:<28} {:>9} {:>7} {:>11} {:>8} {:>8}",
            "scenario", "requests", "errors", "creates/s", "p50 ms", "p99 ms"
        );
        for r in &rows {
            println!(
                "{:<28} {:>9} {:>7} {:>11.0} {:>8.2} {:>8.2}",
                r.scenario, r.requests, r.errors, r.creates_per_sec, r.p50_ms, r.p99_ms
            );
        }
    }
    Ok(())
}

/// The enqueuer in this process on a free port against `url`, with one tenant (API key
/// [`KEY`]) whose rate limit is lifted. Returns its base URL.
pub(super) async fn start_api(url: &str) -> anyhow::Result<String> {
    start_api_with(url, |_| {}).await
}

/// [`start_api`], its configuration changed by `adjust` last.
pub(super) async fn start_api_with(
    url: &str,
    adjust: impl FnOnce(&mut Config),
) -> anyhow::Result<String> {
    let mut config = Config::default();
    config.redis.url = Secret::new(url.to_owned());
    config.enqueuer.listen = "127.0.0.1:0".parse()?;
    config.enqueuer.rate_limit_per_second = 1_000_000;
    config.enqueuer.rate_limit_burst = 1_000_000;
    config.queue.name = format!("bench-api-{}", std::process::id());
    config.tenants = vec![TenantConfig {
        id: "bench".into(),
        api_key_sha256: hex::encode(Sha256::digest(KEY.as_bytes())),
        processor_secret_key: Secret::new("sk_test_bench"),
    }];
    adjust(&mut config);
    let app = flint_enqueuer::Application::build(&config).await?;
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    Ok(base)
}

/// The port of a `redis://host:port` URL.
pub(super) fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
}

/// The SETs `redis_set_rate` sends.
pub(super) const SET_REQUESTS: u32 = 200_000;

/// `redis-benchmark -t set` requests per second, or `None` when the tool is missing.
pub(super) async fn redis_set_rate(port: u16) -> Option<f64> {
    let out = tokio::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "set",
            "-n",
            &SET_REQUESTS.to_string(),
            "-c",
            "50",
            "-q",
        ])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET: 123456.79 requests per second, p50=0.2 msec" (the line is rewritten with \r).
    let line = text
        .rsplit('\r')
        .next()?
        .lines()
        .find(|l| l.starts_with("SET:"))?
        .to_owned();
    line.trim_start_matches("SET:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn body(n: u64) -> serde_json::Value {
    serde_json::json!({
        "customer": format!("cus_{}", n % 1000),
        "amount": {"value": 1999, "currency": "usd"},
        "purpose": "subscription",
        "initiated_by": {"type": "service", "id": "bench"},
        "metadata": {"n": n.to_string()}
    })
}

async fn create(client: &reqwest::Client, base: &str, n: u64, run: &str) -> bool {
    let sent = client
        .post(base)
        .bearer_auth(KEY)
        .header("Idempotency-Key", format!("{run}-{n}"))
        .json(&body(n))
        .send()
        .await;
    matches!(sent, Ok(r) if r.status() == 202)
}

/// Creates `payments` payments, `in_flight` at a time (a closed loop), the n-th with the body
/// `body(n)` and the Idempotency-Key `{run}-{n}`; fails on the first one not accepted.
pub(super) async fn create_all(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    run: &str,
    payments: usize,
    in_flight: usize,
    body: impl Fn(usize) -> serde_json::Value,
) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for n in 0..payments {
        if set.len() >= in_flight
            && let Some(created) = set.join_next().await
        {
            created??;
        }
        let request = http
            .post(base)
            .bearer_auth(key)
            .header("Idempotency-Key", format!("{run}-{n}"))
            .json(&body(n));
        set.spawn(async move {
            request.send().await?.error_for_status()?;
            anyhow::Ok(())
        });
    }
    while let Some(created) = set.join_next().await {
        created??;
    }
    Ok(())
}

pub(super) struct Measured {
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Measured {
    /// Creates that succeeded.
    pub(super) fn creates(&self) -> usize {
        self.latencies_us.len()
    }

    fn row(mut self, scenario: String, duration: Duration, set_rate: Option<f64>) -> Row {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            if self.latencies_us.is_empty() {
                return f64::NAN;
            }
            self.latencies_us[((self.latencies_us.len() - 1) as f64 * p).round() as usize] as f64
                / 1000.0
        };
        Row {
            scenario,
            requests: self.latencies_us.len() as u64,
            errors: self.errors,
            creates_per_sec: self.latencies_us.len() as f64 / duration.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            redis_set_per_sec: set_rate,
        }
    }
}

pub(super) async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> Measured {
    let run = format!("c{concurrency}-{}", flint_shared::ids::random_token(6));
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, run, counter) = (
            client.clone(),
            base.to_owned(),
            run.clone(),
            Arc::clone(&counter),
        );
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                if create(&client, &base, n, &run).await {
                    latencies.push(started.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    collect(tasks).await
}

async fn fixed_rate(
    client: &reqwest::Client,
    base: &str,
    rate: u64,
    duration: Duration,
) -> Measured {
    let run = format!("r{rate}-{}", flint_shared::ids::random_token(6));
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, base, run) = (client.clone(), base.to_owned(), run.clone());
        tasks.push(tokio::spawn(async move {
            let ok = create(&client, &base, n, &run).await;
            // From when it was due, not when it was sent.
            if ok {
                (vec![due.elapsed().as_micros() as u64], 0)
            } else {
                (Vec::new(), 1)
            }
        }));
    }
    collect(tasks).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>) -> Measured {
    let mut m = Measured {
        latencies_us: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            m.latencies_us.extend(latencies);
            m.errors += errors;
        }
    }
    m
}
