//! `flint-enqueuer`: the Off-Session Payments HTTP API.
//!
//! Other services hand Flint their background charges here. The API is as safe to call as
//! Stripe's: a retried create returns the same payment (`Idempotency-Key`), a malformed one a
//! precise 4xx that changes nothing, another tenant's payment is a 404, and an accepted
//! payment is written with its charge job in one Redis script, so no claimed key is ever left
//! without a job.
//!
//! - `payments`: the `/v1/off_session_payments` handlers; `events`: `/v1/events`;
//!   `webhooks`: `/v1/webhook_endpoints` and redelivery;
//! - the records, indexes and scripts live in `flint_shared::payment::store` (shared with workers);
//! - `auth`: API keys by SHA-256 digest, per-key rate limit;
//! - `error`: the error body; `observe`: health, readiness, metrics;
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json`.

mod auth;
mod error;
mod events;
mod observe;
pub mod openapi;
mod payments;
mod query;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use flint_shared::config::Config;
use flint_shared::payment::Purpose;
use flint_shared::telemetry::catalogue::{self, Role};
use flint_shared::telemetry::ops;
use tokio::net::TcpListener;

/// Shared state of the API.
#[derive(Debug)]
pub struct App {
    auth: auth::Auth,
    store: flint_shared::payment::store::Store,
    webhooks: flint_shared::config::WebhooksConfig,
    body_limit: usize,
}

/// A bound, ready-to-run API (bind first, so tests can use port 0).
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

pub fn router(app: Arc<App>, readiness: ops::Readiness) -> Router {
    Router::new()
        .route(
            "/v1/off_session_payments",
            post(payments::create).get(payments::list),
        )
        .route("/v1/off_session_payments/{id}", get(payments::retrieve))
        .route(
            "/v1/off_session_payments/{id}/cancel",
            post(payments::cancel),
        )
        .route(
            "/v1/off_session_payments/{id}/resume",
            post(payments::resume),
        )
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::retrieve))
        .route("/v1/events/{id}/redeliver", post(webhooks::redeliver))
        .route(
            "/v1/webhook_endpoints",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            get(webhooks::retrieve)
                .post(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/webhook_endpoints/{id}/rotate_secret",
            post(webhooks::rotate_secret),
        )
        .route("/openapi.json", get(openapi::serve))
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(axum::middleware::from_fn(observe::track))
        // Probes and scrapes are not API traffic: merged after the metrics layer, they are
        // neither counted in the API's request rate nor in its error ratio or latency.
        .merge(ops::router(readiness))
        .with_state(app)
}

impl Application {
    /// Binds `[enqueuer] listen` and prepares the API; Redis is connected on first use, so the
    /// API starts (and answers 503) while Redis is down.
    pub async fn build(config: &Config) -> Result<Application, std::io::Error> {
        observe::prometheus();
        catalogue::describe(Role::Enqueuer);
        for purpose in Purpose::ALL {
            catalogue::zero(
                catalogue::PAYMENTS_CREATED,
                &[("purpose", purpose.as_str())],
            );
        }
        catalogue::zero(catalogue::IDEMPOTENT_REPLAYS, &[]);
        let target = config.redis.target();
        let readiness = ops::Readiness::new(target.clone(), config.redis.allow_eviction);
        let e = &config.enqueuer;
        let app = App {
            auth: auth::Auth::new(&config.tenants, e.rate_limit_per_second, e.rate_limit_burst),
            store: flint_shared::payment::store::Store::new(
                target,
                &config.queue.name,
                Duration::from_secs(e.idempotency_retention_secs),
                Duration::from_secs(u64::from(e.payment_retention_days) * 86_400),
            )
            .with_partitions(config.queue.partitions)
            .with_webhook_queue(&config.webhooks.queue)
            .with_replica_acks(
                config.redis.min_replicas_acked,
                config.redis.min_replicas_timeout(),
            )
            .with_storage_format(config.redis.storage_format)
            .with_unfiltered_indexes(config.redis.unfiltered_indexes),
            webhooks: config.webhooks.clone(),
            body_limit: e.body_limit_bytes,
        };
        let listener = TcpListener::bind(e.listen).await?;
        Ok(Application {
            listener,
            router: router(Arc::new(app), readiness),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "enqueuer listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
