//! `GET /v1/off_session_payments/{id}` and `GET /v1/off_session_payments`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use flint_shared::payment::{Payment, Status};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{authorize, parse_id};
use crate::error::{ApiError, ErrorBody};
use crate::{App, query};

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
    for (k, v) in query::pairs(query) {
        match k.as_str() {
            "customer" => customer = Some(v),
            "status" => {
                status = Some(Status::parse(&v).ok_or_else(|| {
                    ApiError::invalid("parameter_invalid", "status", "status must be one of pending, processing, succeeded, failed, paused, canceled, requires_attention")
                })?);
            }
            "limit" => limit = query::limit(&v)?,
            "starting_after" => starting_after = Some(v),
            other => return Err(query::unknown(other)),
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
    let page = page.ok_or_else(|| {
        ApiError::invalid(
            "resource_missing",
            "starting_after",
            "starting_after must be the id of one of your payments in this list",
        )
    })?;
    Ok(Json(PaymentList {
        object: "list",
        data: page.payments,
        has_more: page.has_more,
    }))
}
