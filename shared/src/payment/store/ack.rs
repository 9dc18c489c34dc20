//! Durable acceptance (`[redis] min_replicas_acked`): a write the API answers for, or a worker
//! moves on from, is followed by `WAIT n timeout` on the connection it went through, and counts
//! as done only when `n` replicas hold it. The one owner of that logic: every writing method of
//! [`Store`] takes its connection from [`Store::writer`] and hands it to
//! [`Store::acknowledge`] after a write that landed.
//!
//! Connections. `WAIT` blocks the connection it is sent on until the replicas answer or the
//! timeout passes, and `WAIT` covers the writes of *its own* connection only (the offset Redis
//! keeps per client). On the shared multiplexed [`ConnectionManager`] every command of the
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
//! For workers, [`StoreError::NotReplicated`] is a storage error like any other: the job runs
//! again later and re-reads the record; the write itself is on the primary, and the charge
//! pipeline settles an open attempt from the processor's records before sending anything.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisFuture, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Store, StoreError};

/// Connections one store keeps for writes and their `WAIT`s; more concurrent writes wait for
/// one to be free.
pub const WRITE_CONNECTIONS: usize = 64;

/// How long the marker of [`Store::confirm_replicated`] lives.
const MARKER_TTL_MS: u64 = 10_000;

/// `[redis] min_replicas_acked` and its timeout, with the connections that carry them.
#[derive(Debug)]
pub(super) struct Acks {
    replicas: u32,
    timeout: Duration,
    idle: Mutex<Vec<MultiplexedConnection>>,
    slots: Semaphore,
}

impl Acks {
    pub(super) fn new(replicas: u32, timeout: Duration) -> Option<Acks> {
        (replicas > 0).then(|| Acks {
            replicas,
            timeout,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(WRITE_CONNECTIONS),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connection one write goes through: the shared one when no replica must acknowledge,
/// else one of the store's write connections, held for the write and its `WAIT`. Dropped, it
/// goes back to the pool unless its last command failed at the connection (then it and every
/// idle one are closed: after a broken connection or a restarted Redis they are all suspect)
/// or was abandoned while in flight (a cancelled request: a `WAIT` may still be pending on it).
pub(super) struct Writer<'a> {
    conn: Conn,
    pool: Option<(&'a Acks, SemaphorePermit<'a>)>,
    /// The last command was answered, or failed without harming the connection.
    reusable: bool,
}

enum Conn {
    Shared(ConnectionManager),
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
            let mut idle = acks.idle();
            if self.reusable {
                idle.push(conn.clone());
            } else {
                idle.clear();
            }
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
            self.reusable = false;
            let result = match &mut self.conn {
                Conn::Shared(c) => c.req_packed_command(cmd).await,
                Conn::Own(c) => c.req_packed_command(cmd).await,
            };
            self.reusable = answered(&result);
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
            self.reusable = false;
            let result = match &mut self.conn {
                Conn::Shared(c) => c.req_packed_commands(pipeline, offset, count).await,
                Conn::Own(c) => c.req_packed_commands(pipeline, offset, count).await,
            };
            self.reusable = answered(&result);
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
    /// The connection for a write that [`Store::acknowledge`] will cover.
    pub(super) async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        let Some(acks) = &self.acks else {
            return Ok(Writer {
                conn: Conn::Shared(self.conn().await?),
                pool: None,
                reusable: true,
            });
        };
        let slot = acks
            .slots
            .acquire()
            .await
            .expect("the write connections' semaphore is never closed");
        let idle = acks.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    // The WAIT itself may take the whole timeout.
                    .set_response_timeout(Some(acks.timeout + Duration::from_secs(2)));
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        Ok(Writer {
            conn: Conn::Own(conn),
            pool: Some((acks, slot)),
            reusable: true,
        })
    }

    /// After a write through `writer` that the caller is about to report as done: with
    /// `min_replicas_acked = n > 0`, `WAIT n timeout` on that connection, and
    /// [`StoreError::NotReplicated`] when fewer replicas acknowledged it in time (the write
    /// stays on the primary). Nothing at all with `n = 0`.
    pub(super) async fn acknowledge(
        &self,
        mut writer: Writer<'_>,
        wrote: Wrote,
    ) -> Result<(), StoreError> {
        let Some(acks) = writer.pool.as_ref().map(|(acks, _)| *acks) else {
            return Ok(());
        };
        if wrote == Wrote::Before {
            let () = redis::cmd("SET")
                .arg(self.layout.ack_marker())
                .arg("1")
                .arg("PX")
                .arg(MARKER_TTL_MS)
                .query_async(&mut writer)
                .await?;
        }
        let timeout_ms = u64::try_from(acks.timeout.as_millis()).unwrap_or(u64::MAX);
        let acked: u32 = redis::cmd("WAIT")
            .arg(acks.replicas)
            .arg(timeout_ms)
            .query_async(&mut writer)
            .await?;
        if acked >= acks.replicas {
            Ok(())
        } else {
            Err(StoreError::NotReplicated {
                acked,
                wanted: acks.replicas,
                timeout_ms,
            })
        }
    }

    /// Waits until `min_replicas_acked` replicas hold everything written so far on the primary
    /// (a marker write, then `WAIT`), for an answer that repeats what an earlier request wrote.
    /// Nothing with `min_replicas_acked = 0`.
    pub async fn confirm_replicated(&self) -> Result<(), StoreError> {
        if self.acks.is_none() {
            return Ok(());
        }
        let writer = self.writer().await?;
        self.acknowledge(writer, Wrote::Before).await
    }
}
