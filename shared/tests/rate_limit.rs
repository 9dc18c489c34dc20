//! The fleet-wide processor rate limit against a real redis-server: however many limiters
//! (processes) share an account, the turns granted over a window stay within rate × window +
//! burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flint_shared::processor::limit::RateLimiter;
use flint_testkit::redis::RedisServer;

/// Runs `limiters` limiters (as separate processes would be: each its own connection and
/// reservation) with `tasks` callers each for `window`; returns the turns granted.
async fn granted(
    redis: &RedisServer,
    per_second: u32,
    burst: u32,
    limiters: usize,
    tasks: usize,
    window: Duration,
) -> u64 {
    let count = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + window;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..limiters {
        let limiter = Arc::new(RateLimiter::new(
            flint_shared::redis_target::RedisTarget::Standalone(redis.url()),
            "charges",
            "sk_test_shared_account",
            per_second,
            burst,
        ));
        for _ in 0..tasks {
            let (limiter, count) = (limiter.clone(), count.clone());
            set.spawn(async move {
                loop {
                    limiter.acquire().await;
                    if Instant::now() >= end {
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    while set.join_next().await.is_some() {}
    count.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_across_limiters() {
    let redis = RedisServer::start();
    let window = Duration::from_millis(1500);
    let n = granted(&redis, 50, 5, 3, 8, window).await;
    // 50/s for 1.5 s plus a burst of 5: at most 80. Demanded: far more (24 callers, no pause).
    assert!(n <= 80, "granted {n} turns, limit allows 80");
    assert!(n >= 60, "granted only {n} turns of the 80 allowed");
}
