//! `flint-worker` (startup errors are `anyhow`: they end the process with a message): apalis workers that charge saved payment methods through Flint's queue.
//!
//! - `pipeline`: one job = one attempt of one payment (see its docs for the steps);
//! - this file: building the worker (queue backend, one processor client per tenant, apalis
//!   concurrency), its `/healthz`, `/readyz` and `/metrics`, and graceful shutdown.

pub mod pipeline;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use axum::Router;
use axum::routing::get;
use flint_queue::{Outcome, Queue, QueueConfig};
use flint_shared::config::Config;
use flint_shared::payment::store::Store;
use flint_shared::processor::stripe::{StripeClient, StripeConfig};
use pipeline::{ChargeJob, Pipeline};
use tokio::net::TcpListener;

/// The apalis handler. apalis drives every in-flight job inside its one worker task, so on its
/// own all attempts of a process would run on one thread; each attempt is spawned so that they
/// spread over the runtime's threads.
async fn charge(job: ChargeJob, pipeline: Data<Arc<Pipeline>>) -> Outcome {
    metrics::gauge!("flint_jobs_in_flight").increment(1.0);
    let pipeline = Arc::clone(&pipeline);
    let payment_id = job.payment_id.clone();
    let outcome = tokio::spawn(async move { pipeline.run(&job).await })
        .await
        .unwrap_or_else(|e| {
            // A panic mid-attempt leaves the payment in `processing`; the job's next run
            // continues that attempt with the same idempotency keys.
            tracing::error!(payment_id = %payment_id, error = %e, "charge attempt panicked; it runs again");
            Outcome::RetryAt(std::time::SystemTime::now() + Duration::from_secs(10))
        });
    metrics::gauge!("flint_jobs_in_flight").decrement(1.0);
    outcome
}

/// A built worker: its queue, its pipeline and its bound health/metrics listener.
#[derive(Debug)]
pub struct WorkerApp {
    queue: Queue,
    pipeline: Arc<Pipeline>,
    listener: TcpListener,
    concurrency: usize,
    grace: Duration,
}

impl WorkerApp {
    pub async fn build(config: &Config) -> anyhow::Result<WorkerApp> {
        flint_shared::telemetry::prometheus();
        let w = &config.worker;
        let queue_config = QueueConfig::new(&w.queue).with_lease(Duration::from_secs(w.lease_secs));
        let queue = Queue::connect(config.redis.url.expose(), queue_config)
            .await
            .context("cannot reach redis")?;
        let redis_client =
            redis::Client::open(config.redis.url.expose()).context("invalid redis.url")?;
        let processors = config
            .tenants
            .iter()
            .map(|t| {
                let mut stripe = StripeConfig::new(
                    config.processor.api_base.clone(),
                    t.processor_secret_key.clone(),
                );
                stripe
                    .stripe_version
                    .clone_from(&config.processor.stripe_version);
                stripe.timeout = Duration::from_millis(config.processor.timeout_ms);
                stripe.max_retries = config.processor.max_network_retries;
                let limiter = flint_shared::processor::limit::RateLimiter::new(
                    redis_client.clone(),
                    &w.queue,
                    t.processor_secret_key.expose(),
                    config.processor.rate_limit_per_second,
                    config.processor.rate_limit_burst,
                );
                (
                    t.id.clone(),
                    StripeClient::new(stripe).with_rate_limit(limiter),
                )
            })
            .collect::<HashMap<_, _>>();
        let client = redis::Client::open(config.redis.url.expose()).context("invalid redis.url")?;
        let store = Store::new(
            client,
            &w.queue,
            Duration::from_secs(config.enqueuer.idempotency_retention_secs),
            Duration::from_secs(u64::from(config.enqueuer.payment_retention_days) * 86_400),
        );
        let pipeline = Arc::new(Pipeline {
            store,
            processors,
            retry_delays: w
                .retry_delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            rules: flint_shared::payment::network::CardRules::new(redis_client.clone(), &w.queue),
            cards: quick_cache::sync::Cache::new(pipeline::CARD_CACHE_ENTRIES),
        });
        let listener = TcpListener::bind(w.listen)
            .await
            .with_context(|| format!("cannot listen on {}", w.listen))?;
        Ok(WorkerApp {
            queue,
            pipeline,
            listener,
            concurrency: w.concurrency,
            grace: Duration::from_secs(w.shutdown_grace_secs),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Works until `shutdown`, then stops fetching and lets in-flight attempts finish within
    /// the grace period; what is left is released with its lease.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let queue_for_ready = self.queue.clone();
        let http = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(move || {
                    let q = queue_for_ready.clone();
                    async move {
                        match q.stats().await {
                            Ok(_) => (axum::http::StatusCode::OK, "ready".to_owned()),
                            Err(e) => (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                format!("redis unreachable: {e}"),
                            ),
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                get(|| async { flint_shared::telemetry::prometheus().render() }),
            );
        let mut http_stop = stop_rx.clone();
        let listener = self.listener;
        let server = tokio::spawn(async move {
            axum::serve(listener, http)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let reporter =
            flint_queue::metrics::spawn_reporter(self.queue.clone(), Duration::from_secs(5));
        let backend = self.queue.backend::<ChargeJob>();
        let name = format!("charge-{}", backend.consumer());
        let worker = WorkerBuilder::new(name)
            .backend(backend)
            .data(self.pipeline)
            .concurrency(self.concurrency)
            .build(charge);
        let mut worker_stop = stop_rx.clone();
        let grace = self.grace;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "stopping: no new jobs; finishing in-flight attempts"
            );
            let _ = stop_tx.send(true);
        });
        let run = worker.run_until(async move {
            let _ = worker_stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        });
        let mut deadline_stop = stop_rx;
        tokio::select! {
            result = run => result.context("worker")?,
            () = async move {
                let _ = deadline_stop.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("grace period over; remaining attempts are released with their leases"),
        }
        reporter.abort();
        let _ = server.await;
        Ok(())
    }
}
