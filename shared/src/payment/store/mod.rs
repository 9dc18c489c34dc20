//! Payment records in Redis: the script that creates a payment with its job, the
//! compare-and-set transitions the API and the workers share, listing, and the sweeper's and
//! reaper's batches ([`sweep`]).
//!
//! Key scheme ([`Layout`] owns it; all keys under the charge queue's hash tag, so every script
//! touches one slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `flint:{q}:pay:<id>` | hash | the record ([`Payment`]) as a document (`[redis] storage_format`: `d` its JSON, or compact `k`, `d1`…: [`codec`], `lua/documents.lua`), `s` status, `t` tenant, `c` customer digest, `v` version (CAS), `r` repairs by the sweeper; compact only: `ek`, `e1`… its events' ids and types, `l` set while it keeps its `created` event |
//! | `flint:{q}:idem:<tenant>:<sha256(key)>` | string, TTL | `<request fingerprint>\|<payment id>` |
//! | `flint:{q}:idx:<tenant>:st:<status>` | sorted set | payment ids by creation time (ms), per status; a listing of every status merges them ([`list`]) |
//! | `flint:{q}:idx:<tenant>:cus:<digest>:st:<status>` | sorted set | the same, per customer |
//! | `flint:{q}:idx:<tenant>`, `flint:{q}:idx:<tenant>:cus:<digest>` | sorted set | the same for every status, written while `[redis] unfiltered_indexes` is on: versions before this one list from them |
//! | `flint:{q}:live` | sorted set (score 0) | ids of payments not final: the sweeper's walk |
//! | `flint:{q}:expiring` | sorted set | ids of final payments by the time they are forgotten |
//! | `flint:{q}:evt:<id>` | hash | the event ([`Event`]) as a document, `t` tenant; none, in the compact format, for a `created` event its payment keeps (its id names the payment: `lua/events.lua`) |
//! | `flint:{q}:evx:<tenant>:ty:<type>` | sorted set | the tenant's event ids by creation time (ms), per event type; a listing of every type merges them |
//! | `flint:{q}:evx:<tenant>` | sorted set | the same for every type, likewise |
//! | `flint:{q}:whe:<tenant>` | hash | the tenant's webhook endpoints: id → JSON with secrets |
//! | `flint:{q}:ack` | string, 10 s TTL | a marker written before a `WAIT` that must cover earlier writes ([`ack`]) |
//!
//! plus the keys of the webhook queue in this slot (`flint:{q}:webhooks:…`), which the payment
//! scripts push an event's dispatch job to while the tenant has endpoints,
//! and the charge queue's own keys, both moved only through the queue's Lua
//! ([`flint_queue::lua`]).
//! Events are written by the script that writes the transition recording them
//! (`lua/events.lua` is their layout). A finished payment is forgotten after
//! `payment_retention_days` by the reaper, record, events and index entries alike; the record
//! and its events also carry a TTL a week longer, so that they go even if no worker runs the
//! reaper for that long (their index entries are then dropped as lists meet them).

mod ack;
mod codec;
mod documents;
mod endpoints;
mod events;
pub use ack::WRITE_CONNECTIONS;
pub use endpoints::{ReadEndpoint, Written};
pub use events::{EventFilter, EventPage, EventsMissing};
pub use list::Page;
mod list;
mod partitions;
mod slots;
pub mod sweep;

use std::time::Duration;

use crate::config::{StorageFormat, WebhooksConfig};
use crate::partition::Partitions;
use crate::payment::event::{encode, encode_all, recorded_since};
use crate::payment::job::ChargeJob;
use crate::payment::{EventKind, Payment, Status};
use crate::redis_target::{LazyConnection, RedisConnection, RedisTarget, Timeouts};
use crate::time::Timestamp;
use crate::webhook::job::WebhookJob;
use flint_queue::keys::Keys as QueueKeys;
use redis::Script;
use sha2::{Digest, Sha256};

use ack::Wrote;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
    #[error("stored payment is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("stored document is unreadable: {0}")]
    Undecodable(#[from] codec::CodecError),
    #[error("unexpected reply from redis: {0}")]
    Reply(#[from] redis::ParsingError),
    /// The write is on the primary, but fewer replicas than `[redis] min_replicas_acked`
    /// acknowledged it in time: a failover now could lose it. Not "nothing changed": a create
    /// repeated with the same idempotency key converges on the one payment and waits again; any
    /// other change should be read back before it is repeated (a resume is not idempotent).
    #[error(
        "written on the redis primary, but only {acked} of {wanted} replicas acknowledged it within {timeout_ms} ms"
    )]
    NotReplicated {
        acked: u32,
        wanted: u32,
        timeout_ms: u64,
    },
    /// The write is on the primary, but confirming that replicas hold it failed (the marker
    /// or the `WAIT` met a broken connection, a timeout or an error reply): like
    /// [`StoreError::NotReplicated`], written and unconfirmed, never "nothing changed".
    #[error(
        "written on the redis primary, but confirming that {wanted} replicas hold it failed: {error}"
    )]
    ReplicationUnconfirmed {
        wanted: u32,
        #[source]
        error: redis::RedisError,
    },
    /// Every write connection of `[redis] min_replicas_acked` stayed busy for
    /// `min_replicas_timeout_ms`: the write was not sent, nothing changed.
    #[error(
        "all {connections} write connections stayed busy for {waited_ms} ms; nothing was written"
    )]
    WritersBusy { connections: usize, waited_ms: u64 },
    /// A payment id that does not hash to the partition of its idempotency key (ids must come
    /// from [`Partitions::payment_id_for`]): nothing was written.
    #[error("payment {id} was not given an id of its idempotency key's partition")]
    Misplaced { id: String },
    /// Redis holds payments spread over another number of partitions than `[queue]
    /// partitions` says: nothing was read or written.
    #[error(
        "redis holds payments spread over {recorded} partitions but [queue] partitions = {configured}; the count cannot change while data exists (set it back to {recorded})"
    )]
    PartitionsChanged { recorded: u16, configured: u16 },
}

impl StoreError {
    /// The write is on the primary but replicas did not confirm it: the answer must not say
    /// that nothing changed.
    pub fn is_written_unconfirmed(&self) -> bool {
        matches!(
            self,
            StoreError::NotReplicated { .. } | StoreError::ReplicationUnconfirmed { .. }
        )
    }
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
    /// The tenant whose payment it is.
    pub tenant: String,
    /// The record keeps the payment's `created` event (written compact and unchanged since):
    /// its next change writes the event in full first. False after any transition.
    pub keeps_created: bool,
}

/// What a transition does to the charge job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    None,
    /// Drop a waiting delayed job (a running one finds nothing to do).
    Unschedule,
    /// Make the job due now, or push one, or mark the running one to run again.
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

/// The key names of one partition of the payment store: the one place that knows them.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    queue: QueueKeys,
    /// The webhook queue, in the partition's slot: payment scripts push its dispatch jobs.
    webhooks: QueueKeys,
    /// `flint:{<partition tag>}`
    prefix: String,
}

impl Layout {
    /// The layouts of every partition, in partition order.
    fn all(partitions: &Partitions, webhooks: &str) -> Vec<Layout> {
        partitions
            .tags()
            .iter()
            .map(|tag| Layout {
                queue: flint_queue::keys::Keys::of_partition(tag, partitions.queue()),
                webhooks: QueueKeys::in_slot(tag, webhooks),
                prefix: format!("flint:{{{tag}}}"),
            })
            .collect()
    }

    fn payment(&self, id: &str) -> String {
        format!("{}:pay:{id}", self.prefix)
    }

    /// The prefix of payment keys, for scripts that visit many payments.
    fn payment_prefix(&self) -> String {
        format!("{}:pay:", self.prefix)
    }

    fn idempotency(&self, tenant: &str, key: &str) -> String {
        format!("{}:idem:{tenant}:{}", self.prefix, digest(key))
    }

    /// The prefix of every index key; scripts add `:<tenant>[:cus:<digest>][:st:<status>]`.
    fn index_prefix(&self) -> String {
        format!("{}:idx", self.prefix)
    }

    fn index(&self, tenant: &str, customer: Option<&str>, status: Option<Status>) -> String {
        let mut key = format!("{}:{tenant}", self.index_prefix());
        if let Some(c) = customer {
            key.push_str(":cus:");
            key.push_str(&customer_digest(c));
        }
        if let Some(s) = status {
            key.push_str(":st:");
            key.push_str(s.as_str());
        }
        key
    }

    fn live(&self) -> String {
        format!("{}:live", self.prefix)
    }

    fn expiring(&self) -> String {
        format!("{}:expiring", self.prefix)
    }

    fn event(&self, id: &str) -> String {
        format!("{}:evt:{id}", self.prefix)
    }

    /// The prefix of event keys, for scripts that write or forget events.
    fn event_prefix(&self) -> String {
        format!("{}:evt:", self.prefix)
    }

    /// The prefix of every event index key; scripts add `:<tenant>[:ty:<type>]`.
    fn event_index_prefix(&self) -> String {
        format!("{}:evx", self.prefix)
    }

    fn event_index(&self, tenant: &str, kind: Option<EventKind>) -> String {
        let mut key = format!("{}:{tenant}", self.event_index_prefix());
        if let Some(kind) = kind {
            key.push_str(":ty:");
            key.push_str(kind.as_str());
        }
        key
    }

    /// The prefix of the hashes of tenants' webhook endpoints; scripts add `<tenant>`.
    fn endpoints_prefix(&self) -> String {
        format!("{}:whe:", self.prefix)
    }

    fn endpoints(&self, tenant: &str) -> String {
        format!("{}{tenant}", self.endpoints_prefix())
    }

    /// Written before a `WAIT` that must cover what earlier requests wrote.
    fn ack_marker(&self) -> String {
        format!("{}:ack", self.prefix)
    }

    fn sweeper_lock(&self) -> String {
        format!("{}:sweeper", self.prefix)
    }

    fn sweeper_cursor(&self) -> String {
        format!("{}:sweeper:cursor", self.prefix)
    }
}

/// A script whose body may call the queue's job operations, the document operations of
/// `lua/documents.lua` and the event operations of `lua/events.lua`.
fn with_events(body: &str) -> Script {
    flint_queue::lua::script(&format!(
        "{}\n{}\n{}\n{body}",
        documents::constants_lua(),
        include_str!("lua/documents.lua"),
        include_str!("lua/events.lua")
    ))
}

impl Layout {
    /// The events `payment` recorded since `before`, as `fe_write` takes them: the key
    /// prefixes, whether the tenant's unfiltered event index is written (`unfiltered`), a
    /// count, then id, type, creation time (ms), document (in `format`) and dispatch job for
    /// each. In the compact format a new payment's `created` event gets no
    /// document: it is made from the record until that changes (see `lua/events.lua`).
    fn event_args(
        &self,
        format: StorageFormat,
        unfiltered: bool,
        tenant: &str,
        before: Option<&Payment>,
        payment: &Payment,
        snapshot: &serde_json::value::RawValue,
    ) -> Result<Vec<Vec<u8>>, serde_json::Error> {
        let new: Vec<_> = match before {
            Some(before) => recorded_since(before, payment).collect(),
            None => payment.events.iter().collect(),
        };
        let mut args = Vec::with_capacity(5 + 6 * new.len());
        args.push(self.event_prefix().into_bytes());
        args.push(self.event_index_prefix().into_bytes());
        args.push(self.endpoints_prefix().into_bytes());
        args.push(if unfiltered {
            b"1".to_vec()
        } else {
            Vec::new()
        });
        args.push(new.len().to_string().into_bytes());
        let encoded = encode_all(tenant, payment, snapshot, new.iter().copied())?;
        for (n, (e, json)) in new.into_iter().zip(encoded).enumerate() {
            args.push(e.id.as_str().as_bytes().to_vec());
            args.push(e.kind.as_str().as_bytes().to_vec());
            args.push(e.created_at.unix_ms().to_string().into_bytes());
            if before.is_none() && n == 0 && format == StorageFormat::Compact {
                args.push(Vec::new());
            } else {
                args.push(documents::stored(format, &json));
            }
            args.push(
                WebhookJob::Dispatch {
                    event: e.id.clone(),
                    at: e.created_at,
                }
                .payload(),
            );
        }
        Ok(args)
    }
}

fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The customer's part of index keys: customer ids never appear in key names as they are.
fn customer_digest(customer: &str) -> String {
    hex::encode(&Sha256::digest(customer.as_bytes())[..16])
}

#[derive(Debug)]
struct Scripts {
    create: Script,
    transition: Script,
    list: Script,
    sweep: Script,
    repair: Script,
    reap: Script,
    events_of: Script,
    event: Script,
    redeliver: Script,
    endpoints: Script,
}

#[derive(Debug)]
pub struct Store {
    redis: LazyConnection,
    partitions: Partitions,
    /// One per partition, in partition order.
    layouts: Vec<Layout>,
    webhook_queue: String,
    /// Set once Redis was found to hold data of this partition count ([`partitions`]).
    partitions_verified: tokio::sync::OnceCell<()>,
    scripts: Scripts,
    /// `[redis] min_replicas_acked` when above 0 ([`ack`]).
    acks: Option<ack::Acks>,
    /// `[redis] storage_format`: how records and events are written (`lua/documents.lua`).
    format: StorageFormat,
    /// `[redis] unfiltered_indexes`: whether writes add to the indexes of all records.
    unfiltered: bool,
    pub idempotency_ttl: Duration,
    pub retention: Duration,
}

impl Store {
    /// How many of `tenants`' payments are in `status` now (one `ZCARD` per tenant, in one
    /// round trip).
    pub async fn count_in_status(
        &self,
        tenants: &[&str],
        status: Status,
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        // One pipeline per partition: on a cluster each goes to its own slot's primary.
        let counts = self.layouts.iter().map(|layout| {
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            for tenant in tenants {
                pipe.zcard(layout.index(tenant, None, Some(status)));
            }
            async move { pipe.query_async::<Vec<u64>>(&mut conn).await }
        });
        let counts = futures::future::try_join_all(counts).await?;
        Ok(counts.into_iter().flatten().sum())
    }

    /// The store of the payments in `target`, their keys under `queue`'s hash tag.
    pub fn new(
        target: RedisTarget,
        queue: &str,
        idempotency_ttl: Duration,
        retention: Duration,
    ) -> Store {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
        };
        let partitions = Partitions::new(queue, 1);
        let webhook_queue = WebhooksConfig::default().queue;
        Store {
            redis: LazyConnection::new(target, timeouts),
            layouts: Layout::all(&partitions, &webhook_queue),
            partitions,
            webhook_queue,
            partitions_verified: tokio::sync::OnceCell::new(),
            scripts: Scripts {
                create: with_events(include_str!("lua/create.lua")),
                transition: with_events(include_str!("lua/transition.lua")),
                list: with_events(include_str!("lua/list.lua")),
                sweep: flint_queue::lua::script(include_str!("lua/sweep.lua")),
                repair: flint_queue::lua::script(include_str!("lua/repair.lua")),
                reap: with_events(include_str!("lua/reap.lua")),
                events_of: with_events(include_str!("lua/events_of.lua")),
                event: with_events(include_str!("lua/event.lua")),
                redeliver: with_events(include_str!("lua/redeliver.lua")),
                endpoints: Script::new(include_str!("lua/endpoints.lua")),
            },
            acks: None,
            format: StorageFormat::Json,
            unfiltered: true,
            idempotency_ttl,
            retention,
        }
    }

    /// Writes records and events in `format` (`[redis] storage_format`); both are read.
    pub fn with_storage_format(mut self, format: StorageFormat) -> Store {
        self.format = format;
        self
    }

    /// Whether writes add payments and events to the unfiltered indexes, which versions before
    /// this one list from (`[redis] unfiltered_indexes`).
    pub fn with_unfiltered_indexes(mut self, unfiltered: bool) -> Store {
        self.unfiltered = unfiltered;
        self
    }

    /// Acknowledged writes wait until `replicas` replicas hold them, at most `timeout` each
    /// (`[redis] min_replicas_acked`, `min_replicas_timeout_ms`); `0` waits for none.
    pub fn with_replica_acks(mut self, replicas: u32, timeout: Duration) -> Store {
        self.acks = ack::Acks::new(replicas, timeout);
        self
    }

    /// Where this store pushes event dispatch jobs (`[webhooks] queue`), in the charge queue's
    /// slot.
    pub fn with_webhook_queue(mut self, webhooks: &str) -> Store {
        webhooks.clone_into(&mut self.webhook_queue);
        self.layouts = Layout::all(&self.partitions, webhooks);
        self
    }

    /// Spreads the payments over `count` partitions of the queue (`[queue] partitions`).
    pub fn with_partitions(mut self, count: u16) -> Store {
        self.partitions = Partitions::new(self.partitions.queue(), count);
        self.layouts = Layout::all(&self.partitions, &self.webhook_queue);
        self
    }

    pub fn partitions(&self) -> &Partitions {
        &self.partitions
    }

    /// The layout of the payment `id`'s partition.
    fn of_payment(&self, id: &str) -> &Layout {
        &self.layouts[self.partitions.of_payment(id)]
    }

    /// Partition 0's layout: where what belongs to no payment is kept (the sweeper's lock,
    /// the replication marker, the authoritative copy of webhook endpoints).
    fn first(&self) -> &Layout {
        &self.layouts[0]
    }

    /// Partition `p`'s layout (`p` below [`Partitions::count`]).
    fn partition(&self, p: usize) -> &Layout {
        &self.layouts[p]
    }

    /// The shared reconnecting connection, made on first use (so the API starts, and
    /// answers 503, while Redis is down).
    async fn conn(&self) -> Result<RedisConnection, StoreError> {
        let mut conn = self.redis.get().await?;
        self.verified_on(&mut conn).await?;
        Ok(conn)
    }

    /// Creates `payment` under the tenant's idempotency key, with its job due at the payment's
    /// `next_attempt_at`.
    pub async fn create(
        &self,
        tenant: &str,
        idempotency_key: &str,
        fingerprint: &str,
        payment: Payment,
        now: Timestamp,
    ) -> Result<Created, StoreError> {
        self.create_observed(tenant, idempotency_key, fingerprint, payment, now, |_| {})
            .await
    }

    /// [`Store::create`], calling `created` as soon as the payment is written, before replicas
    /// are waited for: a create whose acknowledgement then falls short is still counted and
    /// logged once (its replay later answers [`Created::Replay`]).
    pub async fn create_observed(
        &self,
        tenant: &str,
        idempotency_key: &str,
        fingerprint: &str,
        payment: Payment,
        now: Timestamp,
        created: impl FnOnce(&Payment),
    ) -> Result<Created, StoreError> {
        let home = self.partitions.of_idempotency_key(tenant, idempotency_key);
        if self.partitions.of_payment(payment.id.as_str()) != home {
            return Err(StoreError::Misplaced {
                id: payment.id.to_string(),
            });
        }
        let layout = self.partition(home);
        let mut conn = self.writer(home).await?;
        let (record, snapshot) = encode(&payment)?;
        let due = payment.next_attempt_at.unwrap_or(now);
        let job = ChargeJob::new(payment.id.clone());
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(layout.idempotency(tenant, idempotency_key))
            .key(layout.payment(payment.id.as_str()));
        for key in layout.queue.job_keys() {
            invocation.key(key);
        }
        invocation.key(layout.live());
        for key in layout.webhooks.job_keys() {
            invocation.key(key);
        }
        let (outcome, id): (String, String) = invocation
            .arg(fingerprint)
            .arg(payment.id.as_str())
            .arg(documents::stored(self.format, &record))
            .arg(payment.created_at.unix_ms())
            .arg(self.idempotency_ttl.as_secs())
            .arg(due.unix_ms())
            .arg(job.payload())
            .arg(now.unix_ms())
            .arg(tenant)
            .arg(customer_digest(&payment.customer))
            .arg(layout.index_prefix())
            .arg(self.format.as_str())
            .arg(documents::timeline(self.format, &payment))
            .arg(layout.event_args(
                self.format,
                self.unfiltered,
                tenant,
                None,
                &payment,
                &snapshot,
            )?)
            .invoke_async(&mut conn)
            .await?;
        match outcome.as_str() {
            "created" => {
                created(&payment);
                self.acknowledge(conn, Wrote::Here).await?;
                Ok(Created::New(payment))
            }
            // The first request's write may be on the primary only (its answer may have been
            // a 503 for that very reason): the replay is answered only once replicas hold it.
            // Read through the connection the script ran on: on a cluster in mid-failover the
            // shared connection may reach another node, which would not know the payment yet.
            "replay" => match self
                .read(&mut conn, &id)
                .await?
                .and_then(|(owner, v)| (owner == tenant).then_some(v))
            {
                Some(v) => {
                    self.acknowledge(conn, Wrote::Before).await?;
                    Ok(Created::Replay(v.payment))
                }
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
        self.read(&mut conn, id).await
    }

    /// Payment `id` with its tenant, read through `conn`.
    async fn read(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        id: &str,
    ) -> Result<Option<(String, Versioned)>, StoreError> {
        let fields: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.of_payment(id).payment(id))
            .query_async(conn)
            .await?;
        let record = documents::Record::of(fields)?;
        match (record.document, record.tenant, record.version) {
            (Some(d), Some(t), Some(v)) => Ok(Some((
                t.clone(),
                Versioned {
                    payment: serde_json::from_str(&codec::unpack(&d)?)?,
                    version: v,
                    tenant: t,
                    keeps_created: record.keeps_created,
                },
            ))),
            _ => Ok(None),
        }
    }

    /// Compare-and-set: writes `payment` (changed from `current`) if the record is still at
    /// `current`'s version, with the events it recorded since, and does `action` to its job in
    /// the same step. Returns the record's new version, or `None` when it had moved on (re-read
    /// and decide again).
    pub async fn transition(
        &self,
        current: &Versioned,
        payment: &Payment,
        action: JobAction,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let layout = self.of_payment(payment.id.as_str());
        let mut conn = self
            .writer(self.partitions.of_payment(payment.id.as_str()))
            .await?;
        let reap_at = if payment.status.is_final() {
            now.plus(self.retention).unix_ms()
        } else {
            0
        };
        let backstop = self.retention + Duration::from_secs(7 * 86_400);
        let mut invocation = self.scripts.transition.prepare_invoke();
        invocation.key(layout.payment(payment.id.as_str()));
        for key in layout.queue.job_keys() {
            invocation.key(key);
        }
        invocation.key(layout.live()).key(layout.expiring());
        for key in layout.webhooks.job_keys() {
            invocation.key(key);
        }
        let (record, snapshot) = encode(payment)?;
        // The first change of a record that keeps its `created` event writes it in full.
        let created = current
            .payment
            .events
            .first()
            .filter(|_| current.keeps_created);
        let created_doc = match created {
            Some(_) => documents::stored(
                self.format,
                &documents::created_event(&current.tenant, &current.payment)?,
            ),
            None => Vec::new(),
        };
        // A payment that ends gives all its events the record's own backstop expiry.
        let all_events: Vec<&str> = if reap_at > 0 {
            payment.events.iter().map(|e| e.id.as_str()).collect()
        } else {
            Vec::new()
        };
        let applied: Option<u64> = invocation
            .arg(&current.version)
            .arg(documents::stored(self.format, &record))
            .arg(payment.status.as_str())
            .arg(payment.id.as_str())
            .arg(payment.created_at.unix_ms())
            .arg(reap_at)
            .arg(backstop.as_secs())
            .arg(action.as_str())
            .arg(ChargeJob::new(payment.id.clone()).payload())
            .arg(layout.index_prefix())
            .arg(self.format.as_str())
            .arg(documents::timeline(self.format, payment))
            .arg(created.map_or("", |e| e.id.as_str()))
            .arg(created_doc)
            .arg(layout.event_args(
                self.format,
                self.unfiltered,
                &current.tenant,
                Some(&current.payment),
                payment,
                &snapshot,
            )?)
            .arg(all_events.len())
            .arg(all_events)
            .invoke_async(&mut conn)
            .await?;
        if applied.is_some() {
            self.acknowledge(conn, Wrote::Here).await?;
        }
        Ok(applied.map(|v| v.to_string()))
    }
}
