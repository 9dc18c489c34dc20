//! The API's error body: `{"error": {"type", "code", "message", "param"}}`, with the HTTP
//! status that goes with it. Every failure a client can cause is a 4xx naming what to fix.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use flint_shared::payment::store::StoreError;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `idempotency_error`,
    /// `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Machine-readable code, e.g. `parameter_invalid`, `amount_too_small`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one (`amount.value`, `metadata[k]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// The message of `storage_not_replicated`, true of every route that can answer it.
pub const NOT_REPLICATED: &str = "The change was written on the storage primary, but fewer storage replicas than required confirmed it in time, so a storage failover could still undo it. A create may be retried with the same Idempotency-Key: it returns the same payment. For any other change, read the resource (GET) before repeating the request: it may already be done.";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: ErrorDetail,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            detail: ErrorDetail {
                kind,
                code: code.to_owned(),
                message: message.into(),
                param: None,
            },
            retry_after_secs: None,
        }
    }

    pub fn invalid(code: &str, param: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        );
        e.detail.param = Some(param.into());
        e
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Send a valid API key as `Authorization: Bearer <key>`.",
        )
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            format!("No such {what}."),
        )
    }

    /// Nothing was written: Redis could not be reached, or no write connection came free in
    /// time. Never for a failure after the write landed (that is [`ApiError::not_replicated`]).
    pub fn unavailable(e: &StoreError) -> Self {
        tracing::warn!(error = %e, "storage unavailable");
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "storage_unavailable",
            "Storage is unavailable; the request was most likely not applied (when Redis stopped answering mid-request, it may have been). Retry a create with the same Idempotency-Key; read the payment before repeating any other change.",
        );
        err.retry_after_secs = Some(1);
        err
    }

    /// The change is on the Redis primary, but `[redis] min_replicas_acked` replicas did not
    /// confirm it in time (fewer acknowledged, or confirming failed). Not "nothing changed": a
    /// create retried with the same Idempotency-Key finds the payment, waits for the replicas
    /// again and answers 202 with the same id; cancel and resume take no key and a resume is
    /// not idempotent, so the client reads the payment before repeating one.
    pub fn not_replicated(e: &StoreError) -> Self {
        tracing::warn!(error = %e, "write not confirmed by enough replicas");
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "storage_not_replicated",
            NOT_REPLICATED,
        );
        err.retry_after_secs = Some(1);
        err
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            "Too many requests for this API key; retry after the time in Retry-After.",
        );
        e.retry_after_secs = Some(retry_after_secs);
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotReplicated { .. } | StoreError::ReplicationUnconfirmed { .. } => {
                ApiError::not_replicated(&e)
            }
            StoreError::Unavailable(_)
            | StoreError::Corrupt(_)
            | StoreError::Undecodable(_)
            | StoreError::Reply(_)
            | StoreError::WritersBusy { .. }
            | StoreError::Misplaced { .. }
            | StoreError::PartitionsChanged { .. } => ApiError::unavailable(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
