//! Fault injection and the optional rate limiter, applied to `/v1` requests only.
//!
//! The decision for one request is drawn once per stage, so a 1.0 rate is deterministic and
//! tests can rely on it; rates below 1.0 give the random mixes that chaos tests want.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use flint_shared::config::{ErrorRates, FaultConfig};
use http::StatusCode;
use rand::Rng;

use crate::error::ApiError;

#[derive(Debug)]
pub struct Faults {
    initial: FaultConfig,
    current: RwLock<FaultConfig>,
    buckets: Mutex<HashMap<usize, Bucket>>,
    /// Requests the rate limiter turned away, for `GET /__sandbox/stats`.
    pub throttled: std::sync::atomic::AtomicU64,
    /// Every `/v1` request received, for `GET /__sandbox/stats`.
    pub received: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What happens after the work of a POST is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommit {
    Answer,
    ServerError(StatusCode),
    DropConnection,
}

impl Faults {
    pub fn new(initial: FaultConfig) -> Self {
        Faults {
            current: RwLock::new(initial.clone()),
            initial,
            buckets: Mutex::new(HashMap::new()),
            throttled: std::sync::atomic::AtomicU64::new(0),
            received: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> FaultConfig {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, config: FaultConfig) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Back to the faults the sandbox started with.
    pub fn reset(&self) {
        self.set(self.initial.clone());
    }

    fn applies(config: &FaultConfig, path: &str) -> bool {
        config
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
    }

    /// The token bucket of `account`, when the limiter is on. Runs before idempotency, as
    /// Stripe's limiters do, so a throttled request saves nothing.
    pub fn throttle(&self, account: usize) -> Result<(), ApiError> {
        let limiter = self.get().rate_limiter;
        if !limiter.enabled {
            return Ok(());
        }
        let rate = f64::from(limiter.per_second);
        let burst = f64::from(limiter.burst.unwrap_or(limiter.per_second));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(account).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            self.throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(ApiError::rate_limited())
        }
    }

    /// Injected 429s (`rate_limit`, `lock_timeout`), before anything else happens.
    pub fn too_many_requests(&self, path: &str) -> Result<(), ApiError> {
        let c = self.get();
        if !Self::applies(&c, path) {
            return Ok(());
        }
        let roll: f64 = rand::rng().random();
        if roll < c.rate_limit_rate {
            Err(ApiError::rate_limited())
        } else if roll < c.rate_limit_rate + c.lock_timeout_rate {
            Err(ApiError::lock_timeout())
        } else {
            Ok(())
        }
    }

    pub fn latency(&self, path: &str) -> Duration {
        let c = self.get();
        if !Self::applies(&c, path) {
            return Duration::ZERO;
        }
        let random = if c.latency_random_ms > 0 {
            rand::rng().random_range(0..=c.latency_random_ms)
        } else {
            0
        };
        Duration::from_millis(c.latency_fixed_ms + random)
    }

    /// A 5xx answered before any work.
    pub fn before_commit(&self, path: &str) -> Result<(), ApiError> {
        let c = self.get();
        if !Self::applies(&c, path) {
            return Ok(());
        }
        match roll_server_error(&c.before_commit, 0.0) {
            Some(status) => Err(ApiError::server_error(status)),
            None => Ok(()),
        }
    }

    pub fn after_commit(&self, path: &str) -> AfterCommit {
        let c = self.get();
        if !Self::applies(&c, path) {
            return AfterCommit::Answer;
        }
        match roll_server_error(&c.after_commit, c.drop_after_commit_rate) {
            Some(StatusCode::OK) => AfterCommit::DropConnection,
            Some(status) => AfterCommit::ServerError(status),
            None => AfterCommit::Answer,
        }
    }
}

/// One draw over the 5xx rates plus an extra "drop" rate (reported as 200, meaning "drop").
fn roll_server_error(rates: &ErrorRates, drop_rate: f64) -> Option<StatusCode> {
    let total = rates.http_500 + rates.http_502 + rates.http_503 + drop_rate;
    if total <= 0.0 {
        return None;
    }
    let roll: f64 = rand::rng().random();
    let outcomes = [
        (rates.http_500, StatusCode::INTERNAL_SERVER_ERROR),
        (rates.http_502, StatusCode::BAD_GATEWAY),
        (rates.http_503, StatusCode::SERVICE_UNAVAILABLE),
        (drop_rate, StatusCode::OK),
    ];
    let mut edge = 0.0;
    for (rate, status) in outcomes {
        edge += rate;
        if roll < edge {
            return Some(status);
        }
    }
    None
}
