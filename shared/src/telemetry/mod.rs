//! Log and metrics setup shared by every Flint binary. Logs: JSON lines for collectors or text for a terminal,
//! filtered by `[log] level` (a `tracing` filter; `RUST_LOG` overrides it when set).

pub mod catalogue;
pub mod ops;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};
use catalogue::Kind;

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

/// Histograms (never summaries, which cannot be added up across a fleet) with each latency
/// metric's own buckets.
fn builder() -> PrometheusBuilder {
    catalogue::ALL
        .iter()
        .fold(PrometheusBuilder::new(), |builder, metric| {
            match metric.kind {
                Kind::Histogram(buckets) => builder
                    .set_buckets_for_metric(Matcher::Full(metric.name.to_owned()), buckets)
                    .expect("the buckets are a fixed, non-empty list"),
                Kind::Counter | Kind::Gauge => builder,
            }
        })
}

/// The process-wide Prometheus recorder, installed on first use; every binary role renders it
/// at its `/metrics`.
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
        let histograms: Vec<_> = catalogue::ALL
            .iter()
            .filter_map(|m| match m.kind {
                Kind::Histogram(buckets) => Some((m.name, buckets)),
                Kind::Counter | Kind::Gauge => None,
            })
            .collect();
        assert_eq!(histograms.len(), 5);
        metrics::with_local_recorder(&recorder, || {
            for (name, _) in &histograms {
                metrics::histogram!(*name).record(0.003);
            }
        });
        let text = handle.render();
        for (name, buckets) in histograms {
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
        }
    }

    #[test]
    fn every_metric_has_its_help_text() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            catalogue::describe(catalogue::Role::Worker);
            for metric in catalogue::ALL {
                match metric.kind {
                    Kind::Counter => metrics::counter!(metric.name).increment(1),
                    Kind::Gauge => metrics::gauge!(metric.name).set(1.0),
                    Kind::Histogram(_) => metrics::histogram!(metric.name).record(1.0),
                }
            }
        });
        let text = handle.render();
        for metric in catalogue::ALL {
            assert!(
                text.contains(&format!("# HELP {} {}", metric.name, metric.help)),
                "{}: {text}",
                metric.name
            );
        }
        assert!(
            text.contains("flint_build_info{role=\"worker\",version=\""),
            "{text}"
        );
    }
}
