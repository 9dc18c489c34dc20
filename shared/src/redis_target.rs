//! Where Flint's Redis is, and the lazily made connection every Redis user in `shared/`
//! holds. [`crate::config::RedisConfig::target`] is the one owner of the first; this module
//! re-exports the queue's connection types so that nothing else needs to know whether the
//! target is one server or a Redis Cluster.
//!
//! On a cluster every key Flint writes carries the charge queue's hash tag (`{charges}`), so
//! each command and each script touches one slot and is routed to the primary serving it.

use tokio::sync::OnceCell;

pub use flint_queue::{RedisConnection, RedisTarget, Timeouts};

/// A connection made on first use (so a process starts, and answers 503, while Redis is
/// down), then shared by clones. A failed attempt is not remembered: the next use tries again.
#[derive(Debug)]
pub struct LazyConnection {
    target: RedisTarget,
    timeouts: Timeouts,
    conn: OnceCell<RedisConnection>,
}

impl LazyConnection {
    pub fn new(target: RedisTarget, timeouts: Timeouts) -> LazyConnection {
        LazyConnection {
            target,
            timeouts,
            conn: OnceCell::new(),
        }
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The shared connection, connecting first if there is none yet.
    pub async fn get(&self) -> Result<RedisConnection, redis::RedisError> {
        let conn = self
            .conn
            .get_or_try_init(|| connect(&self.target, self.timeouts))
            .await?;
        Ok(conn.clone())
    }
}

/// A new connection to `target`, its error as a Redis error.
pub async fn connect(
    target: &RedisTarget,
    timeouts: Timeouts,
) -> Result<RedisConnection, redis::RedisError> {
    target.connect(timeouts).await.map_err(|e| match e {
        flint_queue::QueueError::Redis(e) => e,
        other => redis::RedisError::from((
            redis::ErrorKind::Client,
            "cannot connect to redis",
            other.to_string(),
        )),
    })
}
