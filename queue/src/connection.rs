//! How the queue connects to Redis: a standalone server or a Redis Cluster, behind one
//! connection type.
//!
//! Every key of a queue carries the queue's hash tag ([`crate::keys`]), so each command and
//! each script touches one slot, and redis-rs's cluster client routes it to the primary
//! serving that slot: a script by its first key (`EVALSHA sha n key…`), `XREADGROUP` by the
//! key after `STREAMS`, `XGROUP`/`XCLAIM`/`XRANGE` by their stream. A script the node does
//! not know yet (`NOSCRIPT`, as after a failover to a node that never saw it) is loaded on
//! every node and run again by `Script::invoke_async`, on either kind of connection.
//!
//! Both kinds reconnect on their own: a [`ConnectionManager`] to its server, a
//! cluster connection to whichever node serves a slot now (it refreshes the slot map on
//! `MOVED` and on lost nodes, so a worker rides a failover), dropped and made again when no
//! node answers at all ([`crate::cluster_connection`]). A connection that blocks
//! (`XREADGROUP … BLOCK`) must be one of its own, with a response timeout longer than the
//! block ([`Timeouts::blocking`]): both kinds multiplex all commands to a node over one
//! socket, so a blocking read would hold up everything else sent on it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::QueueError;
use crate::cluster_connection::Reconnecting;

/// Where a queue's Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://host:port[/db]`.
    Standalone(String),
    /// A Redis Cluster, by the urls of some of its nodes (`redis://host:port`); the cluster
    /// tells the rest of its topology.
    Cluster(Vec<String>),
}

/// Never the URLs: they may carry a password (redis-rs's own `Client` redacts it likewise).
impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Standalone(_) => f.write_str("RedisTarget::Standalone(<url>)"),
            RedisTarget::Cluster(nodes) => {
                write!(f, "RedisTarget::Cluster(<{} node urls>)", nodes.len())
            }
        }
    }
}

/// How long a connection waits for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection to a node.
    pub connect: Duration,
    /// For the reply to one command.
    pub response: Duration,
}

/// Slack on top of the longest block of a blocking read, and the response timeout of
/// connections that never block.
const SLACK: Duration = Duration::from_secs(5);

impl Default for Timeouts {
    /// For commands that never block: 5 s to connect, 5 s per reply.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response: SLACK,
        }
    }
}

impl Timeouts {
    /// For a connection whose reads may block for up to `block`: replies may take that long
    /// plus 5 s.
    pub fn blocking(block: Duration) -> Self {
        Timeouts {
            response: block + SLACK,
            ..Timeouts::default()
        }
    }
}

/// Retries of a failed command inside the connection before its error is returned (the
/// queue's callers retry on their own, with backoff), and the longest wait between them.
const RETRIES: u32 = 2;
const MAX_RETRY_WAIT: Duration = Duration::from_millis(500);

impl RedisTarget {
    /// A new connection, with its own sockets (clones of it share them).
    pub async fn connect(&self, timeouts: Timeouts) -> Result<RedisConnection, QueueError> {
        let inner = match self {
            RedisTarget::Standalone(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeouts.response))
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_number_of_retries(RETRIES as usize)
                    .set_max_delay(MAX_RETRY_WAIT);
                let client = redis::Client::open(url.as_str())?;
                Inner::Standalone(client.get_connection_manager_with_config(config).await?)
            }
            RedisTarget::Cluster(nodes) => {
                let max_wait = u64::try_from(MAX_RETRY_WAIT.as_millis()).unwrap_or(u64::MAX);
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .retries(RETRIES)
                    // The default waits 1.28 s at least before a retry (a redirection after a
                    // failover included).
                    .min_retry_wait(50)
                    .max_retry_wait(max_wait)
                    .build()?;
                Inner::Cluster(Reconnecting::connect(client, nodes.clone()).await?)
            }
        };
        Ok(RedisConnection(inner))
    }
}

/// A reconnecting connection to a standalone server or to a cluster. Cheap to clone; clones
/// share the connection.
///
/// Written by hand because redis-rs has no single type for both (a `ConnectionManager` never
/// talks to a cluster, a cluster connection only to one); it delegates
/// [`ConnectionLike`], so commands and scripts run on it as on either.
#[derive(Clone)]
pub struct RedisConnection(Inner);

#[derive(Clone)]
enum Inner {
    Standalone(ConnectionManager),
    Cluster(Arc<Reconnecting>),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Standalone(conn) => f.debug_tuple("Standalone").field(conn).finish(),
            Inner::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Inner::Standalone(conn) => conn.req_packed_command(cmd),
            Inner::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Inner::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Standalone(conn) => conn.get_db(),
            Inner::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::RedisTarget;

    #[test]
    fn a_target_never_prints_its_urls() {
        for target in [
            RedisTarget::Standalone("redis://:hunter2@redis.internal:6379".into()),
            RedisTarget::Cluster(vec!["redis://:hunter2@node-1:6379".into()]),
        ] {
            let shown = format!("{target:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("redis.internal"),
                "{shown}"
            );
        }
    }
}
