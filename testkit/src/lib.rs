//! Test harness shared by every Flint crate's tests.
//!
//! - [`redis::RedisServer`]: a real `redis-server` child on a free port with its own temp dir,
//!   ready when `PING` answers, killed on drop, its log printed when the test failed; AOF
//!   persistence can be switched on so restart tests keep data.
//! - [`cluster::RedisCluster`]: a real local Redis Cluster, three primaries and three replicas
//!   on free ports, ready when every node says `cluster_state:ok` with all slots assigned;
//!   nodes can be SIGKILLed and a replica's promotion awaited for failover tests.
//! - [`sandbox::TestSandbox`]: the Stripe sandbox in-process on port 0, with a small HTTP
//!   client that speaks Stripe's form encoding.
//! - [`process`]: signals to real child processes and waiting for them with a deadline.
//! - [`processor::ScriptedProcessor`]: a processor whose answers (and pauses) a test scripts.
//! - [`python`]: the pinned Python tools, installed by the tests into a virtualenv.
//! - [`poll_until`]: wait for a condition with a deadline instead of sleeping.
//!
//! Tests never use the machine's shared Redis on 6379.

pub mod cluster;
pub mod layouts;
pub mod process;
pub mod processor;
pub mod python;
pub mod redis;
pub mod sandbox;

use std::time::{Duration, Instant};

/// Polls `check` every few milliseconds until it returns `Some`, or panics with `what` after
/// `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
