//! Queue depth as Prometheus gauges: `flint_queue_jobs{queue,partition,state}` and
//! `flint_queue_oldest_ready_age_seconds{queue,partition}`, recorded through the `metrics` facade so
//! that whichever exporter the binary installs serves them.

use std::time::Duration;

/// The queue's metric names (flint-shared's metric catalogue gives them their HELP text).
pub const JOBS: &str = "flint_queue_jobs";
pub const OLDEST_READY_AGE: &str = "flint_queue_oldest_ready_age_seconds";
pub const STALE_OUTCOMES: &str = "flint_queue_stale_outcomes_total";

use crate::Queue;
use crate::store::QueueStats;

pub fn record(queue: &crate::QueueConfig, stats: &QueueStats) {
    let (name, partition) = (queue.name.clone(), queue.partition.to_string());
    for (state, value) in [
        ("ready", stats.ready),
        ("leased", stats.leased),
        ("delayed", stats.delayed),
        ("dead", stats.dead),
    ] {
        metrics::gauge!(JOBS, "queue" => name.clone(), "partition" => partition.clone(), "state" => state)
            .set(value as f64);
    }
    metrics::gauge!(OLDEST_READY_AGE, "queue" => name, "partition" => partition)
        .set(stats.oldest_ready_age_ms as f64 / 1000.0);
}

/// Reads the queue's depth every `every` and records it, until the task is dropped.
pub fn spawn_reporter(queue: Queue, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match queue.stats().await {
                Ok(stats) => record(queue.config(), &stats),
                Err(e) => {
                    tracing::warn!(queue = %queue.config().name, error = %e, "reading queue depth failed")
                }
            }
        }
    })
}
