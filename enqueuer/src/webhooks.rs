//! `/v1/webhook_endpoints`: where a tenant wants its events delivered, and
//! `POST /v1/events/{id}/redeliver`. An endpoint's secret is shown once, when it is made or
//! rotated; it is never listed or logged.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use flint_shared::ids::{EventId, WebhookEndpointId};
use flint_shared::payment::store::{ReadEndpoint, Written};
use flint_shared::time::Timestamp;
use flint_shared::webhook::endpoint::{
    self, Endpoint, Invalid, MAX_ENDPOINTS, MAX_OVERLAP_SECS, SigningSecret, StoredEndpoint,
};
use flint_shared::webhook::sign::generate_secret;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::error::{ApiError, ErrorBody};
use crate::payments::{authorize, json_body, optional_body, typed};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `https://…` (`http://` only with `[webhooks] allow_http`).
    pub url: String,
    /// Event types, or `["*"]` for all.
    pub enabled_events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub enabled_events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// A disabled endpoint is sent nothing.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the current secret still signs, in seconds (default `[webhooks]
    /// secret_overlap_secs`; at most 7 days; 0 stops it at once).
    #[serde(default)]
    pub expire_current_in_secs: Option<u64>,
}

/// An endpoint with its new secret: answered once, when it is made or rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_…`: verify deliveries with it. Shown only now.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Endpoint>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    /// Always `event_redelivery`.
    pub object: &'static str,
    pub event: String,
    /// The endpoints that will be sent the event.
    pub endpoints: usize,
}

fn refused(e: Invalid) -> ApiError {
    ApiError::invalid("parameter_invalid", e.param, e.message)
}

fn endpoint_id(id: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(id).map_err(|_| ApiError::not_found("webhook_endpoint"))
}

/// Register a webhook endpoint.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints", tag = "webhooks",
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown only now)", body = EndpointWithSecret),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 409, description = "The tenant has the most endpoints allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<EndpointWithSecret>), ApiError> {
    let tenant = authorize(&app, &headers)?;
    let Some(value) = json_body(&app, &headers, body).await? else {
        return Err(ApiError::invalid(
            "parameter_missing",
            "url",
            "Send the endpoint as JSON: {\"url\": …, \"enabled_events\": […]}",
        ));
    };
    let request: CreateEndpoint = typed(value)?;
    let now = Timestamp::now();
    let secret = generate_secret();
    let stored = StoredEndpoint {
        endpoint: Endpoint {
            id: WebhookEndpointId::generate(),
            object: "webhook_endpoint".to_owned(),
            url: endpoint::url(
                &request.url,
                app.webhooks.allow_http,
                app.webhooks.allow_private_networks,
            )
            .map_err(refused)?,
            enabled_events: endpoint::enabled_events(&request.enabled_events).map_err(refused)?,
            description: request
                .description
                .as_deref()
                .map(endpoint::description)
                .transpose()
                .map_err(refused)?,
            disabled: false,
            created_at: now,
            updated_at: now,
        },
        secrets: vec![SigningSecret {
            secret: secret.clone(),
            expires_at: None,
        }],
    };
    match app.store.create_endpoint(&tenant.id, &stored).await? {
        Written::Ok => Ok((
            StatusCode::CREATED,
            Json(EndpointWithSecret {
                endpoint: stored.endpoint,
                secret,
            }),
        )),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "webhook_endpoint_limit_reached",
            format!(
                "A tenant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first."
            ),
        )),
    }
}

/// List webhook endpoints, oldest first.
#[utoipa::path(
    get, path = "/v1/webhook_endpoints", tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint of the tenant", body = EndpointList),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<EndpointList>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let data = app
        .store
        .endpoints(&tenant.id)
        .await?
        .into_iter()
        .map(|e| e.endpoint)
        .collect();
    Ok(Json(EndpointList {
        object: "list",
        data,
        has_more: false,
    }))
}

async fn stored(app: &App, tenant: &str, id: &WebhookEndpointId) -> Result<ReadEndpoint, ApiError> {
    app.store
        .endpoint(tenant, id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook_endpoint"))
}

/// Reads the endpoint, applies `change`, and writes it back only if nobody changed it since
/// (another update or a rotation is never undone); re-reads and re-applies otherwise.
async fn change<F>(
    app: &App,
    tenant: &str,
    id: &str,
    mut change: F,
) -> Result<StoredEndpoint, ApiError>
where
    F: FnMut(&mut StoredEndpoint, Timestamp) -> Result<(), ApiError>,
{
    let id = endpoint_id(id)?;
    for _ in 0..8 {
        let read = stored(app, tenant, &id).await?;
        let mut endpoint = read.endpoint.clone();
        let now = Timestamp::now();
        change(&mut endpoint, now)?;
        endpoint.endpoint.updated_at = now;
        match app.store.replace_endpoint(tenant, &read, &endpoint).await? {
            Written::Ok => return Ok(endpoint),
            Written::Moved => continue,
            Written::Missing | Written::Full => {
                return Err(ApiError::not_found("webhook_endpoint"));
            }
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "api_error",
        "webhook_endpoint_busy",
        "The endpoint is changing right now; retry in a moment.",
    ))
}

/// Retrieve a webhook endpoint.
#[utoipa::path(
    get, path = "/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn retrieve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = endpoint_id(&id)?;
    Ok(Json(stored(&app, &tenant.id, &id).await?.endpoint.endpoint))
}

/// Update a webhook endpoint: its URL, event types, description, or whether it is disabled.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    request_body(content = Option<UpdateEndpoint>, description = "The fields to change"),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is changing right now", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn update(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Endpoint>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let request: UpdateEndpoint = optional_body(&app, &headers, body).await?;
    let url = request
        .url
        .as_deref()
        .map(|u| {
            endpoint::url(
                u,
                app.webhooks.allow_http,
                app.webhooks.allow_private_networks,
            )
        })
        .transpose()
        .map_err(refused)?;
    let events = request
        .enabled_events
        .as_deref()
        .map(endpoint::enabled_events)
        .transpose()
        .map_err(refused)?;
    // An empty description clears it.
    let description = request
        .description
        .as_deref()
        .map(endpoint::description)
        .transpose()
        .map_err(refused)?
        .map(|d| (!d.is_empty()).then_some(d));
    let updated = change(&app, &tenant.id, &id, |stored, _| {
        let e = &mut stored.endpoint;
        if let Some(url) = &url {
            e.url.clone_from(url);
        }
        if let Some(events) = &events {
            e.enabled_events.clone_from(events);
        }
        if let Some(description) = &description {
            e.description.clone_from(description);
        }
        if let Some(disabled) = request.disabled {
            e.disabled = disabled;
        }
        Ok(())
    })
    .await?;
    Ok(Json(updated.endpoint))
}

/// Delete a webhook endpoint. Deliveries still waiting for it are dropped.
#[utoipa::path(
    delete, path = "/v1/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    responses(
        (status = 200, description = "Deleted", body = DeletedEndpoint),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeletedEndpoint>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = endpoint_id(&id)?;
    if !app.store.delete_endpoint(&tenant.id, id.as_str()).await? {
        return Err(ApiError::not_found("webhook_endpoint"));
    }
    Ok(Json(DeletedEndpoint {
        id: id.to_string(),
        object: "webhook_endpoint",
        deleted: true,
    }))
}

/// Rotate an endpoint's secret. The new secret signs from now on; the current one also signs
/// (a second signature) until its overlap ends, so receivers can switch without losing a
/// delivery.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints/{id}/rotate_secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint id (`we_…`)")),
    request_body(content = Option<RotateSecret>, description = "Optional"),
    responses(
        (status = 200, description = "The endpoint, with its new secret (shown only now)", body = EndpointWithSecret),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is changing right now", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn rotate_secret(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let tenant = authorize(&app, &headers)?;
    let request: RotateSecret = optional_body(&app, &headers, body).await?;
    let overlap = request
        .expire_current_in_secs
        .unwrap_or(app.webhooks.secret_overlap_secs);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::invalid(
            "parameter_invalid",
            "expire_current_in_secs",
            format!("expire_current_in_secs must be at most {MAX_OVERLAP_SECS} (7 days)"),
        ));
    }
    let secret = generate_secret();
    let rotated = change(&app, &tenant.id, &id, |stored, now| {
        stored.rotate(secret.clone(), Duration::from_secs(overlap), now);
        Ok(())
    })
    .await?;
    Ok(Json(EndpointWithSecret {
        endpoint: rotated.endpoint,
        secret,
    }))
}

/// Send an event again to every endpoint that wants it now. A delivery of it still being
/// retried is not doubled.
#[utoipa::path(
    post, path = "/v1/events/{id}/redeliver", tag = "events",
    params(("id" = String, Path, description = "The event id (`evt_…`)")),
    responses(
        (status = 202, description = "Queued for delivery", body = Redelivery),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 409, description = "No endpoint wants this event", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Redelivery>), ApiError> {
    let tenant = authorize(&app, &headers)?;
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    let event = app
        .store
        .event(&tenant.id, id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let endpoints = app
        .store
        .endpoints(&tenant.id)
        .await?
        .iter()
        .filter(|e| e.endpoint.wants(event.kind))
        .count();
    if endpoints == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "no_webhook_endpoint",
            format!(
                "No enabled webhook endpoint wants {} events.",
                event.kind.as_str()
            ),
        ));
    }
    if !app
        .store
        .redeliver(&tenant.id, &id, Timestamp::now())
        .await?
    {
        return Err(ApiError::not_found("event"));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Redelivery {
            object: "event_redelivery",
            event: id.to_string(),
            endpoints,
        }),
    ))
}
