//! The sweeper: proof that every payment has a way forward, and the repair when one has not.
//!
//! Every `[worker] sweep_interval_secs`, one worker of the fleet at a time (a Redis lock with
//! an expiry, so a dead holder is replaced) walks the payments that are not final, in batches:
//! a `pending`, `processing` or `paused` payment must have a live charge job (ready, leased or
//! delayed; a paused payment's job is the one that fails it when nobody resumes it). One that
//! has none gets its job back (an idempotent push, counted on the record), with a warning and
//! `flint_payments_repaired_total{reason}`; one whose job had to be restored
//! [`MAX_REPAIRS`] times already requires attention instead, so a cause that keeps losing jobs
//! cannot loop. A healthy system repairs nothing. The walk also counts the payments waiting
//! for an operator, and the reaper forgets finished payments whose retention is over. (The
//! gauge `flint_payments_requiring_attention` is set by every worker from the status indexes:
//! [`spawn_attention_reporter`].)
//!
//! Redis cost per tick, bounded ([`Limits`]): at most 20 walk scripts of 500 payments (three
//! O(1) or O(log n) reads each, about 1 ms of Redis per script), one script per repair, and at
//! most 200 reap scripts of 1,000 payments (about seven commands each). A walk longer than one
//! tick continues where it stopped at the next tick (10,000 live payments a tick: a million
//! scheduled payments are walked in 100 ticks).

use std::time::Duration;

use flint_shared::ids::PaymentId;
use flint_shared::payment::Status;
use flint_shared::payment::record::AttentionReason;
use flint_shared::payment::store::sweep::Repair;
use flint_shared::payment::store::{JobAction, Store, StoreError};
use flint_shared::telemetry::catalogue;
use flint_shared::time::Timestamp;
use tokio::sync::watch;

use crate::charge::apply::require_attention;

/// Restores of one payment's job before it requires attention instead.
pub const MAX_REPAIRS: u32 = 3;

/// How much one tick may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Payments walked per script call.
    pub batch: usize,
    /// Walk scripts per tick.
    pub batches_per_tick: usize,
    /// Finished payments forgotten per reap script call.
    pub reap_batch: usize,
    /// Reap script calls per tick.
    pub reap_calls_per_tick: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch: 500,
            batches_per_tick: 20,
            reap_batch: 1_000,
            reap_calls_per_tick: 200,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Whether this worker held the lock (another one sweeps otherwise).
    pub swept: bool,
    pub scanned: u64,
    pub repaired: Vec<(String, Status)>,
    /// Payments moved to `requires_attention` because their job kept being lost.
    pub given_up: Vec<String>,
    pub reaped: u64,
    /// Set when this tick finished a whole walk of a partition, once every partition was
    /// walked whole: the payments requiring attention, by each partition's last whole walk.
    pub requiring_attention: Option<u64>,
}

/// Where each partition's walk stands.
#[derive(Debug, Default)]
struct Walks {
    /// Payments requiring attention counted so far in each partition's current walk.
    so_far: Vec<u64>,
    /// The count of each partition's last whole walk.
    whole: Vec<Option<u64>>,
}

#[derive(Debug)]
pub struct Sweeper {
    store: Store,
    holder: String,
    interval: Duration,
    limits: Limits,
    walks: std::sync::Mutex<Walks>,
    /// Whose webhook endpoint marks each tick restores ([`Store::restore_endpoint_marks`]).
    tenants: Vec<String>,
}

impl Sweeper {
    pub fn new(store: Store, holder: String, interval: Duration) -> Sweeper {
        let partitions = store.partitions().count();
        Sweeper {
            store,
            holder,
            interval,
            limits: Limits::default(),
            walks: std::sync::Mutex::new(Walks {
                so_far: vec![0; partitions],
                whole: vec![None; partitions],
            }),
            tenants: Vec::new(),
        }
    }

    /// The tenants whose endpoint marks each tick restores (with several partitions).
    pub fn with_tenants(mut self, tenants: Vec<String>) -> Sweeper {
        self.tenants = tenants;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Sweeper {
        self.limits = limits;
        self
    }

    /// Sweeps every interval until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.tick(Timestamp::now()).await {
                tracing::warn!(error = %e, "sweep failed; the next one retries");
            }
        }
    }

    /// One sweep, if this worker gets the lock.
    pub async fn tick(&self, now: Timestamp) -> Result<Tick, StoreError> {
        let ttl = (self.interval * 2).max(Duration::from_secs(30));
        if !self.store.lock_sweeper(&self.holder, ttl).await? {
            return Ok(Tick::default());
        }
        let mut tick = Tick {
            swept: true,
            ..Tick::default()
        };
        for tenant in &self.tenants {
            match self.store.restore_endpoint_marks(tenant).await {
                Ok(0) => {}
                Ok(added) => {
                    tracing::warn!(
                        tenant,
                        added,
                        "restored webhook endpoint marks some partitions had lost; their events are delivered again"
                    );
                }
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "checking webhook endpoint marks failed; the next tick retries")
                }
            }
        }
        let mut walked_whole = false;
        // Every partition each tick, each within the same limits. One partition's failure (its
        // primary failing over) does not keep the others from being swept.
        for partition in 0..self.store.partitions().count() {
            // Renewed per partition: many partitions may take longer than one lock.
            if partition > 0 && !self.store.lock_sweeper(&self.holder, ttl).await? {
                break;
            }
            match self.walk(partition, now, &mut tick).await {
                Ok(ended) => walked_whole |= ended,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "sweeping a partition failed; the next tick retries it");
                    continue;
                }
            }
            if let Err(e) = self.reap(partition, now, &mut tick).await {
                tracing::warn!(partition, error = %e, "reaping a partition failed; the next tick retries it");
            }
        }
        if walked_whole {
            let walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
            tick.requiring_attention = walks.whole.iter().copied().sum::<Option<u64>>();
        }
        metrics::counter!(catalogue::SWEEPER_CHECKED.name).increment(tick.scanned);
        if tick.reaped > 0 {
            tracing::debug!(
                reaped = tick.reaped,
                "forgot finished payments past their retention"
            );
        }
        Ok(tick)
    }

    /// Forgets up to `reap_calls_per_tick` batches of `partition`'s payments past retention.
    async fn reap(
        &self,
        partition: usize,
        now: Timestamp,
        tick: &mut Tick,
    ) -> Result<(), StoreError> {
        for _ in 0..self.limits.reap_calls_per_tick {
            let reaped = self
                .store
                .reap(partition, now, self.limits.reap_batch)
                .await?;
            tick.reaped += reaped;
            if reaped < self.limits.reap_batch as u64 {
                break;
            }
        }
        Ok(())
    }

    /// Walks up to `batches_per_tick` batches of `partition` from where its walk stopped;
    /// whether the walk ended (and starts over next time).
    async fn walk(
        &self,
        partition: usize,
        now: Timestamp,
        tick: &mut Tick,
    ) -> Result<bool, StoreError> {
        let mut cursor = self.store.sweep_cursor(partition).await?;
        let mut ended = false;
        for _ in 0..self.limits.batches_per_tick {
            let batch = self
                .store
                .sweep_batch(partition, cursor.as_deref(), self.limits.batch)
                .await?;
            tick.scanned += batch.scanned;
            self.walks.lock().unwrap_or_else(|e| e.into_inner()).so_far[partition] +=
                batch.requiring_attention;
            for (id, status) in batch.without_job {
                self.repair(&id, status, now, tick).await?;
            }
            cursor = batch.next;
            if cursor.is_none() {
                let mut walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
                let total = std::mem::take(&mut walks.so_far[partition]);
                walks.whole[partition] = Some(total);
                ended = true;
                break;
            }
        }
        self.store
            .set_sweep_cursor(partition, cursor.as_deref())
            .await?;
        Ok(ended)
    }

    async fn repair(
        &self,
        id: &str,
        status: Status,
        now: Timestamp,
        tick: &mut Tick,
    ) -> Result<(), StoreError> {
        let Ok(payment_id) = PaymentId::parse(id) else {
            return Ok(());
        };
        match self.store.repair(&payment_id, now, MAX_REPAIRS).await? {
            Repair::Repaired(count) => {
                let reason = repair_reason(status);
                tracing::warn!(
                    payment_id = id,
                    status = status.as_str(),
                    repairs = count,
                    "payment had no charge job; its job is restored"
                );
                metrics::counter!(catalogue::PAYMENTS_REPAIRED.name, "reason" => reason)
                    .increment(1);
                tick.repaired.push((id.to_owned(), status));
            }
            Repair::Exhausted(count) => {
                if self.give_up(&payment_id, count, now).await? {
                    tick.given_up.push(id.to_owned());
                }
            }
            Repair::Healthy | Repair::Gone => {}
        }
        Ok(())
    }

    /// The payment's job was restored too often: it requires attention.
    async fn give_up(
        &self,
        id: &PaymentId,
        repairs: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        for _ in 0..8 {
            let Some((_, current)) = self.store.get_any(id.as_str()).await? else {
                return Ok(false);
            };
            let mut p = current.payment.clone();
            if !p.status.needs_job() {
                return Ok(false);
            }
            require_attention(
                &mut p,
                AttentionReason::JobLost,
                format!("its charge job was lost and restored {repairs} times"),
                now,
            );
            if self
                .store
                .transition(&current, &p, JobAction::None, now)
                .await?
                .is_some()
            {
                tracing::error!(payment_id = %id, repairs, "payment keeps losing its charge job; it requires attention");
                metrics::counter!(catalogue::PAYMENTS_REQUIRING_ATTENTION_TOTAL.name, "reason" => AttentionReason::JobLost.as_str())
                    .increment(1);
                return Ok(true);
            }
        }
        Ok(false)
    }
}
/// Sets `flint_payments_requiring_attention` from Redis every `every`, in every worker (the
/// same value everywhere, so dashboards take the max and nothing goes stale when the sweeper
/// moves to another worker), until the task is dropped.
pub fn spawn_attention_reporter(
    store: Store,
    tenants: Vec<String>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tenants: Vec<&str> = tenants.iter().map(String::as_str).collect();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store
                .count_in_status(&tenants, Status::RequiresAttention)
                .await
            {
                Ok(count) => {
                    metrics::gauge!(catalogue::PAYMENTS_REQUIRING_ATTENTION.name).set(count as f64);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "counting payments requiring attention failed")
                }
            }
        }
    })
}

/// The `reason` label of `flint_payments_repaired_total`: the status that needed a job.
fn repair_reason(status: Status) -> &'static str {
    match status {
        Status::Pending => "pending_without_job",
        Status::Processing => "processing_without_job",
        Status::Paused => "paused_without_job",
        Status::Succeeded | Status::Failed | Status::Canceled | Status::RequiresAttention => {
            "other"
        }
    }
}

/// Sets the sweeper's counters to zero for every label value they can take.
pub fn zero_metrics() {
    catalogue::zero(catalogue::SWEEPER_CHECKED, &[]);
    let mut reasons: Vec<_> = Status::ALL.into_iter().map(repair_reason).collect();
    reasons.dedup();
    for reason in reasons {
        catalogue::zero(catalogue::PAYMENTS_REPAIRED, &[("reason", reason)]);
    }
}
