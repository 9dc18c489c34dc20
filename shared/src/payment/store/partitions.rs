//! The partition count is fixed for the life of the data: a payment's partition follows from
//! its id and idempotency key modulo the count, so a process counting differently would look
//! for payments where they are not and write new ones where no worker of the other count
//! looks. The first process to run records the count in Redis (`flint:{<queue>}:partitions`);
//! every store checks it before its first command and refuses to work on a mismatch.

use super::{Store, StoreError};
use crate::redis_target::RedisConnection;

/// What a store may do, given the count Redis holds and the count it was configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The counts agree.
    Agree,
    /// Nothing recorded yet: record the configured count (unless another process records
    /// first, which is checked again).
    Record,
    /// Redis holds data of another count.
    Refuse { recorded: u16 },
}

/// `recorded`: the count in Redis, if any. `found`: the counts whose layouts hold payments or
/// jobs (looked for only when nothing is recorded: data written before counts were recorded,
/// or whose record was lost).
pub(super) fn judge(recorded: Option<u16>, found: &[u16], configured: u16) -> Verdict {
    match recorded {
        Some(n) if n == configured => Verdict::Agree,
        Some(n) => Verdict::Refuse { recorded: n },
        None => match found.iter().find(|&&n| n != configured) {
            Some(&n) => Verdict::Refuse { recorded: n },
            None => Verdict::Record,
        },
    }
}

impl Store {
    /// Checks (once per store, then remembered) that Redis holds data of this store's
    /// partition count, recording the count when nothing is recorded yet.
    pub async fn verify_partitions(&self) -> Result<(), StoreError> {
        if self.partitions_verified.initialized() {
            return Ok(());
        }
        let mut conn = self.redis.get().await?;
        self.verified_on(&mut conn).await
    }

    /// The count Redis has recorded, if any, without recording one (for operators' tools).
    pub async fn recorded_partitions(&self) -> Result<Option<u16>, StoreError> {
        let mut conn = self.redis.get().await?;
        self.recorded_on(&mut conn).await
    }

    /// The recorded count, read through `conn` (0 for a record that is not a count).
    async fn recorded_on(&self, conn: &mut RedisConnection) -> Result<Option<u16>, StoreError> {
        let recorded: Option<String> = redis::cmd("GET")
            .arg(self.partitions_key())
            .query_async(conn)
            .await?;
        Ok(recorded.map(|r| r.parse().unwrap_or(0)))
    }

    fn partitions_key(&self) -> String {
        format!("flint:{{{}}}:partitions", self.partitions.queue())
    }

    pub(super) async fn verified_on(&self, conn: &mut RedisConnection) -> Result<(), StoreError> {
        self.partitions_verified
            .get_or_try_init(|| self.verify(conn))
            .await
            .map(|_| ())
    }

    async fn verify(&self, conn: &mut RedisConnection) -> Result<(), StoreError> {
        let configured = u16::try_from(self.partitions.count()).unwrap_or(u16::MAX);
        let key = self.partitions_key();
        for _ in 0..2 {
            let recorded = self.recorded_on(conn).await?;
            let found = match recorded {
                Some(_) => Vec::new(),
                None => self.counts_with_data(conn).await?,
            };
            match judge(recorded, &found, configured) {
                Verdict::Agree => return Ok(()),
                Verdict::Refuse { recorded } => {
                    return Err(StoreError::PartitionsChanged {
                        recorded,
                        configured,
                    });
                }
                Verdict::Record => {
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(configured)
                        .arg("NX")
                        .query_async(conn)
                        .await?;
                    if set.is_some() {
                        return Ok(());
                    }
                    // Another process recorded first: compare with what it recorded.
                }
            }
        }
        Err(StoreError::PartitionsChanged {
            recorded: 0,
            configured,
        })
    }

    /// `[1]` when the one-partition layout holds payments (live or finished ones, or delayed
    /// jobs; every ready or leased charge job has a live payment): data written before counts
    /// were recorded. Other counts' layouts are not looked for (a count recorded and then lost
    /// together with a change of count is not caught: about 2,000 probes at every first start
    /// cost more than that case is likely).
    async fn counts_with_data(&self, conn: &mut RedisConnection) -> Result<Vec<u16>, StoreError> {
        let queue = self.partitions.queue();
        let keys = flint_queue::keys::Keys::new(queue);
        let held: u64 = redis::cmd("EXISTS")
            .arg(format!("flint:{{{queue}}}:live"))
            .arg(format!("flint:{{{queue}}}:expiring"))
            .arg(&keys.delayed)
            .query_async(conn)
            .await?;
        Ok(if held > 0 { vec![1] } else { Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_count_never_changes_under_data() {
        for (recorded, found, configured, want) in [
            (Some(3), &[][..], 3, Verdict::Agree),
            (Some(1), &[], 1, Verdict::Agree),
            (Some(3), &[], 4, Verdict::Refuse { recorded: 3 }),
            (Some(3), &[], 1, Verdict::Refuse { recorded: 3 }),
            (Some(1), &[], 3, Verdict::Refuse { recorded: 1 }),
            // Nothing recorded (never, or the record was lost): the data says.
            (None, &[1], 3, Verdict::Refuse { recorded: 1 }),
            (None, &[3], 1, Verdict::Refuse { recorded: 3 }),
            (None, &[3], 4, Verdict::Refuse { recorded: 3 }),
            (None, &[3, 4], 4, Verdict::Refuse { recorded: 3 }),
            (None, &[1], 1, Verdict::Record),
            (None, &[3], 3, Verdict::Record),
            (None, &[], 3, Verdict::Record),
            (None, &[], 1, Verdict::Record),
        ] {
            assert_eq!(
                judge(recorded, found, configured),
                want,
                "{recorded:?} {found:?} {configured}"
            );
        }
    }
}
