//! `POST /v1/off_session_payments`: create a payment, idempotently per tenant and key.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flint_shared::payment::store::Created;
use flint_shared::payment::{CreatePaymentRequest, Payment};
use flint_shared::time::Timestamp;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::{authorize, json_body, typed};
use crate::App;
use crate::error::{ApiError, ErrorBody};

/// The canonical text of a JSON value: object keys sorted at every level, no whitespace, so
/// that key order and formatting never make two equal requests look different (whatever
/// ordering serde_json's maps are built with).
fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(ApiError::invalid(
            "parameter_missing",
            "Idempotency-Key",
            "The Idempotency-Key header is required.",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(str::to_owned).ok_or_else(|| {
        ApiError::invalid(
            "parameter_invalid",
            "Idempotency-Key",
            "The Idempotency-Key must be 1–255 printable ASCII characters.",
        )
    })
}

fn accepted(payment: &Payment, replayed: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(payment)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Create an off-session payment.
#[utoipa::path(
    post, path = "/v1/off_session_payments", tag = "payments",
    request_body = CreatePaymentRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 202, description = "Accepted: the payment, `pending`", body = Payment),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with a different body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
        (status = 503, description = "`storage_unavailable`: nothing changed; `storage_not_replicated`: written, but not yet confirmed by enough replicas. Either way retry with the same Idempotency-Key (see Retry-After): it returns the same payment", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let key = idempotency_key(&headers)?;
    let value = json_body(&app, &headers, body).await?.ok_or_else(|| {
        ApiError::invalid("parameter_missing", "body", "A JSON body is required.")
    })?;
    let fingerprint = hex::encode(Sha256::digest(canonical(&value).as_bytes()));
    let request: CreatePaymentRequest = typed(value)?;
    let now = Timestamp::now();
    let new = request
        .validate(now)
        .map_err(|e| ApiError::invalid(e.code, e.param, e.message))?;
    let purpose = new.purpose;
    // An id of the idempotency key's partition: the create claims the key and writes the
    // payment in one script, so both must live in one slot.
    let id = app.store.partitions().payment_id_for(&tenant.id, &key);
    let payment = Payment::create(id, new, now);
    // Counted and logged once the payment is written, before replicas are waited for: a
    // create answered `storage_not_replicated` exists all the same (its retry is a replay).
    let counted = |payment: &Payment| {
        metrics::counter!(flint_shared::telemetry::catalogue::PAYMENTS_CREATED.name, "purpose" => purpose.as_str())
            .increment(1);
        tracing::info!(payment_id = %payment.id, tenant = %tenant.id, purpose = purpose.as_str(), "payment created");
    };
    match app
        .store
        .create_observed(&tenant.id, &key, &fingerprint, payment, now, counted)
        .await?
    {
        Created::New(payment) => Ok(accepted(&payment, false)),
        Created::Replay(payment) => {
            metrics::counter!(flint_shared::telemetry::catalogue::IDEMPOTENT_REPLAYS.name)
                .increment(1);
            Ok(accepted(&payment, true))
        }
        Created::KeyReused => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_error",
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request body. Use a new key for a new payment.",
        )),
    }
}

/// The `Idempotency-Key` header, documented with its constraints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "documents the header; the handler reads it itself to name a bad one"
)]
pub struct IdempotencyKeyHeader {
    /// Your unique key for this request; retries with the same key and body return the same
    /// payment. 1–255 printable ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = r"^[\x21-\x7E]{1,255}$"
    )]
    idempotency_key: String,
}
