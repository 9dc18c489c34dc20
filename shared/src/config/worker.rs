//! `[worker]` and `[processor]`: the charge workers and how they reach the processor.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Address of the worker's /healthz, /readyz and /metrics.
    pub listen: SocketAddr,
    /// Charge attempts in flight per worker process.
    pub concurrency: usize,
    /// Moved to `[queue] name`; set here, the configuration is refused with that message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// A job's lease: a dead worker's jobs run elsewhere after this.
    pub lease_secs: u64,
    /// Waits before retry 1, 2, 3, … after a soft decline (the last repeats).
    pub retry_delays_ms: Vec<u64>,
    /// On SIGTERM, how long in-flight attempts may take to finish.
    pub shutdown_grace_secs: u64,
    /// How often the sweeper (one worker at a time) checks that every payment has a way
    /// forward.
    pub sweep_interval_secs: u64,
    /// How long an attempt's outcome may stay unknown (the processor unreachable, its answer
    /// lost) before the payment requires attention.
    pub unknown_outcome_limit_secs: u64,
    /// How long the processor may refuse a tenant's key (401/403) before its payments require
    /// attention.
    pub misconfigured_limit_secs: u64,
    /// How long a paused payment waits for the customer before it fails.
    pub paused_expiry_days: u32,
    /// An attempt whose worker is lost this many times in a row (crash, kill, stall past the
    /// lease) requires attention instead of running again.
    pub max_lost_leases: u32,
    /// This worker's name, the start of its consumer names in Redis and in logs (in
    /// Kubernetes: the pod name). The host name when unset.
    pub name: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            concurrency: 64,
            queue: None,
            lease_secs: 15,
            retry_delays_ms: vec![3_600_000, 21_600_000, 86_400_000, 259_200_000],
            shutdown_grace_secs: 25,
            sweep_interval_secs: 60,
            unknown_outcome_limit_secs: 86_400,
            misconfigured_limit_secs: 3_600,
            paused_expiry_days: 30,
            max_lost_leases: 5,
            name: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Stripe's API, or the sandbox's URL locally.
    pub api_base: String,
    /// The pinned `Stripe-Version`.
    pub stripe_version: String,
    /// Per request, connect included.
    pub timeout_ms: u64,
    /// Extra tries of a transient failure with the same idempotency key.
    pub max_network_retries: usize,
    /// Requests per second the whole fleet sends to one processor account (Stripe: 100 live,
    /// 25 in test mode; stay below).
    pub rate_limit_per_second: u32,
    /// Requests one account may send at once.
    pub rate_limit_burst: u32,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            api_base: "https://api.stripe.com".to_owned(),
            stripe_version: "2024-06-20".to_owned(),
            timeout_ms: 30_000,
            max_network_retries: 3,
            rate_limit_per_second: 80,
            rate_limit_burst: 20,
        }
    }
}

impl WorkerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.queue.is_some() {
            return Err(ConfigError::invalid(
                "worker.queue",
                "moved to [queue] name (one section read by the enqueuer and the workers)",
            ));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || name.len() > 253
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ConfigError::invalid(
                "worker.name",
                "must be 1 to 253 characters of a-z, A-Z, 0-9, '.', '_' or '-'",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(ConfigError::invalid(
                "worker.concurrency",
                "must be between 1 and 10000",
            ));
        }
        if self.lease_secs == 0 {
            return Err(ConfigError::invalid(
                "worker.lease_secs",
                "must be at least 1",
            ));
        }
        if self.retry_delays_ms.is_empty() || self.retry_delays_ms.contains(&0) {
            return Err(ConfigError::invalid(
                "worker.retry_delays_ms",
                "must list at least one positive delay",
            ));
        }
        for (key, value) in [
            ("worker.sweep_interval_secs", self.sweep_interval_secs),
            (
                "worker.unknown_outcome_limit_secs",
                self.unknown_outcome_limit_secs,
            ),
            (
                "worker.misconfigured_limit_secs",
                self.misconfigured_limit_secs,
            ),
            (
                "worker.paused_expiry_days",
                u64::from(self.paused_expiry_days),
            ),
            ("worker.max_lost_leases", u64::from(self.max_lost_leases)),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl ProcessorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "processor.api_base",
                "must be an http(s) URL",
            ));
        }
        if self.rate_limit_per_second == 0 || self.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "processor.rate_limit_per_second",
                "rate and burst must be at least 1",
            ));
        }
        if self.timeout_ms < 100 {
            return Err(ConfigError::invalid(
                "processor.timeout_ms",
                "must be at least 100",
            ));
        }
        Ok(())
    }
}
