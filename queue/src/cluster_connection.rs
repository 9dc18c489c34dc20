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
//! that fails for want of a node, or the `PING` sent through the connection each second (an
//! idle connection would otherwise never notice), only makes the connection *suspect*; the
//! next probe then asks each configured node directly, and the connection is dropped only when
//! none of them answers. While there is no connection, commands fail at once, and one new
//! connection is tried at most once per [`RECONNECT_EVERY`].

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::watch;

/// The shortest time between two attempts to connect, and between two probes.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How long a probe waits for one node to connect and answer `PING`.
const NODE_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct Reconnecting {
    client: ClusterClient,
    /// The configured nodes, asked one by one when the connection is suspect.
    nodes: Vec<String>,
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

/// Clears `connecting` when the attempt ends, however it ends (a command's future may be
/// dropped while it connects).
struct Connecting<'a>(&'a Reconnecting);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.state().connecting = false;
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
        let _connecting = Connecting(self);
        let made = self.client.get_async_connection().await;
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
        if result.as_ref().is_err_and(for_want_of_a_node) {
            self.state().suspect = true;
        }
        result
    }

    /// Once a second: a `PING` through the connection; and when it or a command failed for
    /// want of a node, whether any configured node answers at all. If none does, the
    /// connection is dropped.
    async fn probe(&self) {
        if self.state().live.is_none() {
            return;
        }
        let _ = self
            .run(async |conn: &mut ClusterConnection| {
                redis::cmd("PING").query_async::<()>(conn).await
            })
            .await;
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

    /// Whether some configured node accepts a connection and answers `PING`, asked one at a
    /// time over connections of the probe's own.
    async fn any_node_answers(&self) -> bool {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(NODE_PROBE_TIMEOUT))
            .set_response_timeout(Some(NODE_PROBE_TIMEOUT));
        for node in &self.nodes {
            let Ok(client) = redis::Client::open(node.as_str()) else {
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
