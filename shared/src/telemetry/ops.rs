//! The operations endpoints every Flint process serves, the same in the enqueuer and the
//! worker: `/healthz` (the process answers), `/readyz` (Redis answers and its settings are
//! safe; 503 otherwise) and `/metrics` (Prometheus text format).
//!
//! The probes are unauthenticated, so a failed readiness says only which kind of failure it
//! is; the detail goes to the log.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::redis_settings::{self, CheckError};
use crate::redis_target::{LazyConnection, RedisTarget, Timeouts};

/// A probe that takes longer than this says "not ready" rather than hanging the prober (well
/// inside a kubelet's usual probe timeout, so the prober sees the 503).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/readyz` asks.
#[derive(Debug)]
pub struct Readiness {
    redis: LazyConnection,
    allow_eviction: bool,
}

impl Readiness {
    /// Asks the Redis at `target`: the server, or every primary of a cluster.
    pub fn new(target: RedisTarget, allow_eviction: bool) -> Readiness {
        Readiness {
            // Well inside the probe's own timeout, so that one unreachable cluster node cannot
            // keep the connection from ever being made.
            redis: LazyConnection::new(
                target,
                Timeouts {
                    connect: Duration::from_millis(500),
                    response: PROBE_TIMEOUT,
                },
            ),
            allow_eviction,
        }
    }

    async fn check(&self) -> Result<(), CheckError> {
        let mut conn = self.redis.get().await.map_err(CheckError::Unreachable)?;
        let nodes = redis_settings::read(&mut conn)
            .await
            .map_err(CheckError::Unreachable)?;
        match redis_settings::judge_all(&nodes, self.allow_eviction).refusal {
            Some(reason) => Err(CheckError::Unsafe(reason)),
            None => Ok(()),
        }
    }
}

/// `/healthz`, `/readyz` and `/metrics`, to be merged into a binary's own router.
pub fn router<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::new(readiness))
}

/// Liveness: the process serves.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = String))))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: Redis answers, is a primary, and is configured so that it cannot lose jobs
/// silently.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "Redis unreachable, or its settings unsafe", body = String),
)))]
pub async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let Ok(result) = tokio::time::timeout(PROBE_TIMEOUT, readiness.check()).await else {
        tracing::warn!(timeout = ?PROBE_TIMEOUT, "not ready: redis did not answer in time");
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable").into_response();
    };
    match result {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(CheckError::Unreachable(e)) => {
            tracing::warn!(error = %e, "not ready: redis unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable").into_response()
        }
        Err(CheckError::Unsafe(reason)) => {
            tracing::warn!("not ready: {reason}");
            (StatusCode::SERVICE_UNAVAILABLE, "redis settings unsafe").into_response()
        }
    }
}

/// Prometheus metrics (text exposition format).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", body = String))))]
pub async fn metrics_text() -> String {
    super::prometheus().render()
}
