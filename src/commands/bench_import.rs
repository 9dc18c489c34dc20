//! `flint bench import`: a billing run of N rows through `flint import` (the real binary, as a
//! child process), against the API's own closed-loop create rate at the same concurrency,
//! measured in the same run on the same Redis and API.
//!
//! The enqueuer runs in this process with its rate limit lifted; the file is a CSV with one
//! payment per row, each scheduled a day ahead (so no worker is needed and nothing charges).
//! The import is run twice: the second run creates nothing and reports every row as already
//! done, which is what a re-run after a failure costs.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench_api::{KEY, closed_loop, start_api};
use super::redis_child::RedisChild;
use crate::cli::BenchImportArgs;

pub async fn run(args: &BenchImportArgs) -> anyhow::Result<()> {
    if args.rows == 0 || args.concurrency == 0 {
        bail!("--rows and --concurrency must be at least 1");
    }
    let redis = RedisChild::start()?;
    let api = start_api(&redis.url()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    // The baseline: what the API creates per second at this concurrency, sent from here.
    let baseline_for = Duration::from_secs(args.baseline_seconds);
    let measured = closed_loop(
        &client,
        &format!("{api}/v1/off_session_payments"),
        args.concurrency,
        baseline_for,
    )
    .await;
    let baseline = measured.creates() as f64 / baseline_for.as_secs_f64();

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("run.csv");
    let later = flint_shared::time::Timestamp::now()
        .plus(Duration::from_secs(86_400))
        .to_string();
    let mut csv = String::with_capacity(args.rows * 120);
    csv.push_str("idempotency_key,customer,amount,currency,purpose,invoice_id,charge_at\n");
    for n in 0..args.rows {
        csv.push_str(&format!(
            "bench-{n},cus_{},{},usd,subscription,in_{n},{later}\n",
            n % 1000,
            1000 + n % 9000
        ));
    }
    std::fs::write(&file, csv)?;

    let exe = std::env::current_exe().context("cannot find the flint binary")?;
    let mut runs = Vec::new();
    for label in ["first run", "re-run"] {
        let started = Instant::now();
        let out = tokio::process::Command::new(&exe)
            .arg("import")
            .arg(&file)
            .args(["--concurrency", &args.concurrency.to_string()])
            .env("FLINT_API_URL", &api)
            .env("FLINT_API_KEY", KEY)
            .output()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let summary = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            bail!(
                "flint import failed: {summary} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        runs.push((label, seconds, summary));
    }
    println!(
        "baseline: the API's closed-loop creates at {} in flight, sent from this process: {baseline:.0}/s",
        args.concurrency
    );
    println!(
        "{:<10} {:>8} {:>9} {:>8} {:>17}  summary",
        "import", "rows", "seconds", "rows/s", "vs baseline"
    );
    for (label, seconds, summary) in runs {
        let rate = args.rows as f64 / seconds;
        println!(
            "{label:<10} {:>8} {seconds:>9.1} {rate:>8.0} {:>16.2}×  {summary}",
            args.rows,
            rate / baseline
        );
    }
    Ok(())
}
