//! The `[sandbox]` section: how `flint sandbox` listens, which test keys it accepts, and the
//! faults it injects. [`FaultConfig`] is also the JSON body of `POST /__sandbox/faults`, so the
//! file and the runtime control speak one language.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Address `flint sandbox` listens on.
    pub listen: SocketAddr,
    /// Secret keys the sandbox accepts; each has its own data, like a Stripe account.
    pub api_keys: Vec<Secret>,
    /// `Stripe-Version` answered when a request does not send one.
    pub stripe_version: String,
    /// How long a saved idempotent result is kept (Stripe: at least 24 hours).
    pub idempotency_retention_secs: u64,
    /// Stripe refuses to attach its decline test cards to a customer (402 at attach time).
    /// Off by default so that off-session decline paths can be tested with saved cards.
    pub strict_attach: bool,
    /// Faults in force when the sandbox starts.
    pub faults: FaultConfig,
    /// Endpoints that receive Stripe-style `payment_intent.*` webhook events.
    pub webhook_urls: Vec<String>,
    /// `whsec_…` secret that signs those events (`Stripe-Signature`).
    pub webhook_secret: Secret,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 12111)),
            api_keys: vec![Secret::new("sk_test_flint")],
            stripe_version: "2024-06-20".to_owned(),
            idempotency_retention_secs: 24 * 60 * 60,
            strict_attach: false,
            faults: FaultConfig::default(),
            webhook_urls: Vec::new(),
            webhook_secret: Secret::new("whsec_flint_sandbox"),
        }
    }
}

impl SandboxConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.api_keys.is_empty() {
            return Err(ConfigError::invalid(
                "sandbox.api_keys",
                "at least one key is required",
            ));
        }
        for key in &self.api_keys {
            let k = key.expose();
            if !(k.starts_with("sk_test_") || k.starts_with("rk_test_")) || k.len() < 12 {
                return Err(ConfigError::invalid(
                    "sandbox.api_keys",
                    "every key must be a test key (`sk_test_…` or `rk_test_…`, at least 12 characters)",
                ));
            }
        }
        if self.stripe_version.trim().is_empty() {
            return Err(ConfigError::invalid(
                "sandbox.stripe_version",
                "must not be empty",
            ));
        }
        if self.idempotency_retention_secs == 0 {
            return Err(ConfigError::invalid(
                "sandbox.idempotency_retention_secs",
                "must be at least 1",
            ));
        }
        for url in &self.webhook_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    "sandbox.webhook_urls",
                    "each URL must start with http:// or https://",
                ));
            }
        }
        self.faults.validate().map_err(|(field, reason)| {
            ConfigError::invalid(&format!("sandbox.faults.{field}"), reason)
        })
    }
}

/// Faults the sandbox injects into `/v1` requests. Rates are probabilities in `0.0..=1.0`.
///
/// "Before commit" faults answer without doing anything; "after commit" faults do the work
/// (a PaymentIntent really is confirmed) and then answer an error or drop the connection, which
/// is what makes a client's outcome unknown and exercises its reconciliation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Added to every `/v1` request.
    pub latency_fixed_ms: u64,
    /// Uniformly random extra latency in `0..=latency_random_ms`.
    pub latency_random_ms: u64,
    /// Only requests whose path starts with this are affected (all when unset).
    pub path_prefix: Option<String>,
    pub before_commit: ErrorRates,
    pub after_commit: ErrorRates,
    /// Rate of POSTs whose connection is dropped, without a response, after the work is done.
    pub drop_after_commit_rate: f64,
    /// Rate of requests answered 429 `rate_limit`.
    pub rate_limit_rate: f64,
    /// Rate of requests answered 429 `lock_timeout`.
    pub lock_timeout_rate: f64,
    /// A token bucket per API key, like Stripe's per-account limit.
    pub rate_limiter: RateLimiterConfig,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency_fixed_ms: 0,
            latency_random_ms: 0,
            path_prefix: None,
            before_commit: ErrorRates::default(),
            after_commit: ErrorRates::default(),
            drop_after_commit_rate: 0.0,
            rate_limit_rate: 0.0,
            lock_timeout_rate: 0.0,
            rate_limiter: RateLimiterConfig::default(),
        }
    }
}

/// Rates of injected 5xx answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorRates {
    pub http_500: f64,
    pub http_502: f64,
    pub http_503: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimiterConfig {
    pub enabled: bool,
    /// Sustained requests per second per API key (Stripe test mode: 25).
    pub per_second: u32,
    /// Requests allowed in one burst (defaults to `per_second`).
    pub burst: Option<u32>,
}

impl Default for RateLimiterConfig {
    fn default() -> Self {
        RateLimiterConfig {
            enabled: false,
            per_second: 25,
            burst: None,
        }
    }
}

impl FaultConfig {
    /// Checks ranges; the error is `(field, reason)` relative to this struct.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        let rates = [
            ("before_commit.http_500", self.before_commit.http_500),
            ("before_commit.http_502", self.before_commit.http_502),
            ("before_commit.http_503", self.before_commit.http_503),
            ("after_commit.http_500", self.after_commit.http_500),
            ("after_commit.http_502", self.after_commit.http_502),
            ("after_commit.http_503", self.after_commit.http_503),
            ("drop_after_commit_rate", self.drop_after_commit_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("lock_timeout_rate", self.lock_timeout_rate),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err((
                    field.to_owned(),
                    "must be a probability between 0.0 and 1.0",
                ));
            }
        }
        let after = &self.after_commit;
        if after.http_500 + after.http_502 + after.http_503 + self.drop_after_commit_rate > 1.0 {
            return Err((
                "after_commit".to_owned(),
                "after-commit rates and drop_after_commit_rate must add up to at most 1.0",
            ));
        }
        let before = &self.before_commit;
        if before.http_500 + before.http_502 + before.http_503 > 1.0 {
            return Err((
                "before_commit".to_owned(),
                "before-commit rates must add up to at most 1.0",
            ));
        }
        if self.rate_limit_rate + self.lock_timeout_rate > 1.0 {
            return Err((
                "rate_limit_rate".to_owned(),
                "rate_limit_rate and lock_timeout_rate must add up to at most 1.0",
            ));
        }
        if self.latency_fixed_ms > 600_000 || self.latency_random_ms > 600_000 {
            return Err((
                "latency_fixed_ms".to_owned(),
                "latency must be at most 600000 ms",
            ));
        }
        if self.rate_limiter.per_second == 0 {
            return Err(("rate_limiter.per_second".to_owned(), "must be at least 1"));
        }
        if self.rate_limiter.burst == Some(0) {
            return Err(("rate_limiter.burst".to_owned(), "must be at least 1"));
        }
        Ok(())
    }
}
