//! `/v1/off_session_payments`: the request plumbing every handler shares (authentication,
//! JSON bodies, errors that name the field at fault), and the handlers by concern:
//! - `create`: create, with its idempotency key;
//! - `read`: retrieve and list;
//! - `change`: cancel and resume (or retry now), compare-and-set against the workers.

mod change;
mod create;
mod read;

pub use change::{__path_cancel, __path_resume, CancelRequest, ResumeRequest, cancel, resume};
pub use create::{__path_create, create};
pub use read::{__path_list, __path_retrieve, PaymentList, list, retrieve};

use axum::body::{Body, to_bytes};
use flint_shared::ids::PaymentId;
use http::{HeaderMap, StatusCode, header};

use crate::App;
use crate::auth::Tenant;
use crate::error::ApiError;

pub(crate) fn authorize(app: &App, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let tenant = app.auth.authenticate(headers)?;
    app.auth.admit(&tenant)?;
    Ok(tenant)
}

/// Reads a JSON body within the size limit; `None` for an empty body.
pub(crate) async fn json_body(
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

/// An optional JSON body as `T`: its default when the body is empty.
pub(crate) async fn optional_body<T: serde::de::DeserializeOwned + Default>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    Ok(json_body(app, headers, body)
        .await?
        .map(typed)
        .transpose()?
        .unwrap_or_default())
}

/// Deserializes `value` into `T`, naming the field at fault (`amount.value`) on error.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
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

pub(super) fn parse_id(id: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(id).map_err(|_| ApiError::not_found("off_session_payment"))
}
