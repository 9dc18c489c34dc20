//! A Redis Cluster connection that is dropped when no node of the cluster can be reached, and
//! made again by a later command.
//!
//! Written by hand because redis-rs 1.8's cluster connection, once no node answers, starts its
//! slot refresh again the moment it fails, without a pause, for as long as the cluster stays
//! away. Measured: a `flint worker` whose six cluster nodes were all stopped used 75 % of a core
//! and logged 16,000 lines a second. Dropping the connection ends that loop (its task is
//! aborted with its last clone); a `PING` each second finds a connection that is idle
//! while it spins. While there is none, commands fail at once, and a new one is
//! tried at most once per [`RECONNECT_EVERY`]; a connection is never dropped younger than that,
//! so a cluster that answers again is not churned.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{Mutex, watch};

/// The shortest time between two attempts to connect, and the youngest a connection is
/// dropped at.
pub(crate) const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Reconnecting {
    client: ClusterClient,
    state: Mutex<State>,
}

struct State {
    live: Option<Live>,
    /// How many connections were made.
    made: u64,
    /// When the last attempt to connect failed.
    failed_at: Option<Instant>,
}

/// The connection in use.
struct Live {
    /// Its number among those made.
    made: u64,
    at: Instant,
    conn: ClusterConnection,
    /// Dropped with the connection: commands still in flight on it are abandoned then, for a
    /// command in flight holds the connection, and its spinning task, alive.
    alive: watch::Sender<()>,
}

/// A command's hold on the connection it runs on.
struct Held {
    made: u64,
    conn: ClusterConnection,
    alive: watch::Receiver<()>,
}

impl Live {
    fn new(made: u64, conn: ClusterConnection) -> Live {
        Live {
            made,
            at: Instant::now(),
            conn,
            alive: watch::Sender::new(()),
        }
    }

    fn hold(&self) -> Held {
        Held {
            made: self.made,
            conn: self.conn.clone(),
            alive: self.alive.subscribe(),
        }
    }
}

impl Reconnecting {
    /// Connects now (a cluster that cannot be reached at start is an error, as before), and
    /// watches the connection while it is held.
    pub(crate) async fn connect(client: ClusterClient) -> RedisResult<Arc<Reconnecting>> {
        let conn = client.get_async_connection().await?;
        let this = Arc::new(Reconnecting {
            client,
            state: Mutex::new(State {
                live: Some(Live::new(1, conn)),
                made: 1,
                failed_at: None,
            }),
        });
        tokio::spawn(probe_while_held(Arc::downgrade(&this)));
        Ok(this)
    }

    /// The connection, made first if there is none and the last attempt is old enough.
    async fn current(&self) -> RedisResult<Held> {
        let mut state = self.state.lock().await;
        if let Some(live) = &state.live {
            return Ok(live.hold());
        }
        if state
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_EVERY)
        {
            return Err(RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "no node of the redis cluster answered",
                "connecting again shortly".to_owned(),
            )));
        }
        match self.client.get_async_connection().await {
            Ok(conn) => {
                state.made += 1;
                let live = Live::new(state.made, conn);
                let held = live.hold();
                state.live = Some(live);
                state.failed_at = None;
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
        let Held {
            made,
            mut conn,
            mut alive,
        } = self.current().await?;
        let result = tokio::select! {
            result = command(&mut conn) => result,
            _ = alive.changed() => Err(RedisError::from((
                ErrorKind::ClusterConnectionNotFound,
                "no node of the redis cluster answered",
                "the command was abandoned with its connection".to_owned(),
            ))),
        };
        drop(conn);
        self.after(made, &result).await;
        result
    }

    /// After a command on connection `made`: drops it when its answer says a node could not be
    /// reached (and it is old enough), so that a refresh loop stops. A new connection reads the
    /// slot map afresh, as the old one would have, so a failover of one node is ridden out the
    /// same way.
    async fn after<T>(&self, made: u64, result: &RedisResult<T>) {
        if !result.as_ref().is_err_and(unreachable) {
            return;
        }
        let mut state = self.state.lock().await;
        if state
            .live
            .as_ref()
            .is_some_and(|live| live.made == made && live.at.elapsed() >= RECONNECT_EVERY)
        {
            tracing::warn!("a redis cluster node could not be reached; connecting again");
            state.live = None;
        }
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

/// Sends a `PING` through the connection every [`RECONNECT_EVERY`] while it is held: a
/// connection nobody sends commands through would otherwise never find out that the cluster
/// is gone, and spin.
async fn probe_while_held(connection: Weak<Reconnecting>) {
    let mut every = tokio::time::interval(RECONNECT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(connection) = connection.upgrade() else {
            return;
        };
        if connection.state.lock().await.live.is_some() {
            let _ = connection
                .run(async |conn: &mut ClusterConnection| {
                    redis::cmd("PING").query_async::<()>(conn).await
                })
                .await;
        }
    }
}

/// Whether an error says a node could not be reached: a connection refused or broken, or no
/// connection to any node (what a connection stuck refreshing its slot map answers). Not a
/// timeout: a slow node is not a lost one.
fn unreachable(e: &RedisError) -> bool {
    e.kind() == ErrorKind::ClusterConnectionNotFound
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || (e.is_io_error() && !e.is_timeout())
}
