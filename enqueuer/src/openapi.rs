//! The OpenAPI 3.1 document, generated from the handlers' and types' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use flint_shared::telemetry::ops;

use crate::{events, payments, webhooks};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Flint Off-Session Payments API", description = "Charge customers' saved payment methods later, exactly once."),
    paths(
        payments::create, payments::retrieve, payments::list, payments::cancel, payments::resume,
        events::list, events::retrieve, webhooks::redeliver,
        webhooks::create, webhooks::list, webhooks::retrieve, webhooks::update, webhooks::delete,
        webhooks::rotate_secret,
        ops::healthz, ops::readyz, ops::metrics_text, serve
    ),
    components(schemas(ErrorBody, ErrorDetail, payments::PaymentList, payments::CancelRequest, payments::ResumeRequest, events::EventList,
        webhooks::CreateEndpoint, webhooks::UpdateEndpoint, webhooks::RotateSecret,
        webhooks::EndpointWithSecret, webhooks::EndpointList, webhooks::DeletedEndpoint,
        webhooks::Redelivery)),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Off-session payments"), (name = "events", description = "What happened to payments, newest first"), (name = "webhooks", description = "Where events are delivered"), (name = "operations", description = "Health, readiness, metrics, this document"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
