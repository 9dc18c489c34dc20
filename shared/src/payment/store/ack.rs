//! Durable acceptance (`[redis] min_replicas_acked`): a write the API answers for, or a worker
//! moves on from, is followed by `WAIT n timeout` on the connection it went through, and counts
//! as done only when `n` replicas hold it. The one owner of that logic: every writing method of
//! [`Store`] takes its connection from [`Store::writer`] and hands it to
//! [`Store::acknowledge`] after a write that landed.
//!
//! Connections. `WAIT` blocks the connection it is sent on until the replicas answer or the
//! timeout passes, and `WAIT` covers the writes of *its own* connection only (the offset Redis
//! keeps per client). On the shared multiplexed connection every command of the
//! process would queue behind each `WAIT`: writes and reads serialised at one replica round trip
//! per write while replicas are healthy, and while one stalls, one timeout per queued write.
//! Measured (local primary and replica, timeout 500 ms, replica SIGSTOPped, 16 concurrent
//! creates): on the shared connection 13 of the 16 failed as `storage_unavailable` (the
//! manager's 2 s response timeout) and a `GET` meanwhile waited 2 s and failed too; with a
//! connection per write all 16 were answered `storage_not_replicated` after 0.5 s and the `GET`
//! took 0.4 ms. (Healthy, both did about 5,000–6,000 creates/s here; a replica a network round
//! trip away caps the shared connection at one write per round trip.) So, with `n > 0`, each
//! write and its `WAIT` go through a connection of their own, taken from a small pool
//! ([`WRITE_CONNECTIONS`] per store): reads and other writes never wait behind a `WAIT`; a
//! stalled replica costs each write its timeout, not the process its throughput. With `n = 0`
//! the shared connection is used exactly as before and no `WAIT` is sent.
//!
//! A write that found nothing to change (an idempotent replay, a cancel of a canceled payment)
//! answers with a state an earlier request wrote, perhaps on the primary only, and through
//! another connection. A `WAIT` covers the writes of its own connection: Redis 7.0 (tested
//! here) moves a connection's `WAIT` offset on every command, later versions only when one of
//! its commands is replicated, and then a `WAIT` after a read-only replay returns at once.
//! [`Store::confirm_replicated`] and a replay therefore write a marker
//! (`flint:{q}:ack`, expiring) first: replication is one ordered stream, so replicas that hold
//! the marker hold everything written before it.
//!
//! Errors. Once the write landed, nothing that goes wrong while confirming it (the marker, the
//! `WAIT`, their connection breaking or timing out) may read as "nothing was written": every
//! such failure is [`StoreError::NotReplicated`] or [`StoreError::ReplicationUnconfirmed`]
//! (the one owner of that mapping is [`confirmation`]), never [`StoreError::Unavailable`]. A
//! write that cannot get a connection within the timeout ([`StoreError::WritersBusy`]) has not
//! been sent: that one does mean nothing was written.
//!
//! Payments (create, cancel, resume, worker transitions) are held back until replicas confirm
//! them. Webhook endpoint changes and redelivery are not ([`Store::acknowledge_or_warn`]): an
//! error after the write would lose a secret shown only in that answer and turn a retry into a
//! second endpoint or a second rotation, so they answer as done and log a warning instead.
//!
//! Redis Cluster. A `WAIT` has no key: a cluster connection would send it to every primary,
//! and it reconnects to a node on its own, after which a `WAIT` covers nothing written before.
//! So the write connections are plain connections to the primary of the written partition's
//! slot ([`super::slots`]), pooled per node, exactly as on one server: the write and its
//! `WAIT` go through the same connection, which never reconnects (a broken one is an error,
//! and the write unconfirmed). A node that no longer serves the slot answers `MOVED` without
//! running the write (nothing written: the answer is `storage_unavailable`); the next write to
//! that slot goes to the node `MOVED` named, and the map is read again for the others. The
//! marker of a replay is the partition's own (`flint:{<tag>}:ack`), so that it lands on the same
//! primary as what it vouches for.
//!
//! For workers, both are storage errors like any other: the job runs again later and re-reads
//! the record; the write itself is on the primary, and the charge pipeline settles an open
//! attempt from the processor's records before sending anything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisFuture, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::slots::{self, SlotMap, node_url};
use super::{Store, StoreError};
use crate::redis_target::{RedisConnection, RedisTarget};

/// Connections one store keeps for writes and their `WAIT`s; more concurrent writes wait for
/// one to be free.
pub const WRITE_CONNECTIONS: usize = 64;

/// How long the marker of [`Store::confirm_replicated`] lives.
const MARKER_TTL_MS: u64 = 10_000;

/// `[redis] min_replicas_acked` and its timeout, with the connections that carry them.
pub(super) struct Acks {
    replicas: u32,
    timeout: Duration,
    /// Idle write connections by the URL of the server they reach.
    idle: Mutex<HashMap<String, Vec<MultiplexedConnection>>>,
    slots: Semaphore,
    connections: usize,
    /// On a cluster: which primary serves each slot.
    slot_map: SlotMap,
}

/// Never the pool's keys: node URLs keep the cluster's credentials.
impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks")
            .field("replicas", &self.replicas)
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl Acks {
    pub(super) fn new(replicas: u32, timeout: Duration) -> Option<Acks> {
        Acks::with_connections(replicas, timeout, WRITE_CONNECTIONS)
    }

    fn with_connections(replicas: u32, timeout: Duration, connections: usize) -> Option<Acks> {
        (replicas > 0).then(|| Acks {
            replicas,
            timeout,
            idle: Mutex::new(HashMap::new()),
            slots: Semaphore::new(connections),
            connections,
            slot_map: SlotMap::default(),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<MultiplexedConnection>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connection one write goes through: the shared one when no replica must acknowledge,
/// else one of the store's write connections, held for the write and its `WAIT`. Dropped, it
/// goes back to the pool unless its last command failed at the connection (then it and every
/// idle one are closed, and the slot map is read again: after a broken connection or a
/// restarted Redis they are all suspect) or was abandoned while in flight (a cancelled request:
/// a `WAIT` may still be pending on it, so it alone is closed).
pub(super) struct Writer<'a> {
    conn: Conn,
    pool: Option<(&'a Acks, SemaphorePermit<'a>)>,
    /// The last command was answered, or failed without harming the connection.
    reusable: bool,
    /// A command was sent and its answer not yet read (dropped so, the request was cancelled).
    in_flight: bool,
    /// The URL of the server an own connection reaches (its key in the pool).
    server: String,
    /// The marker key a replay's confirmation writes: in the written partition's slot.
    marker: String,
    /// A command was answered `MOVED`: the slot and the node serving it now.
    moved: Option<(u16, String)>,
}

enum Conn {
    Shared(RedisConnection),
    Own(MultiplexedConnection),
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.conn {
            Conn::Shared(_) => "Writer(shared)",
            Conn::Own(_) => "Writer(own)",
        })
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let (Some((acks, _)), Conn::Own(conn)) = (&self.pool, &self.conn) {
            if self.in_flight {
                // Cancelled mid-command: nothing says the node or the others are unwell.
                return;
            }
            // A node that moved its slots, broke or died: ask the cluster again next time.
            if let Some((slot, address)) = self.moved.take() {
                acks.slot_map.moved(slot, address);
            } else if !self.reusable {
                acks.slot_map.forget();
            }
            let mut idle = acks.idle();
            if self.reusable {
                idle.entry(self.server.clone())
                    .or_default()
                    .push(conn.clone());
            } else {
                idle.clear();
            }
        }
    }
}

impl Writer<'_> {
    /// A command is about to be sent: until its answer is read, the connection is neither
    /// reusable nor free of a pending reply.
    fn sending(&mut self) {
        self.reusable = false;
        self.in_flight = true;
    }

    /// Its answer was read: whether it left the connection usable, and the `MOVED` it held.
    fn answered(&mut self, reusable: bool, moved: Option<(u16, String)>) {
        self.in_flight = false;
        self.reusable = reusable;
        if moved.is_some() {
            self.moved = moved;
        }
    }
}

/// Whether `result` leaves the connection usable (a reply, even an error reply).
fn answered<T>(result: &redis::RedisResult<T>) -> bool {
    result
        .as_ref()
        .err()
        .is_none_or(|e| !(e.is_unrecoverable_error() || e.is_io_error() || e.is_timeout()))
}

impl ConnectionLike for Writer<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.sending();
            let result = match &mut self.conn {
                Conn::Shared(c) => c.req_packed_command(cmd).await,
                Conn::Own(c) => c.req_packed_command(cmd).await,
            };
            self.answered(answered(&result), slots::moved(&result));
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.sending();
            let result = match &mut self.conn {
                Conn::Shared(c) => c.req_packed_commands(pipeline, offset, count).await,
                Conn::Own(c) => c.req_packed_commands(pipeline, offset, count).await,
            };
            self.answered(answered(&result), slots::moved_any(&result));
            result
        })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Shared(c) => c.get_db(),
            Conn::Own(c) => c.get_db(),
        }
    }
}

/// Whether the writer's connection wrote what is to be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrote {
    /// The write went through this connection.
    Here,
    /// What is answered was written earlier, maybe elsewhere (a replay).
    Before,
}

impl Store {
    /// The connection for a write to `partition` that [`Store::acknowledge`] will cover. With
    /// every write connection busy for `min_replicas_timeout_ms`, [`StoreError::WritersBusy`]:
    /// the write has not been sent.
    pub(super) async fn writer(&self, partition: usize) -> Result<Writer<'_>, StoreError> {
        let marker = self.partition(partition).ack_marker();
        let Some(acks) = &self.acks else {
            // Through `conn`, which checks the partition count.
            return Ok(Writer {
                conn: Conn::Shared(self.conn().await?),
                pool: None,
                reusable: true,
                in_flight: false,
                server: String::new(),
                marker,
                moved: None,
            });
        };
        self.verify_partitions().await?;
        let slot = tokio::time::timeout(acks.timeout, acks.slots.acquire())
            .await
            .map_err(|_| StoreError::WritersBusy {
                connections: acks.connections,
                waited_ms: millis(acks.timeout),
            })?
            .expect("the write connections' semaphore is never closed");
        let server = match self.redis.target() {
            RedisTarget::Standalone(url) => url.clone(),
            RedisTarget::Cluster(nodes) => {
                let tag = self.partitions.tag(partition);
                let slot = crate::partition::key_slot(&format!("{{{tag}}}"));
                let mut conn = self.conn().await?;
                let address = acks.slot_map.primary(slot, &mut conn).await?;
                node_url(nodes.first().map_or("redis://", String::as_str), &address)?
            }
        };
        let idle = acks.idle().get_mut(&server).and_then(Vec::pop);
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    // The WAIT itself may take the whole timeout.
                    .set_response_timeout(Some(acks.timeout + Duration::from_secs(2)));
                let connected = redis::Client::open(server.as_str())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await;
                if connected.is_err() {
                    // Perhaps a dead primary: the next write reads the slot map again.
                    acks.slot_map.forget();
                }
                connected?
            }
        };
        Ok(Writer {
            conn: Conn::Own(conn),
            pool: Some((acks, slot)),
            reusable: true,
            in_flight: false,
            server,
            marker,
            moved: None,
        })
    }

    /// After a write through `writer` that the caller is about to report as done: with
    /// `min_replicas_acked = n > 0`, `WAIT n timeout` on that connection, and
    /// [`StoreError::NotReplicated`] when fewer replicas acknowledged it in time, or
    /// [`StoreError::ReplicationUnconfirmed`] when the marker or the `WAIT` failed (the write
    /// stays on the primary either way; never [`StoreError::Unavailable`]). Nothing at all with
    /// `n = 0`.
    pub(super) async fn acknowledge(
        &self,
        mut writer: Writer<'_>,
        wrote: Wrote,
    ) -> Result<(), StoreError> {
        let Some(acks) = writer.pool.as_ref().map(|(acks, _)| *acks) else {
            return Ok(());
        };
        let timeout_ms = millis(acks.timeout);
        let acked = async {
            if wrote == Wrote::Before {
                let () = redis::cmd("SET")
                    .arg(&writer.marker)
                    .arg("1")
                    .arg("PX")
                    .arg(MARKER_TTL_MS)
                    .query_async(&mut writer)
                    .await?;
            }
            redis::cmd("WAIT")
                .arg(acks.replicas)
                .arg(timeout_ms)
                .query_async::<u32>(&mut writer)
                .await
        }
        .await;
        confirmation(acks.replicas, timeout_ms, acked)
    }

    /// [`Store::acknowledge`] for a write whose answer replication does not hold back (webhook
    /// endpoint changes, redelivery): the `WAIT` is sent, and falling short of it is returned for
    /// the caller to log, not to answer with. Answering an error here would lose what only that
    /// answer shows (a new endpoint's or a rotated secret) and invite a retry that makes a second
    /// endpoint or a second rotation.
    pub(super) async fn acknowledge_or_warn(&self, writer: Writer<'_>) -> Option<StoreError> {
        self.acknowledge(writer, Wrote::Here).await.err()
    }

    /// Waits until `min_replicas_acked` replicas hold everything written so far on the primary
    /// (a marker write, then `WAIT`), for an answer that repeats what an earlier request wrote.
    /// Nothing with `min_replicas_acked = 0`.
    pub async fn confirm_replicated(&self, payment_id: &str) -> Result<(), StoreError> {
        if self.acks.is_none() {
            return Ok(());
        }
        let writer = self.writer(self.partitions.of_payment(payment_id)).await?;
        self.acknowledge(writer, Wrote::Before).await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a confirmation after a landed write amounts to: `acked` is the marker-and-`WAIT` reply.
/// Whatever failed, the write is on the primary: never [`StoreError::Unavailable`], whose
/// answer says nothing was written (a client believing it might repeat the request under a new
/// key, and be charged twice).
fn confirmation(
    wanted: u32,
    timeout_ms: u64,
    acked: redis::RedisResult<u32>,
) -> Result<(), StoreError> {
    match acked {
        Ok(acked) if acked >= wanted => Ok(()),
        Ok(acked) => Err(StoreError::NotReplicated {
            acked,
            wanted,
            timeout_ms,
        }),
        Err(error) => Err(StoreError::ReplicationUnconfirmed { wanted, error }),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use flint_testkit::redis::RedisServer;

    use super::*;

    #[test]
    fn a_failure_after_the_write_is_never_reported_as_nothing_written() {
        let io = |kind| redis::RedisError::from(io::Error::new(kind, "test"));
        let cases: Vec<(u32, redis::RedisResult<u32>, &str)> = vec![
            (1, Ok(1), "ok"),
            (1, Ok(2), "ok"),
            (2, Ok(1), "short"),
            (1, Ok(0), "short"),
            (1, Err(io(io::ErrorKind::ConnectionReset)), "unconfirmed"),
            (1, Err(io(io::ErrorKind::BrokenPipe)), "unconfirmed"),
            (1, Err(io(io::ErrorKind::TimedOut)), "unconfirmed"),
            (
                1,
                Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "an error reply to the marker",
                ))),
                "unconfirmed",
            ),
        ];
        for (wanted, acked, expected) in cases {
            let shown = format!("{acked:?}");
            let got = match confirmation(wanted, 500, acked) {
                Ok(()) => "ok",
                Err(StoreError::NotReplicated { .. }) => "short",
                Err(StoreError::ReplicationUnconfirmed { .. }) => "unconfirmed",
                Err(other) => panic!("{shown}: {other} (reads as nothing written)"),
            };
            assert_eq!(got, expected, "wanted {wanted}, reply {shown}");
        }
    }

    #[tokio::test]
    async fn the_write_pool_never_prints_the_node_urls_it_is_keyed_by() {
        let redis = RedisServer::start();
        let acks = Acks::new(1, Duration::from_millis(200)).unwrap();
        let conn = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        acks.idle()
            .insert("redis://:hunter2@10.0.0.1:6379".to_owned(), vec![conn]);
        let shown = format!("{acks:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("10.0.0.1"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_write_that_finds_no_free_connection_in_time_is_refused_unsent() {
        let redis = RedisServer::start();
        let mut store = Store::new(
            RedisTarget::Standalone(redis.url()),
            "charges",
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        store.acks = Acks::with_connections(1, Duration::from_millis(200), 1);
        let held = store.writer(0).await.unwrap();

        let started = std::time::Instant::now();
        let second = tokio::time::timeout(Duration::from_secs(5), store.writer(0))
            .await
            .expect("waiting for a write connection is bounded");
        assert!(
            matches!(
                second,
                Err(StoreError::WritersBusy {
                    connections: 1,
                    waited_ms: 200
                })
            ),
            "{second:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Freed, the connection serves the next write.
        drop(held);
        assert!(store.writer(0).await.is_ok());
    }
}
