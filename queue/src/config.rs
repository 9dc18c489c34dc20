//! Queue tuning. Defaults suit payments: a 15 s lease (a killed worker's jobs run elsewhere
//! within seconds, not minutes), batches of 64, and idle workers blocked on Redis for at most
//! a second at a time.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The queue's name; part of every key (`flint:{name}:…`, or `flint:{slot}:name:…`).
    pub name: String,
    /// The queue whose hash slot this one lives in (its keys carry that queue's tag), if not
    /// its own: see [`crate::keys::Keys::in_slot`].
    pub slot: Option<String>,
    /// Which partition of its queue this is (`0` for a queue of one): a label of its depth
    /// gauges, so that the partitions' figures do not overwrite each other.
    pub partition: u16,
    /// How long a fetched job stays leased to its worker without renewal. A live worker renews
    /// its leases every [`QueueConfig::renew_every`]; a dead one's jobs are reclaimed after it.
    pub lease: Duration,
    /// How often a live worker renews its leases (a third of the lease unless set).
    pub renew_every: Option<Duration>,
    /// Jobs fetched (and acknowledged) per Redis round trip.
    pub batch: usize,
    /// Longest single blocking read; bounds how late a shutdown or a due delayed job is noticed.
    pub block: Duration,
    /// Delayed jobs moved to ready per script call (kept well under Lua's `unpack` limit).
    pub promote_batch: usize,
    /// Dead letters kept (oldest dropped first).
    pub dead_letters_max: usize,
    /// A consumer (one per worker process) that holds no job and has not read for this long
    /// is removed from the group, so exited processes leave nothing behind.
    pub consumer_idle_limit: Duration,
    /// A job whose lease runs out more often than this in a row (it crashes or stalls every
    /// worker that runs it) is dead-lettered with the reason instead of being run again. The
    /// handler sees the count ([`crate::LostLeases`]) and may give up sooner.
    pub max_lost_leases: u32,
    /// The start of this process's consumer names (`<prefix>-<pid>-<random>`, readable in
    /// `XINFO CONSUMERS`): the worker's name, a pod name in Kubernetes. The host name when
    /// unset.
    pub consumer_prefix: Option<String>,
}

impl QueueConfig {
    pub fn new(name: impl Into<String>) -> QueueConfig {
        QueueConfig {
            name: name.into(),
            slot: None,
            partition: 0,
            lease: Duration::from_secs(15),
            renew_every: None,
            batch: 64,
            block: Duration::from_secs(1),
            promote_batch: 1000,
            dead_letters_max: 100_000,
            consumer_idle_limit: Duration::from_secs(600),
            max_lost_leases: 5,
            consumer_prefix: None,
        }
    }

    pub fn with_consumer_prefix(mut self, prefix: Option<String>) -> Self {
        self.consumer_prefix = prefix;
        self
    }

    pub fn in_slot_of(mut self, queue: impl Into<String>) -> Self {
        self.slot = Some(queue.into());
        self
    }

    /// Partition `partition` of the queue, whose keys carry `tag`
    /// ([`crate::keys::Keys::of_partition`]).
    pub fn in_partition(mut self, partition: u16, tag: impl Into<String>) -> Self {
        self.slot = Some(tag.into());
        self.partition = partition;
        self
    }

    pub(crate) fn keys(&self) -> crate::keys::Keys {
        match &self.slot {
            Some(slot) => crate::keys::Keys::of_partition(slot, &self.name),
            None => crate::keys::Keys::new(&self.name),
        }
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn with_renew_every(mut self, every: Duration) -> Self {
        self.renew_every = Some(every);
        self
    }

    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    pub fn with_dead_letters_max(mut self, max: usize) -> Self {
        self.dead_letters_max = max.max(1);
        self
    }

    pub fn with_max_lost_leases(mut self, max: u32) -> Self {
        self.max_lost_leases = max;
        self
    }

    pub fn with_consumer_idle_limit(mut self, limit: Duration) -> Self {
        self.consumer_idle_limit = limit;
        self
    }

    pub(crate) fn renew_interval(&self) -> Duration {
        self.renew_every.unwrap_or(self.lease / 3)
    }

    pub(crate) fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
