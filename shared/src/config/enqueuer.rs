//! `[enqueuer]` and `[[tenants]]`: where the HTTP API listens, its limits, and who may call it.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnqueuerConfig {
    /// Address `flint enqueuer` listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// How long an `Idempotency-Key` is remembered per tenant (at least 24 h is the contract).
    pub idempotency_retention_secs: u64,
    /// How long finished payments are kept before Redis forgets them.
    pub payment_retention_days: u32,
    /// Sustained requests per second allowed per API key (429 with Retry-After above).
    pub rate_limit_per_second: u32,
    /// Requests one key may send in a burst.
    pub rate_limit_burst: u32,
    /// Moved to `[queue] name`; set here, the configuration is refused with that message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

impl Default for EnqueuerConfig {
    fn default() -> Self {
        EnqueuerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            idempotency_retention_secs: 24 * 60 * 60,
            payment_retention_days: 30,
            rate_limit_per_second: 200,
            rate_limit_burst: 400,
            queue: None,
        }
    }
}

/// One tenant: a calling platform with its own API key and processor account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Short stable name (`[a-z0-9_-]`, 1–64 characters); part of Redis keys.
    pub id: String,
    /// SHA-256 of the tenant's API key, hex. The key itself is never configured.
    pub api_key_sha256: String,
    /// The tenant's processor secret key (`sk_…`).
    pub processor_secret_key: Secret,
}

impl EnqueuerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::invalid(
                "enqueuer.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        if self.idempotency_retention_secs < 24 * 60 * 60 {
            return Err(ConfigError::invalid(
                "enqueuer.idempotency_retention_secs",
                "must be at least 86400 (24 hours)",
            ));
        }
        if self.payment_retention_days == 0 {
            return Err(ConfigError::invalid(
                "enqueuer.payment_retention_days",
                "must be at least 1",
            ));
        }
        if self.rate_limit_per_second == 0 || self.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "enqueuer.rate_limit_per_second",
                "rate and burst must be at least 1",
            ));
        }
        if self.queue.is_some() {
            return Err(ConfigError::invalid(
                "enqueuer.queue",
                "moved to [queue] name (one section read by the enqueuer and the workers)",
            ));
        }
        Ok(())
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub(super) fn validate_tenants(tenants: &[TenantConfig]) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    let mut digests = HashSet::new();
    for (i, t) in tenants.iter().enumerate() {
        let key = |field: &str| format!("tenants[{i}].{field}");
        if !valid_name(&t.id) {
            return Err(ConfigError::invalid(
                &key("id"),
                "must be 1–64 characters of a-z, 0-9, _ or -",
            ));
        }
        if !ids.insert(t.id.as_str()) {
            return Err(ConfigError::invalid(
                &key("id"),
                "is used by another tenant",
            ));
        }
        let digest = t.api_key_sha256.to_ascii_lowercase();
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConfigError::invalid(
                &key("api_key_sha256"),
                "must be 64 hex characters (the SHA-256 of the key)",
            ));
        }
        if !digests.insert(digest) {
            return Err(ConfigError::invalid(
                &key("api_key_sha256"),
                "is used by another tenant",
            ));
        }
        if t.processor_secret_key.expose().trim().is_empty() {
            return Err(ConfigError::invalid(
                &key("processor_secret_key"),
                "must not be empty",
            ));
        }
    }
    Ok(())
}
