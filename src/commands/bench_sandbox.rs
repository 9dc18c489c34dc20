//! `flint bench sandbox`: how many PaymentIntents the sandbox creates and confirms per second.
//!
//! The sandbox must never be what limits Flint's own benchmarks. Each scenario runs the same
//! closed-loop load (N requests in flight, each sent as soon as the previous one returns) and is
//! reported next to the baseline: the same server's trivial health endpoint, measured in the
//! same run, so the ratio says what the Stripe logic costs on this machine today.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flint_shared::config::Config;
use serde::Serialize;

use crate::cli::BenchSandboxArgs;

const KEY: &str = "sk_test_flint";

#[derive(Debug, Serialize)]
struct Row {
    scenario: &'static str,
    concurrency: usize,
    requests: u64,
    errors: u64,
    requests_per_sec: f64,
    ratio_to_baseline: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(config: Config, args: &BenchSandboxArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.seconds == 0 {
        bail!("--concurrency and --seconds must be at least 1");
    }
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let mut sandbox_config = config.sandbox;
            sandbox_config.listen = "127.0.0.1:0".parse()?;
            sandbox_config.faults = Default::default();
            sandbox_config.api_keys = vec![flint_shared::config::Secret::new(KEY)];
            let sandbox = flint_sandbox::Sandbox::bind(sandbox_config).await?;
            let url = sandbox.base_url();
            tokio::spawn(sandbox.run(std::future::pending()));
            url
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let customer = setup_customer(&client, &base)
        .await
        .context("cannot prepare a customer with a saved card")?;
    let duration = Duration::from_secs(args.seconds);

    let health = format!("{base}/__sandbox/health");
    let baseline = load(&client, args.concurrency, duration, move |c, _| {
        c.get(health.clone())
    })
    .await;
    let intents = format!("{base}/v1/payment_intents");
    let (cus, pm) = customer;
    let confirm = load(&client, args.concurrency, duration, move |c, n| {
        c.post(intents.clone())
            .bearer_auth(KEY)
            .header(
                "idempotency-key",
                format!("bench-{n}-{}", std::process::id()),
            )
            .form(&[
                ("amount", "1999"),
                ("currency", "usd"),
                ("customer", cus.as_str()),
                ("payment_method", pm.as_str()),
                ("confirm", "true"),
                ("off_session", "true"),
            ])
    })
    .await;

    let base_rate = baseline.rate(duration);
    let rows = [
        baseline.row(
            "baseline: GET /__sandbox/health",
            args.concurrency,
            duration,
            base_rate,
        ),
        confirm.row(
            "POST /v1/payment_intents confirm=true off_session=true",
            args.concurrency,
            duration,
            base_rate,
        ),
    ];
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        println!(
            "{:<58} {:>6} {:>9} {:>7} {:>10} {:>7} {:>8} {:>8}",
            "scenario", "conc", "requests", "errors", "req/s", "ratio", "p50 ms", "p99 ms"
        );
        for r in &rows {
            println!(
                "{:<58} {:>6} {:>9} {:>7} {:>10.0} {:>7.2} {:>8.2} {:>8.2}",
                r.scenario,
                r.concurrency,
                r.requests,
                r.errors,
                r.requests_per_sec,
                r.ratio_to_baseline,
                r.p50_ms,
                r.p99_ms
            );
        }
    }
    Ok(())
}

async fn setup_customer(client: &reqwest::Client, base: &str) -> anyhow::Result<(String, String)> {
    let customer: serde_json::Value = client
        .post(format!("{base}/v1/customers"))
        .bearer_auth(KEY)
        .form(&[("name", "bench")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let cus = customer["id"].as_str().context("customer id")?.to_owned();
    let pm: serde_json::Value = client
        .post(format!("{base}/v1/payment_methods/pm_card_visa/attach"))
        .bearer_auth(KEY)
        .form(&[("customer", cus.as_str())])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        cus,
        pm["id"].as_str().context("payment method id")?.to_owned(),
    ))
}

struct Measured {
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Measured {
    fn rate(&self, duration: Duration) -> f64 {
        self.latencies_us.len() as f64 / duration.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn row(
        &self,
        scenario: &'static str,
        concurrency: usize,
        duration: Duration,
        baseline_rate: f64,
    ) -> Row {
        Row {
            scenario,
            concurrency,
            requests: self.latencies_us.len() as u64,
            errors: self.errors,
            requests_per_sec: self.rate(duration),
            ratio_to_baseline: self.rate(duration) / baseline_rate,
            p50_ms: self.percentile_ms(0.50),
            p99_ms: self.percentile_ms(0.99),
        }
    }
}

/// Closed-loop load: `concurrency` workers send requests back to back for `duration`.
async fn load<F>(
    client: &reqwest::Client,
    concurrency: usize,
    duration: Duration,
    request: F,
) -> Measured
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, request, counter) =
            (client.clone(), Arc::clone(&request), Arc::clone(&counter));
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                match request(&client, n).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(started.elapsed().as_micros() as u64);
                    }
                    Ok(_) | Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut measured = Measured {
        latencies_us: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            measured.latencies_us.extend(latencies);
            measured.errors += errors;
        }
    }
    measured.latencies_us.sort_unstable();
    measured
}
