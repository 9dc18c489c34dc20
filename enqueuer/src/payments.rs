//! `/v1/off_session_payments`: create, retrieve, list, cancel, resume.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use flint_shared::ids::PaymentId;
use flint_shared::payment::record::rfc3339;
use flint_shared::payment::{CreatePaymentRequest, EventKind, Payment, Status};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use flint_shared::payment::store::{Created, JobAction};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let tenant = app.auth.authenticate(headers)?;
    app.auth.admit(&tenant)?;
    Ok(tenant)
}

/// Reads a JSON body within the size limit; `None` for an empty body.
async fn json_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<serde_json::Value>, ApiError> {
    let bytes = to_bytes(body, app.body_limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "body_too_large",
            format!("The request body must be at most {} bytes.", app.body_limit),
        )
    })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            "body",
            format!("The body is not valid JSON: {e}"),
        )
    })
}

/// Deserializes `value` into `T`, naming the field at fault (`amount.value`) on error.
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        // The path ends at the bad field; for a missing field it ends at its parent.
        let param = match (missing, path.as_str()) {
            (Some(field), ".") => field.to_owned(),
            (Some(field), parent) => format!("{parent}.{field}"),
            (None, ".") => "body".to_owned(),
            (None, at) => at.to_owned(),
        };
        let code = if missing.is_some() {
            "parameter_missing"
        } else {
            "parameter_invalid"
        };
        ApiError::invalid(code, param, inner)
    })
}

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
        (status = 503, description = "Storage unavailable; nothing changed (see Retry-After)", body = ErrorBody),
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
    let now = now_ms();
    let new = request
        .validate(now)
        .map_err(|e| ApiError::invalid(e.code, e.param, e.message))?;
    let due_ms = new.charge_at_ms.unwrap_or(now);
    let purpose = new.purpose;
    let payment = Payment::create(PaymentId::generate(), new, now);
    match app
        .store
        .create(&tenant.id, &key, &fingerprint, payment, due_ms, now)
        .await?
    {
        Created::New(payment) => {
            metrics::counter!("flint_payments_created_total", "purpose" => purpose.as_str())
                .increment(1);
            tracing::info!(payment_id = %payment.id, tenant = %tenant.id, purpose = purpose.as_str(), "payment created");
            Ok(accepted(&payment, false))
        }
        Created::Replay(payment) => {
            metrics::counter!("flint_idempotent_replays_total").increment(1);
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

fn parse_id(id: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(id).map_err(|_| ApiError::not_found("off_session_payment"))
}

/// Retrieve a payment with its attempts and event timeline.
#[utoipa::path(
    get, path = "/v1/off_session_payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "The payment id (`osp_…`)")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such payment for this tenant", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn retrieve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = parse_id(&id)?;
    let found = app.store.get(&tenant.id, id.as_str()).await?;
    found
        .map(|v| Json(v.payment))
        .ok_or_else(|| ApiError::not_found("off_session_payment"))
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query parameters; the handler parses them itself to name bad ones"
)]
pub struct ListQuery {
    /// Only this customer's payments.
    customer: Option<String>,
    /// Only payments in this status.
    status: Option<Status>,
    /// 1–100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// A payment id from the previous page: list the ones after it.
    starting_after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Payment>,
    pub has_more: bool,
}

/// List payments, newest first.
#[utoipa::path(
    get, path = "/v1/off_session_payments", tag = "payments",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of payments", body = PaymentList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<PaymentList>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let (mut customer, mut status, mut limit, mut starting_after) = (None, None, 10usize, None);
    // An empty value means "not given", as HTML forms and generic clients send it.
    for (k, v) in
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).filter(|(_, v)| !v.is_empty())
    {
        match k.as_ref() {
            "customer" => customer = Some(v.into_owned()),
            "status" => {
                status = Some(Status::parse(&v).ok_or_else(|| {
                    ApiError::invalid("parameter_invalid", "status", "status must be one of pending, processing, succeeded, failed, paused, canceled")
                })?);
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "parameter_invalid",
                            "limit",
                            "limit must be an integer from 1 to 100",
                        )
                    })?;
            }
            "starting_after" => starting_after = Some(v.into_owned()),
            other => {
                return Err(ApiError::invalid(
                    "parameter_unknown",
                    other,
                    format!("Unknown query parameter `{other}`."),
                ));
            }
        }
    }
    let page = app
        .store
        .list(
            &tenant.id,
            customer.as_deref(),
            status,
            limit,
            starting_after.as_deref(),
        )
        .await?;
    let (data, has_more) = page.ok_or_else(|| {
        ApiError::invalid(
            "resource_missing",
            "starting_after",
            "starting_after must be the id of one of your payments in this list",
        )
    })?;
    Ok(Json(PaymentList {
        object: "list",
        data,
        has_more,
    }))
}

/// Re-reads and re-applies `change` until its compare-and-set lands (a worker may move the
/// payment meanwhile).
async fn transition<F>(
    app: &App,
    tenant: &Tenant,
    id: &PaymentId,
    mut change: F,
) -> Result<Payment, ApiError>
where
    F: FnMut(&mut Payment, i64) -> Result<JobActionOrNothing, ApiError>,
{
    for _ in 0..8 {
        let current = app
            .store
            .get(&tenant.id, id.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found("off_session_payment"))?;
        let mut payment = current.payment;
        let now = now_ms();
        let action = match change(&mut payment, now)? {
            JobActionOrNothing::Nothing => return Ok(payment),
            JobActionOrNothing::Write(action) => action,
        };
        if app
            .store
            .transition(&current.version, &payment, action, now)
            .await?
        {
            return Ok(payment);
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "api_error",
        "payment_busy",
        "The payment is changing right now; retry in a moment.",
    ))
}

/// What a requested change amounts to.
enum JobActionOrNothing {
    /// Already in the requested state: answer without writing.
    Nothing,
    Write(JobAction),
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why (kept in the event timeline).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Cancel a payment.
///
/// From `pending` or `paused` the payment is canceled at once. During `processing` no further
/// attempt will start (`cancel_requested: true`); the running attempt finishes.
#[utoipa::path(
    post, path = "/v1/off_session_payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path, description = "The payment id (`osp_…`)")),
    request_body(content = Option<CancelRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The payment, canceled or with `cancel_requested`", body = Payment),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "Already succeeded or failed", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Payment>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = parse_id(&id)?;
    let request: CancelRequest = json_body(&app, &headers, body)
        .await?
        .map(typed)
        .transpose()?
        .unwrap_or_default();
    let payment = transition(&app, &tenant, &id, |p, now| match p.status {
        Status::Pending | Status::Paused => {
            p.status = Status::Canceled;
            p.next_attempt_at = None;
            p.record(EventKind::Canceled, request.reason.clone(), now);
            Ok(JobActionOrNothing::Write(JobAction::Unschedule))
        }
        Status::Processing if p.cancel_requested => Ok(JobActionOrNothing::Nothing),
        Status::Processing => {
            p.cancel_requested = true;
            p.updated_at = rfc3339(now);
            Ok(JobActionOrNothing::Write(JobAction::None))
        }
        Status::Canceled => Ok(JobActionOrNothing::Nothing),
        Status::Succeeded | Status::Failed => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "payment_not_cancelable",
            format!(
                "The payment has {} and cannot be canceled.",
                p.status.as_str()
            ),
        )),
    })
    .await?;
    Ok(Json(payment))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// A new saved payment method to charge (only for a `paused` payment).
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// Resume a payment: a `paused` one (optionally with a new payment method), or — "retry
/// now" — a `pending` one that waits for a scheduled retry.
#[utoipa::path(
    post, path = "/v1/off_session_payments/{id}/resume", tag = "payments",
    params(("id" = String, Path, description = "The payment id (`osp_…`)")),
    request_body(content = Option<ResumeRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The payment, `pending` and due now", body = Payment),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "Not paused, and not waiting for a retry", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn resume(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Payment>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = parse_id(&id)?;
    let request: ResumeRequest = json_body(&app, &headers, body)
        .await?
        .map(typed)
        .transpose()?
        .unwrap_or_default();
    if let Some(pm) = &request.payment_method
        && (pm.trim().is_empty() || pm.len() > 255)
    {
        return Err(ApiError::invalid(
            "parameter_invalid",
            "payment_method",
            "payment_method must be 1–255 characters",
        ));
    }
    let not_resumable = |p: &Payment| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "payment_not_resumable",
            format!(
                "Only a paused payment, or a pending one waiting for a retry, can be resumed; this one is {}.",
                p.status.as_str()
            ),
        )
    };
    let payment = transition(&app, &tenant, &id, |p, now| match p.status {
        Status::Paused => {
            if let Some(pm) = &request.payment_method {
                p.payment_method = Some(pm.clone());
            }
            p.status = Status::Pending;
            p.next_attempt_at = Some(rfc3339(now));
            p.record(EventKind::Resumed, None, now);
            Ok(JobActionOrNothing::Write(JobAction::Now))
        }
        Status::Pending
            if !p.attempts.is_empty()
                && request.payment_method.is_none()
                && !p.cancel_requested =>
        {
            p.next_attempt_at = Some(rfc3339(now));
            p.record(EventKind::Resumed, Some("retry now".to_owned()), now);
            Ok(JobActionOrNothing::Write(JobAction::Now))
        }
        Status::Pending
        | Status::Processing
        | Status::Succeeded
        | Status::Failed
        | Status::Canceled => Err(not_resumable(p)),
    })
    .await?;
    Ok(Json(payment))
}
