//! `[webhooks]`: delivering events to the endpoints tenants register.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The queue deliveries go through (its own workers, so deliveries never slow charges; it
    /// lives in the charge queue's Redis hash slot).
    pub queue: String,
    /// Deliveries in flight per worker process.
    pub concurrency: usize,
    /// Per delivery, connect included.
    pub timeout_ms: u64,
    /// The first retry waits up to this long; each wait is drawn at random (full jitter) from
    /// zero to a bound that doubles with the time already spent, up to `max_retry_delay_secs`.
    pub first_retry_delay_ms: u64,
    pub max_retry_delay_secs: u64,
    /// How long a delivery is retried before it is dead-lettered (3 days).
    pub retry_for_secs: u64,
    /// Allow `http://` endpoint URLs (for local receivers); otherwise only `https://`.
    pub allow_http: bool,
    /// Allow endpoints on loopback, private and link-local addresses (local receivers);
    /// otherwise deliveries go only to public internet addresses.
    pub allow_private_networks: bool,
    /// After a secret rotation, how long the previous secret still signs by default.
    pub secret_overlap_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            queue: "webhooks".to_owned(),
            concurrency: 32,
            timeout_ms: 10_000,
            first_retry_delay_ms: 5_000,
            max_retry_delay_secs: 3_600,
            retry_for_secs: 259_200,
            allow_http: false,
            allow_private_networks: false,
            secret_overlap_secs: 86_400,
        }
    }
}

impl WebhooksConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let valid_name = !self.queue.is_empty()
            && self
                .queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(ConfigError::invalid(
                "webhooks.queue",
                "must be letters, digits, '_' or '-'",
            ));
        }
        if super::queue::RESERVED_NAMES.contains(&self.queue.as_str()) {
            return Err(ConfigError::invalid(
                "webhooks.queue",
                format!("`{}` names keys of Flint's own; choose another", self.queue),
            ));
        }
        let positive = [
            ("webhooks.concurrency", self.concurrency as u64),
            ("webhooks.timeout_ms", self.timeout_ms),
            ("webhooks.first_retry_delay_ms", self.first_retry_delay_ms),
            ("webhooks.max_retry_delay_secs", self.max_retry_delay_secs),
            ("webhooks.retry_for_secs", self.retry_for_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}
