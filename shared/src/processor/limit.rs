//! The fleet-wide processor rate limit: a GCRA in Redis per processor account, so that adding
//! workers never means more requests per second than the processor allows (Stripe: 100/s live,
//! 25/s in test mode). Every request, retries included, takes its turn; the time comes from
//! Redis (`TIME`), so the fleet agrees on it.

use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};

use crate::redis_target::{LazyConnection, RedisTarget, Timeouts};
use crate::telemetry::catalogue;

const GCRA: &str = r"
-- KEYS: the account's theoretical arrival time; ARGV: emission interval (µs), tolerance (µs)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then return tat - tolerance - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.floor((tat + interval - now + tolerance) / 1000) + 1000)
return 0
";

#[derive(Debug)]
pub struct RateLimiter {
    redis: LazyConnection,
    key: String,
    interval_us: u64,
    tolerance_us: u64,
    script: Script,
}

impl RateLimiter {
    /// `per_second` sustained, `burst` at once, for the account of `secret_key` (keyed by a
    /// digest, never the key itself) under the queue's hash tag.
    pub fn new(
        target: RedisTarget,
        queue: &str,
        secret_key: &str,
        per_second: u32,
        burst: u32,
    ) -> RateLimiter {
        let account = hex::encode(&Sha256::digest(secret_key.as_bytes())[..8]);
        let interval_us = 1_000_000 / u64::from(per_second.max(1));
        RateLimiter {
            // A slow Redis costs an attempt at most this much per call (the rate limit then
            // lets the request go; a card rule call fails and the attempt is retried).
            redis: LazyConnection::new(
                target,
                Timeouts {
                    connect: Duration::from_secs(1),
                    response: Duration::from_millis(500),
                },
            ),
            key: format!("flint:{{{queue}}}:ratelimit:{account}"),
            interval_us,
            tolerance_us: interval_us * u64::from(burst.max(1) - 1),
            script: Script::new(GCRA),
        }
    }

    /// Waits for this request's turn. If Redis cannot be asked, the request goes ahead (the
    /// processor's own limit and the client's retries remain) and the failure is logged.
    pub async fn acquire(&self) {
        let mut waited = Duration::ZERO;
        loop {
            let conn = self.redis.get().await;
            let wait_us: Result<u64, redis::RedisError> = match conn {
                Ok(mut conn) => {
                    self.script
                        .key(&self.key)
                        .arg(self.interval_us)
                        .arg(self.tolerance_us)
                        .invoke_async(&mut conn)
                        .await
                }
                Err(e) => Err(e),
            };
            match wait_us {
                Ok(0) => {
                    if !waited.is_zero() {
                        metrics::histogram!(catalogue::RATE_LIMIT_WAIT.name)
                            .record(waited.as_secs_f64());
                    }
                    return;
                }
                Ok(us) => {
                    let wait = Duration::from_micros(us);
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "processor rate limit unavailable; sending unthrottled");
                    return;
                }
            }
        }
    }
}
