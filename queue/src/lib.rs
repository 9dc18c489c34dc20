//! `flint-queue`: Flint's Redis backend for apalis. Generic over job types; knows nothing of
//! payments.
//!
//! # Why Redis Streams
//!
//! A queue that moves money must lease jobs (never lose one when a worker dies), block idle
//! workers on Redis (no sleep-polling), and fetch and acknowledge in batches. A stream with a
//! consumer group gives all three in single commands: `XREADGROUP … BLOCK` fetches a batch and
//! leases it atomically (the group's pending-entries list is the lease table), `XAUTOCLAIM`
//! finds jobs whose lease has expired without any registry of live workers, and `XACK`/`XDEL`
//! take many ids per call. A job whose lease ran out is moved to a new entry rather than
//! claimed in place, so an entry id is the lease itself: one `XACK` over a batch both
//! acknowledges it and tells which entries the worker still held. With reliable lists the
//! same guarantees need a per-worker in-flight list, a registry of worker heartbeats to find
//! the dead ones, and a scan of their lists, which is what made apalis-redis 1.0 slow to
//! recover (measured: its fetch also wedges once more than about 8,000 jobs are due at once,
//! a Redis restart stops its workers for good, and it retries every failure 25 times whatever
//! the job's policy).
//! Delayed jobs wait in a sorted set and move to the stream in bounded batches (1,000 per
//! script call), so any number due at once drains without hitting Lua's `unpack` limit.
//! See `BENCHMARKS.md` for the measured cost per job.
//!
//! # Guarantees
//!
//! - At least once: a fetched job is leased; a worker that dies loses its leases after
//!   [`QueueConfig::lease`] and another worker runs the jobs. Live workers renew their leases.
//!   A lease is the stream entry itself: a job whose lease ran out is moved to a new entry, so
//!   the worker that lost it can neither renew nor acknowledge it any more, and acknowledging a
//!   batch needs one `XACK` to know which entries are still this worker's.
//! - Bounded redelivery: a job whose lease runs out more than
//!   [`QueueConfig::max_lost_leases`] times in a row is dead-lettered with the reason; its
//!   handler sees the count so far ([`LostLeases`]).
//! - Idempotent push by job id while the job is live ([`Pushed::Duplicate`]).
//! - Explicit outcomes ([`Outcome`]): complete, retry at a time, or dead-letter. The backend
//!   never retries on its own; a handler error dead-letters the job with the error as reason.
//! - Nothing left behind: a finished job's entry and id are deleted; dead letters are capped.
//! - Workers survive Redis restarts and lost connections: they log, back off and reconnect.
//! - All keys of a queue share one hash tag (see [`keys`]); the layout of a job is written only
//!   by the Lua in [`lua`], which other scripts include to move jobs atomically with their data.
//! - Standalone or cluster: a queue runs on one Redis server or on a Redis Cluster
//!   ([`RedisTarget`], [`Queue::connect_to`]); every script and command touches one slot, and
//!   workers ride a failover as they ride a restart.

mod backend;
mod cluster_connection;
mod config;
mod connection;
mod delivery;
mod error;
pub mod keys;
pub mod lua;
pub mod metrics;
mod outcome;
mod queue;
mod store;

pub use backend::{AckLayer, AckService, RedisBackend};
pub use cluster_connection::{SlotRange, slot_ranges};
pub use config::QueueConfig;
pub use connection::{RedisConnection, RedisTarget, Timeouts};
pub use delivery::LostLeases;
pub use error::QueueError;
pub use outcome::{JobResponse, Outcome};
pub use queue::{NewJob, Pushed, Queue, Replayed};
pub use store::{DeadLetter, QueueStats};

/// `len` random base62 characters (job ids without a caller id, consumer names).
pub(crate) fn token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
