//! `flint dev`: the whole stack on one machine, for trying Flint and for demos.

use std::time::Duration;

use anyhow::Context;
use flint_sandbox::Sandbox;
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_worker::WorkerApp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::redis_child::RedisChild;
use crate::cli::DevArgs;

const DEMO_API_KEY: &str = "flint_dev_demo_key";
const SANDBOX_KEY: &str = "sk_test_flint";

pub async fn run(mut config: Config, args: &DevArgs) -> anyhow::Result<()> {
    // A terminal, not a log collector: readable lines.
    config.log.format = flint_shared::config::LogFormat::Text;
    flint_shared::telemetry::init(&config.log);
    let _redis_child;
    let redis_url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            let child = RedisChild::start()?;
            let url = child.url();
            _redis_child = child;
            url
        }
    };

    let mut sandbox_config = config.sandbox.clone();
    sandbox_config.listen = "127.0.0.1:0".parse()?;
    sandbox_config.api_keys = vec![Secret::new(SANDBOX_KEY)];
    let sandbox = Sandbox::bind(sandbox_config).await?;
    let sandbox_url = sandbox.base_url();
    tokio::spawn(sandbox.run(std::future::pending()));

    config.redis.url = Secret::new(redis_url.clone());
    // Its own Redis only: a cluster configured in the environment is not dev's to write to.
    config.redis.cluster_nodes.clear();
    config.enqueuer.listen = args.api_listen;
    config.worker.listen = "127.0.0.1:0".parse()?;
    // Short enough to watch: soft declines retry after 2 s, then 5 s.
    config.worker.retry_delays_ms = vec![2_000, 5_000];
    config.worker.lease_secs = 5;
    config.processor.api_base = sandbox_url.clone();
    // Webhook receivers on this machine (http://127.0.0.1:…) are what local development uses.
    config.webhooks.allow_http = true;
    config.webhooks.allow_private_networks = true;
    config.tenants = vec![TenantConfig {
        id: "demo".into(),
        api_key_sha256: hex::encode(Sha256::digest(DEMO_API_KEY.as_bytes())),
        processor_secret_key: Secret::new(SANDBOX_KEY),
    }];

    let api = flint_enqueuer::Application::build(&config)
        .await
        .with_context(|| format!("cannot listen on {}", args.api_listen))?;
    let api_url = format!("http://{}", api.local_addr());
    tokio::spawn(api.run(super::shutdown_signal()));
    let mut worker_urls = Vec::new();
    for _ in 0..2 {
        let worker = WorkerApp::build(&config).await?;
        worker_urls.push(format!("http://{}", worker.local_addr()));
        tokio::spawn(worker.run(super::shutdown_signal()));
    }

    let http = reqwest::Client::new();
    let customers = demo_customers(&http, &sandbox_url)
        .await
        .context("cannot create the demo customers")?;
    println!("Flint is running:");
    println!("  API          {api_url}   (API key: {DEMO_API_KEY})");
    println!("  OpenAPI      {api_url}/openapi.json");
    println!("  sandbox      {sandbox_url}   (Stripe key: {SANDBOX_KEY})");
    println!("  redis        {redis_url}");
    for (i, w) in worker_urls.iter().enumerate() {
        println!("  worker {}     {w}/metrics", i + 1);
    }
    println!("Demo customers (their default card decides the outcome):");
    for (card, customer) in &customers {
        println!("  {customer}  {card}");
    }
    println!(
        "Try: curl {api_url}/v1/off_session_payments -H 'Authorization: Bearer {DEMO_API_KEY}' -H 'Idempotency-Key: demo-1' \\\n       -H 'content-type: application/json' -d '{{\"customer\": \"{}\", \"amount\": {{\"value\": 2000, \"currency\": \"usd\"}}, \"purpose\": \"subscription\", \"initiated_by\": {{\"type\": \"service\", \"id\": \"me\"}}}}'",
        customers[0].1
    );
    if args.demo {
        demo(&http, &api_url, &customers).await?;
    }
    println!("Ctrl-C stops everything.");
    super::shutdown_signal().await;
    Ok(())
}

/// One sandbox customer per interesting card, each card its default.
async fn demo_customers(
    http: &reqwest::Client,
    sandbox: &str,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for card in [
        "pm_card_visa",
        "pm_card_chargeDeclinedInsufficientFunds",
        "pm_card_chargeDeclinedLostCard",
        "pm_card_authenticationRequired",
    ] {
        let customer: Value = http
            .post(format!("{sandbox}/v1/customers"))
            .bearer_auth(SANDBOX_KEY)
            .form(&[
                ("payment_method", card),
                ("invoice_settings[default_payment_method]", card),
                ("name", card),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        out.push((
            card,
            customer["id"].as_str().context("customer id")?.to_owned(),
        ));
    }
    Ok(out)
}

/// Sends one payment per demo customer and prints how each ended.
async fn demo(
    http: &reqwest::Client,
    api: &str,
    customers: &[(&'static str, String)],
) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for (i, (card, customer)) in customers.iter().enumerate() {
        let body = json!({
            "customer": customer,
            "amount": {"value": 1000 + i as i64 * 100, "currency": "usd"},
            "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "flint-dev-demo"},
            "retry_policy": {"strategy": "scheduled", "max_attempts": 2, "window_hours": 1}
        });
        let created: Value = http
            .post(format!("{api}/v1/off_session_payments"))
            .bearer_auth(DEMO_API_KEY)
            .header(
                "Idempotency-Key",
                format!("demo-{}", flint_shared::ids::random_token(8)),
            )
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push((
            *card,
            created["id"].as_str().context("payment id")?.to_owned(),
        ));
    }
    println!("Demo payments:");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (card, id) in ids {
        let ended = loop {
            let p: Value = http
                .get(format!("{api}/v1/off_session_payments/{id}"))
                .bearer_auth(DEMO_API_KEY)
                .send()
                .await?
                .json()
                .await?;
            let status = p["status"].as_str().unwrap_or("").to_owned();
            if ["succeeded", "failed", "paused", "canceled"].contains(&status.as_str())
                || tokio::time::Instant::now() > deadline
            {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!(
            "  {id}  {card:<42} {:<10} attempts: {}  {}",
            ended["status"].as_str().unwrap_or("?"),
            ended["attempts"].as_array().map_or(0, Vec::len),
            ended["last_error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
