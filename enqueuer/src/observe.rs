//! The request metrics middleware (health, readiness and metrics are
//! `flint_shared::telemetry::ops`, shared with the worker).
//!
//! `flint_api_requests_total{route,method,status}` and `flint_api_request_duration_seconds`
//! use the matched route template (`/v1/off_session_payments/{id}`), never the raw path, so
//! label values stay a closed set.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use flint_shared::telemetry::catalogue;

pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    flint_shared::telemetry::prometheus()
}

pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(catalogue::API_REQUESTS.name, "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(catalogue::API_REQUEST_DURATION.name, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label: the methods the API serves, and `other` for anything a caller invents,
/// so that no request can add a series.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        for (method, label) in [("GET", "GET"), ("POST", "POST"), ("DELETE", "DELETE")] {
            assert_eq!(method_label(&method.parse().unwrap()), label);
        }
        for invented in ["FOO1", "XYZZY-ABCDEFGHIJKLMNOP", "get"] {
            assert_eq!(method_label(&invented.parse().unwrap()), "other");
        }
    }
}
