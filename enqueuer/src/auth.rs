//! API keys: `Authorization: Bearer <key>`, looked up by SHA-256 digest in the configured
//! `[[tenants]]`, so that no plaintext key is ever configured or kept. A per-key token bucket
//! limits request rates (per enqueuer process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use flint_shared::config::TenantConfig;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The tenant a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    key_digest: [u8; 32],
}

#[derive(Debug)]
pub struct Auth {
    tenants: HashMap<[u8; 32], String>,
    limiter: Mutex<HashMap<[u8; 32], Bucket>>,
    per_second: f64,
    burst: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

fn parse_digest(hex_digest: &str) -> Option<[u8; 32]> {
    hex::decode(hex_digest).ok()?.try_into().ok()
}

impl Auth {
    pub fn new(tenants: &[TenantConfig], per_second: u32, burst: u32) -> Auth {
        let tenants = tenants
            .iter()
            .filter_map(|t| {
                parse_digest(&t.api_key_sha256.to_ascii_lowercase()).map(|d| (d, t.id.clone()))
            })
            .collect();
        Auth {
            tenants,
            limiter: Mutex::default(),
            per_second: f64::from(per_second),
            burst: f64::from(burst),
        }
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        let key = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let key_digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let id = self
            .tenants
            .get(&key_digest)
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Tenant {
            id: id.clone(),
            key_digest,
        })
    }

    /// Takes one token from the key's bucket, or says how many seconds until one is there.
    pub fn admit(&self, tenant: &Tenant) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenant.key_digest).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0);
            Err(ApiError::rate_limited(wait as u64))
        }
    }
}
