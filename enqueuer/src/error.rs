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

    pub fn unavailable(e: &StoreError) -> Self {
        tracing::warn!(error = %e, "storage unavailable");
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "storage_unavailable",
            "Storage is unavailable; nothing was changed. Retry with the same Idempotency-Key.",
        );
        err.retry_after_secs = Some(1);
        err
    }

    /// The write is on the Redis primary, but `[redis] min_replicas_acked` replicas did not
    /// acknowledge it in time. Retryable: a retried create with the same Idempotency-Key finds
    /// the payment, waits for the replicas again and answers 202 with the same id.
    pub fn not_replicated(e: &StoreError) -> Self {
        tracing::warn!(error = %e, "write not acknowledged by enough replicas");
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "storage_not_replicated",
            "The request was written, but not yet confirmed by enough storage replicas. Retry it (with the same Idempotency-Key): a retried create returns the same payment.",
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
            StoreError::NotReplicated { .. } => ApiError::not_replicated(&e),
            StoreError::Unavailable(_) | StoreError::Corrupt(_) | StoreError::Reply(_) => {
                ApiError::unavailable(&e)
            }
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
