//! `/__sandbox/…`: controls that are not part of Stripe's API, kept under their own prefix so
//! that nothing in `/v1` differs from Stripe. No authentication: the sandbox is a local tool.
//!
//! - `GET /__sandbox/health`
//! - `GET /__sandbox/faults`, `POST /__sandbox/faults` (JSON [`FaultConfig`], missing fields take
//!   their defaults, unknown fields are refused)
//! - `POST /__sandbox/reset`: back to the faults the sandbox started with.
//! - `GET /__sandbox/stats`: `{"requests": n, "rate_limited": n}`: `/v1` requests received, and
//!   those the rate limiter refused.
//! - `POST /__sandbox/idempotency/expire`: every account forgets its finished idempotency keys at
//!   once, as Stripe does after its retention, so a client's handling of a forgotten key can be
//!   tested without waiting a day. Answers `{"forgotten": n}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use flint_shared::config::FaultConfig;
use http::StatusCode;
use serde_json::{Value, json};

use crate::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/reset", post(reset))
        .route("/stats", get(stats))
        .route("/idempotency/expire", post(expire_idempotency))
}

async fn expire_idempotency(State(app): State<Arc<App>>) -> Json<Value> {
    let mut forgotten = 0;
    for (_, account) in app.accounts.values() {
        forgotten += account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idempotency
            .forget_finished();
    }
    tracing::info!(forgotten, "sandbox forgot its idempotency keys");
    Json(json!({ "forgotten": forgotten }))
}

async fn get_faults(State(app): State<Arc<App>>) -> Json<FaultConfig> {
    Json(app.faults.get())
}

fn bad_request(message: String, param: Option<String>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"error": {"type": "invalid_request_error", "message": message, "param": param}}),
        ),
    )
}

async fn set_faults(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<FaultConfig>, (StatusCode, Json<Value>)> {
    let config: FaultConfig = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("Invalid fault configuration: {e}"), None))?;
    config.validate().map_err(|(field, reason)| {
        bad_request(
            format!("Invalid fault configuration: {field} {reason}"),
            Some(field),
        )
    })?;
    tracing::info!(faults = ?config, "sandbox faults changed");
    app.faults.set(config);
    Ok(Json(app.faults.get()))
}

/// Counters for tests: requests the rate limiter turned away.
async fn stats(State(app): State<Arc<App>>) -> Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    Json(json!({
        "requests": app.faults.received.load(Relaxed),
        "rate_limited": app.faults.throttled.load(Relaxed),
    }))
}

async fn reset(State(app): State<Arc<App>>) -> Json<FaultConfig> {
    app.faults.reset();
    Json(app.faults.get())
}
