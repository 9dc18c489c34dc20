//! What the sweeper and the reaper do in Redis, one bounded batch per script call: walk the
//! live payments for ones that must have a charge job and have none, give such a payment its
//! job back, forget finished payments whose retention is over, and the lock that lets one
//! worker at a time do this.

use super::{Store, StoreError};
use crate::ids::PaymentId;
use crate::payment::Status;
use crate::payment::job::ChargeJob;
use crate::time::Timestamp;

/// One batch of the walk over live payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepBatch {
    /// Where the next batch starts; `None` when the walk is over.
    pub next: Option<String>,
    pub scanned: u64,
    pub requiring_attention: u64,
    /// Payments that must have a live job and have none, with their status.
    pub without_job: Vec<(String, Status)>,
}

/// What a repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The job was pushed; this many repairs so far.
    Repaired(u32),
    /// Repaired too often already: no job pushed.
    Exhausted(u32),
    /// The payment has a job, or no longer needs one.
    Healthy,
    Gone,
}

impl Store {
    /// Walks up to `batch` live payments of `partition` after `cursor` (`None` from the start).
    pub async fn sweep_batch(
        &self,
        partition: usize,
        cursor: Option<&str>,
        batch: usize,
    ) -> Result<SweepBatch, StoreError> {
        let layout = self.partition(partition);
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.sweep.prepare_invoke();
        invocation.key(layout.live());
        for key in layout.queue.job_keys() {
            invocation.key(key);
        }
        let reply: Vec<redis::Value> = invocation
            .arg(cursor.unwrap_or(""))
            .arg(batch)
            .arg(layout.payment_prefix())
            .invoke_async(&mut conn)
            .await?;
        let mut reply = reply.into_iter().map(redis::from_redis_value::<String>);
        let mut next = || reply.next().transpose();
        let cursor = next()?.unwrap_or_default();
        let scanned = next()?.and_then(|n| n.parse().ok()).unwrap_or(0);
        let requiring_attention = next()?.and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut without_job = Vec::new();
        while let (Some(id), Some(status)) = (next()?, next()?) {
            if let Some(status) = Status::parse(&status) {
                without_job.push((id, status));
            }
        }
        Ok(SweepBatch {
            next: (!cursor.is_empty()).then_some(cursor),
            scanned,
            requiring_attention,
            without_job,
        })
    }

    /// Pushes the job of payment `id` if it still must have one and has none, unless it was
    /// repaired `max_repairs` times already.
    pub async fn repair(
        &self,
        id: &PaymentId,
        now: Timestamp,
        max_repairs: u32,
    ) -> Result<Repair, StoreError> {
        let layout = self.of_payment(id.as_str());
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.repair.prepare_invoke();
        invocation.key(layout.payment(id.as_str()));
        for key in layout.queue.job_keys() {
            invocation.key(key);
        }
        let (outcome, repairs): (String, u32) = invocation
            .arg(id.as_str())
            .arg(ChargeJob::new(id.clone()).payload())
            .arg(now.unix_ms())
            .arg(max_repairs)
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome.as_str() {
            "repaired" => Repair::Repaired(repairs),
            "exhausted" => Repair::Exhausted(repairs),
            "healthy" => Repair::Healthy,
            _ => Repair::Gone,
        })
    }

    /// Forgets up to `batch` finished payments of `partition` whose retention ended by `now`;
    /// returns how many.
    pub async fn reap(
        &self,
        partition: usize,
        now: Timestamp,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let layout = self.partition(partition);
        let mut conn = self.conn().await?;
        Ok(self
            .scripts
            .reap
            .key(layout.expiring())
            .arg(now.unix_ms())
            .arg(batch)
            .arg(layout.payment_prefix())
            .arg(layout.index_prefix())
            .arg(layout.event_prefix())
            .arg(layout.event_index_prefix())
            .invoke_async(&mut conn)
            .await?)
    }

    /// Takes (or renews) the sweeper's lock for `holder` for `ttl`: whether it is held now.
    pub async fn lock_sweeper(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // Take it when free; extend it when ours.
        let held: i64 = redis::Script::new(
            r"
local owner = redis.call('GET', KEYS[1])
if owner == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
        )
        .key(self.first().sweeper_lock())
        .arg(holder)
        .arg(ttl_ms)
        .invoke_async(&mut conn)
        .await?;
        Ok(held == 1)
    }

    /// Where the sweeper's walk of `partition` stopped (shared by whichever worker holds the
    /// lock next).
    pub async fn sweep_cursor(&self, partition: usize) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(redis::cmd("GET")
            .arg(self.partition(partition).sweeper_cursor())
            .query_async(&mut conn)
            .await?)
    }

    pub async fn set_sweep_cursor(
        &self,
        partition: usize,
        cursor: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let key = self.partition(partition).sweeper_cursor();
        let () = match cursor {
            // Kept a day at most: a walk that stopped that long ago starts over.
            Some(c) => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(c)
                    .arg("EX")
                    .arg(86_400)
                    .query_async(&mut conn)
                    .await?
            }
            None => redis::cmd("DEL").arg(key).query_async(&mut conn).await?,
        };
        Ok(())
    }
}
