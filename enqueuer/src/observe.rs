//! Health, readiness, metrics and the request metrics middleware.
//!
//! `flint_api_requests_total{route,method,status}` and `flint_api_request_duration_seconds`
//! use the matched route template (`/v1/off_session_payments/{id}`), never the raw path, so
//! label values stay a closed set.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::App;

pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    flint_shared::telemetry::prometheus()
}

pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("flint_api_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(flint_shared::telemetry::latency::API_REQUEST, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Liveness: the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: Redis answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "Redis unreachable", body = String),
))]
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            // The detail is for the log; an unauthenticated probe learns only the state.
            tracing::warn!(error = %e, "not ready: redis unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable").into_response()
        }
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", body = String)))]
pub async fn metrics_text() -> String {
    prometheus().render()
}
