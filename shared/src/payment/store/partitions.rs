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

/// `recorded`: the count in Redis, if any. `unpartitioned_data`: whether the keys of the
/// one-partition layout hold anything (data written before counts were recorded).
pub(super) fn judge(recorded: Option<u16>, unpartitioned_data: bool, configured: u16) -> Verdict {
    match recorded {
        Some(n) if n == configured => Verdict::Agree,
        Some(n) => Verdict::Refuse { recorded: n },
        None if configured > 1 && unpartitioned_data => Verdict::Refuse { recorded: 1 },
        None => Verdict::Record,
    }
}

impl Store {
    /// Checks (once, then remembered) that Redis holds data of this store's partition count,
    /// recording the count when nothing is recorded yet.
    pub async fn verify_partitions(&self) -> Result<(), StoreError> {
        if self.partitions_verified.initialized() {
            return Ok(());
        }
        let mut conn = self.redis.get().await?;
        self.verified_on(&mut conn).await
    }

    pub(super) async fn verified_on(&self, conn: &mut RedisConnection) -> Result<(), StoreError> {
        self.partitions_verified
            .get_or_try_init(|| self.verify(conn))
            .await
            .map(|_| ())
    }

    async fn verify(&self, conn: &mut RedisConnection) -> Result<(), StoreError> {
        let configured = u16::try_from(self.partitions.count()).unwrap_or(u16::MAX);
        let key = format!("flint:{{{}}}:partitions", self.partitions.queue());
        // The one-partition layout's keys that exist while it holds any payment or job.
        let single = flint_queue::keys::Keys::new(self.partitions.queue());
        let unpartitioned = [
            format!("flint:{{{}}}:live", self.partitions.queue()),
            format!("flint:{{{}}}:expiring", self.partitions.queue()),
            single.stream.clone(),
            single.delayed.clone(),
        ];
        for _ in 0..2 {
            let recorded: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
            let recorded = recorded.map(|r| r.parse::<u16>().unwrap_or(0));
            let data = if recorded.is_none() && configured > 1 {
                let found: u64 = redis::cmd("EXISTS")
                    .arg(&unpartitioned)
                    .query_async(conn)
                    .await?;
                found > 0
            } else {
                false
            };
            match judge(recorded, data, configured) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_count_never_changes_under_data() {
        for (recorded, data, configured, want) in [
            (Some(3), false, 3, Verdict::Agree),
            (Some(1), false, 1, Verdict::Agree),
            (Some(3), false, 4, Verdict::Refuse { recorded: 3 }),
            (Some(3), true, 1, Verdict::Refuse { recorded: 3 }),
            (Some(1), false, 3, Verdict::Refuse { recorded: 1 }),
            // Data from before counts were recorded is one partition's.
            (None, true, 3, Verdict::Refuse { recorded: 1 }),
            (None, true, 1, Verdict::Record),
            (None, false, 3, Verdict::Record),
            (None, false, 1, Verdict::Record),
        ] {
            assert_eq!(
                judge(recorded, data, configured),
                want,
                "{recorded:?} {data} {configured}"
            );
        }
    }
}
