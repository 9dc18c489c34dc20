//! `GET /v1/events` and `GET /v1/events/{id}`: what happened to the tenant's payments, newest
//! first. Each event is written by the same script as the transition that caused it, and kept
//! as long as its payment.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use flint_shared::ids::{EventId, PaymentId};
use flint_shared::payment::EventKind;
use flint_shared::payment::event::Event;
use flint_shared::payment::store::{EventFilter, EventsMissing};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::payments::authorize;
use crate::{App, query};

/// Retrieve an event.
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event id (`evt_…`)")),
    responses(
        (status = 200, description = "The event", body = Event),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such event for this tenant", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn retrieve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    app.store
        .event(&tenant.id, id.as_str())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("event"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query parameters; the handler parses them itself to name bad ones"
)]
pub struct EventQuery {
    /// Only events of this type (`off_session_payment.succeeded`, …).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<EventKind>,
    /// Only this payment's events.
    payment: Option<String>,
    /// 1–100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// An event id from the previous page: list the ones after it.
    starting_after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Event>,
    pub has_more: bool,
}

/// List events, newest first.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events", body = EventList),
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
) -> Result<Json<EventList>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let (mut kind, mut payment, mut limit, mut starting_after) = (None, None, 10usize, None);
    for (k, v) in query::pairs(query) {
        match k.as_str() {
            "type" => {
                kind = Some(EventKind::parse(&v).ok_or_else(|| {
                    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    ApiError::invalid(
                        "parameter_invalid",
                        "type",
                        format!("type must be one of {}", names.join(", ")),
                    )
                })?);
            }
            "payment" => {
                payment = Some(PaymentId::parse(&v).map_err(|e| {
                    ApiError::invalid(
                        "parameter_invalid",
                        "payment",
                        format!("payment must be a payment id (osp_…): {e}"),
                    )
                })?);
            }
            "limit" => limit = query::limit(&v)?,
            "starting_after" => {
                starting_after = Some(EventId::parse(&v).map_err(|e| {
                    ApiError::invalid(
                        "parameter_invalid",
                        "starting_after",
                        format!("starting_after must be an event id (evt_…): {e}"),
                    )
                })?);
            }
            other => return Err(query::unknown(other)),
        }
    }
    let filter = EventFilter {
        kind,
        payment: payment.as_ref().map(PaymentId::as_str),
    };
    let page = app
        .store
        .events(
            &tenant.id,
            filter,
            limit,
            starting_after.as_ref().map(EventId::as_str),
        )
        .await?;
    match page {
        Ok(page) => Ok(Json(EventList {
            object: "list",
            data: page.events,
            has_more: page.has_more,
        })),
        Err(EventsMissing::Payment) => Err(ApiError::invalid(
            "resource_missing",
            "payment",
            "payment must be the id of one of your payments",
        )),
        Err(EventsMissing::Cursor) => Err(ApiError::invalid(
            "resource_missing",
            "starting_after",
            "starting_after must be the id of one of your events in this list",
        )),
    }
}
