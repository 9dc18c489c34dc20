//! Log and metrics setup shared by every Flint binary. Logs: JSON lines for collectors or text for a terminal,
//! filtered by `[log] level` (a `tracing` filter; `RUST_LOG` overrides it when set).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// which lets tests and `flint dev` share a process.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use; every binary role renders it
/// at its `/metrics`.
/// The latency metrics, each a Prometheus histogram (which, unlike a per-process summary, adds
/// up across a fleet) with buckets, in seconds, for what it measures.
pub mod latency {
    /// An API request, from arrival to answer: sub-millisecond to a second.
    pub const API_REQUEST: &str = "flint_api_request_duration_seconds";
    /// A charge attempt, from start to written outcome (retries and rate-limit turns included).
    pub const CHARGE_ATTEMPT: &str = "flint_charge_attempt_duration_seconds";
    /// One request to the processor.
    pub const PROCESSOR_REQUEST: &str = "flint_processor_request_duration_seconds";
    /// One webhook delivery (its timeout is 10 s by default).
    pub const WEBHOOK_DELIVERY: &str = "flint_webhook_delivery_duration_seconds";

    pub(super) const BUCKETS: [(&str, &[f64]); 4] = [
        (
            API_REQUEST,
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        ),
        (
            CHARGE_ATTEMPT,
            &[
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ],
        ),
        (
            PROCESSOR_REQUEST,
            &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
        ),
        (
            WEBHOOK_DELIVERY,
            &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        ),
    ];
}

fn builder() -> PrometheusBuilder {
    latency::BUCKETS
        .iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
                .expect("the buckets are a fixed, non-empty list")
        })
}

pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only this one's"
            );
        }
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_metric_is_a_histogram_with_its_buckets() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for (name, _) in latency::BUCKETS {
                metrics::histogram!(name).record(0.003);
            }
        });
        let text = handle.render();
        for (name, buckets) in latency::BUCKETS {
            assert!(
                text.contains(&format!(
                    "{name}_bucket{{le=\"{}\"}} 1",
                    buckets[buckets.len() - 1]
                )),
                "{name}: {text}"
            );
            assert!(text.contains(&format!("{name}_count 1")), "{name}: {text}");
            assert!(
                !text.contains(&format!("{name}{{quantile")),
                "{name} is a summary: {text}"
            );
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{name}");
        }
    }
}
