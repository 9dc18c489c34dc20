//! A Redis Cluster connection that is dropped when no node of the cluster can be reached, and
//! made again by a later command.
//!
//! Written by hand because redis-rs 1.8's cluster connection, once no node answers, starts its
//! slot refresh again the moment it fails, without a pause, for as long as the cluster stays
//! away. Measured: a `flint worker` whose six cluster nodes were all stopped used 75 % of a core
//! and logged 16,000 lines a second. Dropping the connection ends that loop (its task is
//! aborted with its last clone, so commands still in flight on it are abandoned then).
//!
//! Only a whole cluster out of reach is handled here: while some node answers, redis-rs rides
//! the outage of the others (a failover) on its own, and the connection is kept. So a command
//! that fails for want of a node, or the `PING` sent through an idle connection each second
//! (it would otherwise never notice), only makes the connection *suspect*; the next probe then
//! asks the nodes directly (the configured ones, and every node the cluster named in its last
//! `CLUSTER SLOTS`, so that seed nodes replaced since do not matter), and the connection is
//! dropped only when none of them answers. While there is no connection, commands fail at once,
//! and one new connection is tried at most once per [`RECONNECT_EVERY`].

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::watch;

/// The shortest time between two attempts to connect, and between two probes.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How long a probe waits for one node to connect and answer `PING`.
const NODE_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a healthy connection asks the cluster which nodes it has.
const LEARN_EVERY: Duration = Duration::from_secs(30);

pub(crate) struct Reconnecting {
    client: ClusterClient,
    /// The configured nodes, asked one by one when the connection is suspect; the first one's
    /// settings (credentials) also reach the nodes the cluster names.
    nodes: Vec<ConnectionInfo>,
    /// Never held across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    /// A new connection is being made (by one command; the others fail at once meanwhile).
    connecting: bool,
    /// When the last attempt to connect failed.
    failed_at: Option<Instant>,
    /// A command or probe failed for want of a node since the last probe.
    suspect: bool,
    /// When a command last got an answer (a reply, or an error from a node).
    answered_at: Option<Instant>,
    /// Every node (`host`, `port`) of the cluster's last `CLUSTER SLOTS`, and when it was read.
    learned: Vec<(String, u16)>,
    learned_at: Option<Instant>,
}

/// The connection in use.
struct Live {
    conn: ClusterConnection,
    /// Dropped with the connection: commands still in flight on it are abandoned then, for a
    /// command in flight holds the connection, and its spinning task, alive.
    alive: watch::Sender<()>,
}

impl Live {
    fn new(conn: ClusterConnection) -> Live {
        Live {
            conn,
            alive: watch::Sender::new(()),
        }
    }

    fn hold(&self) -> (ClusterConnection, watch::Receiver<()>) {
        (self.conn.clone(), self.alive.subscribe())
    }
}

fn unavailable(detail: &str) -> RedisError {
    RedisError::from((
        ErrorKind::ClusterConnectionNotFound,
        "no node of the redis cluster answered",
        detail.to_owned(),
    ))
}

/// Clears `connecting` when the attempt ends, however it ends: a command's future may be
/// dropped while it connects, and that counts as a failed attempt.
struct Connecting<'a> {
    connection: &'a Reconnecting,
    ended: bool,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        let mut state = self.connection.state();
        state.connecting = false;
        if !self.ended {
            state.failed_at = Some(Instant::now());
        }
    }
}

impl Reconnecting {
    /// Connects now (a cluster that cannot be reached at start is an error, as before), and
    /// probes the connection while it is held.
    pub(crate) async fn connect(
        client: ClusterClient,
        nodes: Vec<String>,
    ) -> RedisResult<Arc<Reconnecting>> {
        let conn = client.get_async_connection().await?;
        let nodes = nodes
            .iter()
            .filter_map(|n| n.as_str().into_connection_info().ok())
            .collect();
        let this = Arc::new(Reconnecting {
            client,
            nodes,
            state: Mutex::new(State {
                live: Some(Live::new(conn)),
                ..State::default()
            }),
        });
        tokio::spawn(probe_while_held(Arc::downgrade(&this)));
        Ok(this)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, made first if there is none, no other command is making one, and the
    /// last attempt is old enough.
    async fn current(&self) -> RedisResult<(ClusterConnection, watch::Receiver<()>)> {
        {
            let mut state = self.state();
            if let Some(live) = &state.live {
                return Ok(live.hold());
            }
            if state.connecting {
                return Err(unavailable("connecting again"));
            }
            if state
                .failed_at
                .is_some_and(|at| at.elapsed() < RECONNECT_EVERY)
            {
                return Err(unavailable("connecting again shortly"));
            }
            state.connecting = true;
        }
        let mut connecting = Connecting {
            connection: self,
            ended: false,
        };
        let made = self.client.get_async_connection().await;
        connecting.ended = true;
        let mut state = self.state();
        match made {
            Ok(conn) => {
                let live = Live::new(conn);
                let held = live.hold();
                state.live = Some(live);
                state.failed_at = None;
                state.suspect = false;
                Ok(held)
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Runs `command` on the connection, abandoning it if the connection is dropped meanwhile.
    async fn run<T>(
        &self,
        command: impl AsyncFnOnce(&mut ClusterConnection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let (mut conn, mut alive) = self.current().await?;
        let result = tokio::select! {
            result = command(&mut conn) => result,
            _ = alive.changed() => Err(unavailable("the command was abandoned with its connection")),
        };
        let mut state = self.state();
        match &result {
            Err(e) if for_want_of_a_node(e) => state.suspect = true,
            _ => state.answered_at = Some(Instant::now()),
        }
        drop(state);
        result
    }

    /// Once a second: a `PING` through the connection if nothing was answered on it for a
    /// second; and when that or a command failed for want of a node, whether any node answers
    /// at all. If none does, the connection is dropped. A healthy connection also learns the
    /// cluster's nodes every [`LEARN_EVERY`].
    async fn probe(&self) {
        let (idle, learn) = {
            let state = self.state();
            if state.live.is_none() {
                return;
            }
            let idle = state
                .answered_at
                .is_none_or(|at| at.elapsed() >= RECONNECT_EVERY);
            let learn = !state.suspect
                && state
                    .learned_at
                    .is_none_or(|at| at.elapsed() >= LEARN_EVERY);
            (idle, learn)
        };
        if idle {
            let _ = self
                .run(async |conn: &mut ClusterConnection| {
                    redis::cmd("PING").query_async::<()>(conn).await
                })
                .await;
        }
        if learn {
            self.learn().await;
        }
        if !std::mem::take(&mut self.state().suspect) || self.any_node_answers().await {
            return;
        }
        let mut state = self.state();
        if state.live.take().is_some() {
            tracing::warn!(
                "no node of the redis cluster answers; dropping the connection until one does"
            );
        }
    }

    /// Reads which nodes the cluster has (`CLUSTER SLOTS`), for [`any_node_answers`].
    async fn learn(&self) {
        let reply = self
            .run(async |conn: &mut ClusterConnection| {
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Vec<redis::Value>>(conn)
                    .await
            })
            .await;
        if let Ok(reply) = reply {
            let mut nodes: Vec<(String, u16)> = slot_ranges(reply)
                .into_iter()
                .flat_map(|range| range.nodes)
                .collect();
            nodes.sort();
            nodes.dedup();
            let mut state = self.state();
            state.learned = nodes;
            state.learned_at = Some(Instant::now());
        }
    }

    /// Whether some node accepts a connection and answers `PING`: the configured nodes, then
    /// those the cluster named, asked one at a time over connections of the probe's own.
    async fn any_node_answers(&self) -> bool {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(NODE_PROBE_TIMEOUT))
            .set_response_timeout(Some(NODE_PROBE_TIMEOUT));
        let mut nodes = self.nodes.clone();
        if let Some(template) = self.nodes.first() {
            let learned = self.state().learned.clone();
            nodes.extend(
                learned
                    .into_iter()
                    .map(|(host, port)| template.clone().set_addr(ConnectionAddr::Tcp(host, port))),
            );
        }
        for node in nodes {
            let Ok(client) = redis::Client::open(node) else {
                continue;
            };
            let answered = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("PING").query_async::<()>(&mut conn).await
            };
            if answered.await.is_ok() {
                return true;
            }
        }
        false
    }

    pub(crate) fn req_packed_command<'a>(&'a self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        use redis::aio::ConnectionLike;
        Box::pin(self.run(async |conn: &mut ClusterConnection| conn.req_packed_command(cmd).await))
    }

    pub(crate) fn req_packed_commands<'a>(
        &'a self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        use redis::aio::ConnectionLike;
        Box::pin(self.run(async move |conn: &mut ClusterConnection| {
            conn.req_packed_commands(pipeline, offset, count).await
        }))
    }
}

/// Probes the connection every [`RECONNECT_EVERY`] until it is no longer held.
async fn probe_while_held(connection: Weak<Reconnecting>) {
    let mut every = tokio::time::interval(RECONNECT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(connection) = connection.upgrade() else {
            return;
        };
        connection.probe().await;
    }
}

/// Whether an error says a node could not be reached: a connection refused or broken, or no
/// connection to any node (what a connection stuck refreshing its slot map answers). Not a
/// timeout: a slow node is not a lost one.
fn for_want_of_a_node(e: &RedisError) -> bool {
    e.kind() == ErrorKind::ClusterConnectionNotFound
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || (e.is_io_error() && !e.is_timeout())
}

/// One range of `CLUSTER SLOTS`: its slots and its nodes (`host`, `port`), the primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub from: u16,
    pub to: u16,
    pub nodes: Vec<(String, u16)>,
}

/// The ranges of a `CLUSTER SLOTS` reply. A node without a usable address (an empty or `?`
/// endpoint) is left out; a range without one keeps its place with fewer nodes.
pub fn slot_ranges(reply: Vec<Value>) -> Vec<SlotRange> {
    let mut ranges = Vec::new();
    for range in reply {
        let Value::Array(fields) = range else {
            continue;
        };
        let mut fields = fields.into_iter();
        let (Some(from), Some(to)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(from), Ok(to)) = (
            redis::from_redis_value::<u16>(from),
            redis::from_redis_value::<u16>(to),
        ) else {
            continue;
        };
        let nodes = fields
            .filter_map(|node| {
                let Value::Array(node) = node else {
                    return None;
                };
                let mut node = node.into_iter();
                let host: String = redis::from_redis_value(node.next()?).ok()?;
                let port: u16 = redis::from_redis_value(node.next()?).ok()?;
                (!host.is_empty() && host != "?").then_some((host, port))
            })
            .collect();
        ranges.push(SlotRange { from, to, nodes });
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges_name_every_node_with_an_address_primary_first() {
        // As Redis 7 answers: [from, to, [host, port, id, {…}], …].
        let resp = "*2\r\n\
            *4\r\n:0\r\n:5460\r\n\
              *3\r\n$8\r\n10.0.0.1\r\n:6379\r\n$2\r\nid\r\n\
              *3\r\n$8\r\n10.0.0.4\r\n:6379\r\n$2\r\nid\r\n\
            *4\r\n:5461\r\n:16383\r\n\
              *3\r\n$3\r\n::1\r\n:7000\r\n$2\r\nid\r\n\
              *3\r\n$1\r\n?\r\n:7001\r\n$2\r\nid\r\n";
        let Value::Array(reply) = redis::parse_redis_value(resp.as_bytes()).unwrap() else {
            panic!("an array");
        };
        assert_eq!(
            slot_ranges(reply),
            vec![
                SlotRange {
                    from: 0,
                    to: 5460,
                    nodes: vec![("10.0.0.1".into(), 6379), ("10.0.0.4".into(), 6379)],
                },
                SlotRange {
                    from: 5461,
                    to: 16383,
                    nodes: vec![("::1".into(), 7000)],
                },
            ]
        );
    }
}
