//! Every metric Flint exports, in one place: its name, its kind, its HELP text and, for the
//! latency histograms, its buckets. Code records through these constants
//! (`metrics::counter!(catalogue::PAYMENTS_CREATED.name, …)`), never through a name of its own,
//! so the alerts, the dashboard and the README's metrics reference have one list to agree with.
//!
//! Conventions: units in names (`_seconds`), counters end in `_total`, label values come from
//! closed sets (enums, route templates, never ids). Counters whose labels are a closed set are
//! set to zero when a process starts ([`zero`]), so `rate()` and `increase()` have data from
//! the first scrape instead of appearing only after the first event.

/// What a metric is, for `# TYPE` and, for histograms, its buckets in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn histogram(name: &'static str, buckets: &'static [f64], help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram(buckets),
        help,
    }
}

pub const BUILD_INFO: Metric = gauge(
    "flint_build_info",
    "Always 1, labelled with the process's role (enqueuer, worker) and Flint's version.",
);

// The API (enqueuer).
pub const API_REQUESTS: Metric = counter(
    "flint_api_requests_total",
    "API requests answered, by route template, method and HTTP status.",
);
/// Sub-millisecond to a second: the API only writes to Redis.
pub const API_REQUEST_DURATION: Metric = histogram(
    "flint_api_request_duration_seconds",
    &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ],
    "Time from a request's arrival to its answer, by route template and method.",
);
pub const PAYMENTS_CREATED: Metric = counter(
    "flint_payments_created_total",
    "Payments accepted by the API (202), by purpose; idempotent replays are not counted.",
);
pub const IDEMPOTENT_REPLAYS: Metric = counter(
    "flint_idempotent_replays_total",
    "Create requests answered from an earlier request with the same Idempotency-Key.",
);

// Charges (worker).
pub const CHARGE_ATTEMPTS: Metric = counter(
    "flint_charge_attempts_total",
    "Charge attempts ended, by outcome and decline class (none when not declined).",
);
/// Tens of milliseconds to minutes: retries, rate-limit turns and reconciliation included.
pub const CHARGE_ATTEMPT_DURATION: Metric = histogram(
    "flint_charge_attempt_duration_seconds",
    &[
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ],
    "Time from an attempt's start to its written outcome, processor retries and rate-limit waits included.",
);
pub const NETWORK_RULE_BLOCKS: Metric = counter(
    "flint_network_rule_blocks_total",
    "Attempts a card-network rule stopped before anything was sent, by rule.",
);
pub const PAYMENTS_FINISHED: Metric = counter(
    "flint_payments_finished_total",
    "Payments that reached a final status, by status.",
);
pub const PAYMENTS_REQUIRING_ATTENTION_TOTAL: Metric = counter(
    "flint_payments_requiring_attention_total",
    "Payments moved to requires_attention, by reason.",
);
pub const PAYMENTS_REQUIRING_ATTENTION: Metric = gauge(
    "flint_payments_requiring_attention",
    "Payments currently in requires_attention, counted from Redis by every worker every few seconds.",
);
pub const JOBS_IN_FLIGHT: Metric = gauge(
    "flint_jobs_in_flight",
    "Charge attempts running in this worker process.",
);

// The processor (worker).
pub const PROCESSOR_REQUESTS: Metric = counter(
    "flint_processor_requests_total",
    "Requests sent to the processor, by endpoint and answer class (2xx, 4xx, 429, 5xx, network).",
);
pub const PROCESSOR_RETRIES: Metric = counter(
    "flint_processor_retries_total",
    "Processor requests sent again with the same idempotency key after a transient failure, by endpoint.",
);
/// Stripe answers in tens to hundreds of milliseconds; the client times out at 30 s.
pub const PROCESSOR_REQUEST_DURATION: Metric = histogram(
    "flint_processor_request_duration_seconds",
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
    "Time from a processor request leaving to its whole answer read, by endpoint.",
);
/// A turn under the limit comes within milliseconds; a fleet far over it waits seconds.
pub const RATE_LIMIT_WAIT: Metric = histogram(
    "flint_processor_rate_limit_wait_seconds",
    &[
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ],
    "Time a processor request waited for its turn under the fleet-wide rate limit (requests that did not wait are not counted).",
);

// Queues (worker).
pub const QUEUE_JOBS: Metric = gauge(
    flint_queue::metrics::JOBS,
    "Jobs in a queue by state (ready, leased, delayed, dead); every worker reports the same queue, so aggregate with max.",
);
pub const QUEUE_OLDEST_READY_AGE: Metric = gauge(
    flint_queue::metrics::OLDEST_READY_AGE,
    "How long the oldest ready job of a queue has waited for a worker.",
);
pub const QUEUE_STALE_OUTCOMES: Metric = counter(
    flint_queue::metrics::STALE_OUTCOMES,
    "Job outcomes dropped because the job had meanwhile been leased by another run.",
);

// The sweeper (one worker at a time).
pub const SWEEPER_CHECKED: Metric = counter(
    "flint_sweeper_payments_checked_total",
    "Live payments the sweeper checked for a way forward.",
);
pub const PAYMENTS_REPAIRED: Metric = counter(
    "flint_payments_repaired_total",
    "Payments the sweeper found without a charge job and gave one back, by reason.",
);

// Webhooks (worker).
pub const WEBHOOK_DELIVERIES: Metric = counter(
    "flint_webhook_deliveries_total",
    "Webhook delivery tries, by outcome (delivered, retried, dead_lettered, dropped).",
);
/// Endpoints answer in milliseconds to seconds; a delivery times out at 10 s by default.
pub const WEBHOOK_DELIVERY_DURATION: Metric = histogram(
    "flint_webhook_delivery_duration_seconds",
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
    "Time from a webhook request leaving to its answer (or timeout).",
);
pub const WEBHOOK_PENDING: Metric = gauge(
    "flint_webhook_pending",
    "Webhook deliveries waiting to be sent or retried.",
);
pub const WEBHOOK_DEAD_LETTERS: Metric = gauge(
    "flint_webhook_dead_letters",
    "Webhook deliveries that used up their retries and wait for an operator.",
);

/// Every metric, in the order of the README's reference.
pub const ALL: [Metric; 25] = [
    BUILD_INFO,
    API_REQUESTS,
    API_REQUEST_DURATION,
    PAYMENTS_CREATED,
    IDEMPOTENT_REPLAYS,
    CHARGE_ATTEMPTS,
    CHARGE_ATTEMPT_DURATION,
    NETWORK_RULE_BLOCKS,
    PAYMENTS_FINISHED,
    PAYMENTS_REQUIRING_ATTENTION_TOTAL,
    PAYMENTS_REQUIRING_ATTENTION,
    JOBS_IN_FLIGHT,
    PROCESSOR_REQUESTS,
    PROCESSOR_RETRIES,
    PROCESSOR_REQUEST_DURATION,
    RATE_LIMIT_WAIT,
    QUEUE_JOBS,
    QUEUE_OLDEST_READY_AGE,
    QUEUE_STALE_OUTCOMES,
    SWEEPER_CHECKED,
    PAYMENTS_REPAIRED,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_DURATION,
    WEBHOOK_PENDING,
    WEBHOOK_DEAD_LETTERS,
];

/// Which binary role a process plays (`flint dev` plays both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Enqueuer,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Enqueuer => "enqueuer",
            Role::Worker => "worker",
        }
    }
}

/// Gives every metric its HELP text and sets `flint_build_info` for `role`.
pub fn describe(role: Role) {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram(_) => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
    metrics::gauge!(BUILD_INFO.name, "role" => role.as_str(), "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// Sets a counter series to zero (creating it) without counting anything.
pub fn zero(metric: Metric, labels: &[(&'static str, &'static str)]) {
    debug_assert_eq!(metric.kind, Kind::Counter, "{}", metric.name);
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, *v))
        .collect();
    metrics::counter!(metric.name, labels).increment(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("flint_"), "{}", metric.name);
            assert!(
                metric
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                metric.name
            );
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                metric.name
            );
            if let Kind::Histogram(buckets) = metric.kind {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
                assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{}", metric.name);
            }
            assert!(
                metric.help.len() > 20 && metric.help.ends_with('.'),
                "{}",
                metric.name
            );
        }
    }
}
