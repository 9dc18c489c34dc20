//! Payment records in Redis, the script that creates a payment with its job, and the
//! compare-and-set transitions the enqueuer (cancel, resume) and the workers share.
//!
//! Key scheme (all under the charge queue's hash tag, so every script touches one slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `flint:{q}:pay:<id>` | hash | `d` record JSON, `s` status, `t` tenant, `v` version (CAS) |
//! | `flint:{q}:idem:<tenant>:<sha256(key)>` | string, TTL | `<request fingerprint>\|<payment id>` |
//! | `flint:{q}:idx:<tenant>` | sorted set | payment ids by creation time (ms) |
//! | `flint:{q}:idx:<tenant>:cus:<sha256(customer)>` | sorted set | the same, per customer |
//!
//! plus the queue's own keys (`flint:{q}:stream`, …; see `flint_queue::keys`). Finished
//! payments get a TTL (`payment_retention_days`); index entries whose record has expired are
//! skipped on read and removed.

use std::time::Duration;

use crate::ids::PaymentId;
use crate::payment::{Payment, Status};
use flint_queue::keys::Keys as QueueKeys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
    #[error("stored payment is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// What creating a payment did.
#[derive(Debug)]
pub enum Created {
    New(Payment),
    /// Same key, same request: the payment created the first time.
    Replay(Payment),
    /// Same key, another request.
    KeyReused,
}

/// A stored payment with the version its next compare-and-set must name.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub payment: Payment,
    pub version: String,
}

/// What a transition does to the charge job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    None,
    Unschedule,
    Now,
}

impl JobAction {
    fn as_str(self) -> &'static str {
        match self {
            JobAction::None => "none",
            JobAction::Unschedule => "unschedule",
            JobAction::Now => "now",
        }
    }
}

#[derive(Debug)]
pub struct Store {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    queue: QueueKeys,
    prefix: String,
    create: Script,
    transition: Script,
    pub idempotency_ttl: Duration,
    pub retention: Duration,
}

fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The job payload a charge worker receives.
pub fn job_payload(id: &PaymentId) -> String {
    serde_json::json!({ "payment_id": id }).to_string()
}

impl Store {
    pub fn new(
        client: redis::Client,
        queue: &str,
        idempotency_ttl: Duration,
        retention: Duration,
    ) -> Store {
        Store {
            client,
            conn: OnceCell::new(),
            queue: QueueKeys::new(queue),
            prefix: format!("flint:{{{queue}}}"),
            create: Script::new(include_str!("lua/create.lua")),
            transition: Script::new(include_str!("lua/transition.lua")),
            idempotency_ttl,
            retention,
        }
    }

    /// The shared reconnecting connection, made on first use (so the API starts, and
    /// answers 503, while Redis is down).
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1);
                self.client.get_connection_manager_with_config(config).await
            })
            .await?;
        Ok(conn.clone())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn payment_key(&self, id: &str) -> String {
        format!("{}:pay:{id}", self.prefix)
    }

    fn tenant_index(&self, tenant: &str) -> String {
        format!("{}:idx:{tenant}", self.prefix)
    }

    fn customer_index(&self, tenant: &str, customer: &str) -> String {
        format!("{}:idx:{tenant}:cus:{}", self.prefix, digest(customer))
    }

    /// Creates `payment` under the tenant's idempotency key, with its job due at `due_ms`.
    pub async fn create(
        &self,
        tenant: &str,
        idempotency_key: &str,
        fingerprint: &str,
        payment: Payment,
        due_ms: i64,
        now_ms: i64,
    ) -> Result<Created, StoreError> {
        let mut conn = self.conn().await?;
        let idem = format!("{}:idem:{tenant}:{}", self.prefix, digest(idempotency_key));
        let record = serde_json::to_string(&payment)?;
        let (outcome, id): (String, String) = self
            .create
            .key(idem)
            .key(self.payment_key(payment.id.as_str()))
            .key(self.tenant_index(tenant))
            .key(self.customer_index(tenant, &payment.customer))
            .key(&self.queue.stream)
            .key(&self.queue.ids)
            .key(&self.queue.delayed)
            .key(&self.queue.delayed_data)
            .arg(fingerprint)
            .arg(payment.id.as_str())
            .arg(record)
            .arg(now_ms)
            .arg(self.idempotency_ttl.as_secs())
            .arg(due_ms)
            .arg(job_payload(&payment.id))
            .arg(now_ms)
            .arg(tenant)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "created" => Ok(Created::New(payment)),
            "replay" => match self.get(tenant, &id).await? {
                Some(v) => Ok(Created::Replay(v.payment)),
                // The first request's payment has expired (retention) while its key lives on.
                None => Ok(Created::KeyReused),
            },
            _ => Ok(Created::KeyReused),
        }
    }

    /// The tenant's payment `id`; `None` when it does not exist or belongs to someone else.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self
            .get_any(id)
            .await?
            .and_then(|(owner, v)| (owner == tenant).then_some(v)))
    }

    /// A payment whatever its tenant (for workers), with its tenant.
    pub async fn get_any(&self, id: &str) -> Result<Option<(String, Versioned)>, StoreError> {
        let mut conn = self.conn().await?;
        let (data, owner, version): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.payment_key(id))
                .arg("d")
                .arg("t")
                .arg("v")
                .query_async(&mut conn)
                .await?;
        match (data, owner, version) {
            (Some(d), Some(t), Some(v)) => Ok(Some((
                t,
                Versioned {
                    payment: serde_json::from_str(&d)?,
                    version: v,
                },
            ))),
            _ => Ok(None),
        }
    }

    /// Newest first: at most `limit` of the tenant's payments (of `customer`, in `status`)
    /// after the cursor `starting_after`; returns them and whether more exist.
    pub async fn list(
        &self,
        tenant: &str,
        customer: Option<&str>,
        status: Option<Status>,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Option<(Vec<Payment>, bool)>, StoreError> {
        const PAGE: isize = 100;
        const MAX_SCANNED: usize = 2000;
        let mut conn = self.conn().await?;
        let index = match customer {
            Some(c) => self.customer_index(tenant, c),
            None => self.tenant_index(tenant),
        };
        let mut start: isize = match starting_after {
            None => 0,
            Some(cursor) => match conn.zrevrank::<_, _, Option<isize>>(&index, cursor).await? {
                Some(rank) => rank + 1,
                None => return Ok(None),
            },
        };
        let mut out = Vec::new();
        let mut scanned = 0;
        loop {
            let ids: Vec<String> = conn.zrevrange(&index, start, start + PAGE - 1).await?;
            if ids.is_empty() {
                return Ok(Some((out, false)));
            }
            for (i, id) in ids.iter().enumerate() {
                scanned += 1;
                match self.get(tenant, id).await? {
                    None => {
                        // Expired after its retention: forget it in the index too.
                        let _: i64 = conn.zrem(&index, id).await?;
                    }
                    Some(v) if status.is_none_or(|s| v.payment.status == s) => {
                        if out.len() == limit {
                            return Ok(Some((out, true)));
                        }
                        out.push(v.payment);
                    }
                    Some(_) => {}
                }
                if scanned >= MAX_SCANNED && i + 1 < ids.len() {
                    // A filter that matches rarely: hand back what was found, with a cursor.
                    return Ok(Some((out, true)));
                }
            }
            start += PAGE;
        }
    }

    /// Compare-and-set: writes `payment` if the record is still at `version`.
    pub async fn transition(
        &self,
        version: &str,
        payment: &Payment,
        action: JobAction,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let expire = if payment.status.is_final() {
            self.retention.as_secs()
        } else {
            0
        };
        let applied: i64 = self
            .transition
            .key(self.payment_key(payment.id.as_str()))
            .key(&self.queue.stream)
            .key(&self.queue.ids)
            .key(&self.queue.delayed)
            .key(&self.queue.delayed_data)
            .arg(version)
            .arg(serde_json::to_string(payment)?)
            .arg(payment.status.as_str())
            .arg(payment.id.as_str())
            .arg(expire)
            .arg(action.as_str())
            .arg(job_payload(&payment.id))
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(applied == 1)
    }
}
