//! `flint-worker` (startup errors are `anyhow`: they end the process with a message): apalis workers that charge saved payment methods through Flint's queue.
//!
//! - [`charge`]: one job = one attempt of one payment (see its docs for the steps);
//! - [`sweeper`]: one worker at a time proves every payment has a way forward, and restores
//!   the job of any that has none;
//! - [`webhooks`]: events delivered to tenants' endpoints, on their own queue;
//! - this file: building the worker (queue backend, one processor client per tenant, apalis
//!   concurrency), its `/healthz`, `/readyz` and `/metrics`, and graceful shutdown.

pub mod charge;
pub mod sweeper;
pub mod webhooks;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use charge::Pipeline;
use charge::decide::Policy;
use flint_queue::{LostLeases, Outcome, Queue, QueueConfig};
use flint_shared::config::Config;
use flint_shared::payment::job::ChargeJob;
use flint_shared::payment::network::CardRules;
use flint_shared::payment::store::Store;
use flint_shared::processor::Processor;
use flint_shared::processor::stripe::{StripeClient, StripeConfig};
use flint_shared::telemetry::catalogue;
use tokio::net::TcpListener;

/// The apalis handler. apalis drives every in-flight job inside its one worker task, so on its
/// own all attempts of a process would run on one thread; each attempt is spawned so that they
/// spread over the runtime's threads.
pub async fn charge_job<P: Processor + 'static>(
    job: ChargeJob,
    lost: LostLeases,
    pipeline: Data<Arc<Pipeline<P>>>,
) -> Outcome {
    metrics::gauge!(catalogue::JOBS_IN_FLIGHT.name).increment(1.0);
    let pipeline = Arc::clone(&pipeline);
    let run = {
        let (pipeline, job) = (Arc::clone(&pipeline), job.clone());
        tokio::spawn(async move { pipeline.run(&job, lost).await })
    };
    let outcome = match run.await {
        Ok(outcome) => outcome,
        Err(e) => {
            // A bug: the payment requires attention (its attempt stays open; a resume settles
            // it) rather than running the same panic again and again.
            tracing::error!(payment_id = %job.payment_id, error = %e, "charge attempt panicked");
            match pipeline.internal_error(&job, &e.to_string()).await {
                Ok(true) => Outcome::Complete,
                Ok(false) | Err(_) => {
                    Outcome::RetryAt(std::time::SystemTime::now() + Duration::from_secs(10))
                }
            }
        }
    };
    metrics::gauge!(catalogue::JOBS_IN_FLIGHT.name).decrement(1.0);
    outcome
}

/// The retry and give-up rules of `[worker]`.
pub fn policy(config: &Config) -> Policy {
    let w = &config.worker;
    Policy {
        retry_delays: w
            .retry_delays_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        unknown_outcome_limit: Duration::from_secs(w.unknown_outcome_limit_secs),
        misconfigured_limit: Duration::from_secs(w.misconfigured_limit_secs),
        paused_expiry: Duration::from_secs(u64::from(w.paused_expiry_days) * 86_400),
        max_lost_leases: w.max_lost_leases,
        send_window: send_window(config),
        request_lifetime: Duration::from_millis(config.processor.timeout_ms)
            + REQUEST_LIFETIME_MARGIN,
    }
}

/// A worker's run until it stops.
type Run = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Added to the processor client's timeout for how long a request can still take effect.
const REQUEST_LIFETIME_MARGIN: Duration = Duration::from_secs(30);

/// Long enough for an attempt's two charging requests (create, then confirm after a lost
/// answer), each with all its retries and their longest waits, and a minute of rate-limit
/// turns. An attempt still sending when it closes stops and is continued later: safe, only
/// slower.
fn send_window(config: &Config) -> Duration {
    let p = &config.processor;
    let tries = u32::try_from(p.max_network_retries)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let per_try = Duration::from_millis(p.timeout_ms) + Duration::from_secs(5);
    (per_try * tries) * 2 + Duration::from_secs(60)
}

/// The payment store as `[enqueuer]` configures it (the API and the workers share it).
pub fn store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::new(
        config.redis.target(),
        &config.queue.name,
        Duration::from_secs(config.enqueuer.idempotency_retention_secs),
        Duration::from_secs(u64::from(config.enqueuer.payment_retention_days) * 86_400),
    )
    .with_partitions(config.queue.partitions)
    .with_webhook_queue(&config.webhooks.queue)
    .with_replica_acks(
        config.redis.min_replicas_acked,
        config.redis.min_replicas_timeout(),
    )
    .with_storage_format(config.redis.storage_format)
    .with_unfiltered_indexes(config.redis.unfiltered_indexes))
}

/// The charge pipeline with one Stripe client per tenant, each under the fleet's rate limit.
pub fn stripe_pipeline(config: &Config) -> anyhow::Result<Pipeline<StripeClient>> {
    let target = config.redis.target();
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
                target.clone(),
                &config.queue.name,
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
    Ok(Pipeline::new(
        store(config)?,
        processors,
        policy(config),
        CardRules::new(target, &config.queue.name),
    ))
}

/// A built worker: its queues (a charge queue and a webhook queue per partition), its
/// pipeline and its bound health/metrics listener.
#[derive(Debug)]
pub struct WorkerApp {
    queues: Vec<Queue>,
    pipeline: Arc<Pipeline<StripeClient>>,
    webhook_queues: Vec<Queue>,
    /// One per partition: each pushes deliveries to its partition's webhook queue.
    webhooks: Vec<Arc<webhooks::Webhooks>>,
    webhook_concurrency: usize,
    sweeper: sweeper::Sweeper,
    listener: TcpListener,
    readiness: flint_shared::telemetry::ops::Readiness,
    /// The store and the tenants whose payments requiring attention are counted.
    attention: (Store, Vec<String>),
    concurrency: usize,
    grace: Duration,
}

impl WorkerApp {
    pub async fn build(config: &Config) -> anyhow::Result<WorkerApp> {
        flint_shared::telemetry::prometheus();
        catalogue::describe(catalogue::Role::Worker);
        charge::zero_metrics();
        webhooks::zero_metrics();
        sweeper::zero_metrics();
        flint_shared::processor::stripe::zero_metrics();
        let w = &config.worker;
        metrics::gauge!(catalogue::JOBS_IN_FLIGHT.name).set(0.0);
        for queue in [&config.queue.name, &config.webhooks.queue] {
            metrics::counter!(catalogue::QUEUE_STALE_OUTCOMES.name, "queue" => queue.clone())
                .increment(0);
        }
        let target = config.redis.target();
        flint_shared::redis_settings::check_at_start(&target, config.redis.allow_eviction)
            .await
            .context("refusing to start")?;
        let partitions = store(config)?;
        partitions
            .verify_partitions()
            .await
            .context("refusing to start")?;
        let partitions = partitions.partitions().clone();
        let pipeline = Arc::new(stripe_pipeline(config)?);
        let (mut queues, mut webhook_queues, mut webhooks) = (vec![], vec![], vec![]);
        let delivery_store = Arc::new(store(config)?);
        for (p, tag) in (0u16..).zip(partitions.tags()) {
            let tuned = |queue: QueueConfig| {
                queue
                    .in_partition(p, tag.clone())
                    .with_lease(Duration::from_secs(w.lease_secs))
                    .with_max_lost_leases(w.max_lost_leases)
                    .with_consumer_prefix(w.name.clone())
            };
            let queue = Queue::connect_to(&target, tuned(QueueConfig::new(&config.queue.name)))
                .await
                .context("cannot reach redis")?;
            let webhook_queue =
                Queue::connect_to(&target, tuned(QueueConfig::new(&config.webhooks.queue)))
                    .await
                    .context("cannot reach redis")?;
            webhooks.push(Arc::new(
                webhooks::Webhooks::new(
                    delivery_store.clone(),
                    webhook_queue.clone(),
                    &config.webhooks,
                )
                .context("cannot make the webhook HTTP client")?,
            ));
            queues.push(queue);
            webhook_queues.push(webhook_queue);
        }
        let sweeper = sweeper::Sweeper::new(
            store(config)?,
            format!(
                "sweeper-{}-{}",
                w.name.as_deref().unwrap_or("worker"),
                flint_shared::ids::random_token(12)
            ),
            Duration::from_secs(w.sweep_interval_secs),
        )
        .with_tenants(config.tenants.iter().map(|t| t.id.clone()).collect());
        let listener = TcpListener::bind(w.listen)
            .await
            .with_context(|| format!("cannot listen on {}", w.listen))?;
        // Each partition has its own fetch loop, so none waits behind another's backlog;
        // the process's concurrency is shared out between them.
        let share = |total: usize| total.div_ceil(partitions.count()).max(1);
        Ok(WorkerApp {
            queues,
            pipeline,
            webhook_queues,
            webhooks,
            webhook_concurrency: share(config.webhooks.concurrency),
            sweeper,
            listener,
            attention: (
                store(config)?,
                config.tenants.iter().map(|t| t.id.clone()).collect(),
            ),
            readiness: flint_shared::telemetry::ops::Readiness::new(
                target,
                config.redis.allow_eviction,
            ),
            concurrency: share(w.concurrency),
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
        let http: axum::Router = flint_shared::telemetry::ops::router(self.readiness);
        let mut http_stop = stop_rx.clone();
        let listener = self.listener;
        let server = tokio::spawn(async move {
            axum::serve(listener, http)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let reporters: Vec<_> = self
            .queues
            .iter()
            .map(|queue| {
                flint_queue::metrics::spawn_reporter(queue.clone(), Duration::from_secs(5))
            })
            .collect();
        let webhook_reporter =
            webhooks::spawn_reporter(self.webhook_queues.clone(), Duration::from_secs(5));
        let attention_reporter = sweeper::spawn_attention_reporter(
            self.attention.0,
            self.attention.1,
            Duration::from_secs(5),
        );
        let sweeper = tokio::spawn(self.sweeper.run(stop_rx.clone()));
        // A charge worker and a webhook worker per partition, all stopped by the same signal.
        let mut runs: Vec<Run> = Vec::new();
        for (queue, (webhook_queue, webhooks)) in self
            .queues
            .iter()
            .zip(self.webhook_queues.iter().zip(self.webhooks))
        {
            let backend = queue.backend::<ChargeJob>();
            let name = format!("charge-{}", backend.consumer());
            let worker = WorkerBuilder::new(name)
                .backend(backend)
                .data(self.pipeline.clone())
                .concurrency(self.concurrency)
                .build(charge_job::<StripeClient>);
            let mut stop = stop_rx.clone();
            runs.push(Box::pin(async move {
                worker
                    .run_until(async move {
                        let _ = stop.wait_for(|s| *s).await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await
                    .context("charge worker")
            }));
            let hook_backend = webhook_queue.backend::<flint_shared::webhook::job::WebhookJob>();
            let hook_name = format!("webhooks-{}", hook_backend.consumer());
            let hook_worker = WorkerBuilder::new(hook_name)
                .backend(hook_backend)
                .data(webhooks)
                .concurrency(self.webhook_concurrency)
                .build(webhooks::webhook_job);
            let mut stop = stop_rx.clone();
            runs.push(Box::pin(async move {
                hook_worker
                    .run_until(async move {
                        let _ = stop.wait_for(|s| *s).await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await
                    .context("webhook worker")
            }));
        }
        let grace = self.grace;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "stopping: no new jobs; finishing in-flight attempts"
            );
            let _ = stop_tx.send(true);
        });
        let run = async {
            futures::future::join_all(runs)
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>()
                .map(|_| ())
        };
        let mut deadline_stop = stop_rx;
        tokio::select! {
            result = run => result?,
            () = async move {
                let _ = deadline_stop.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("grace period over; remaining attempts are released with their leases"),
        }
        for reporter in reporters {
            reporter.abort();
        }
        webhook_reporter.abort();
        attention_reporter.abort();
        let _ = sweeper.await;
        let _ = server.await;
        Ok(())
    }
}
