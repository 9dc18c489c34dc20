//! Tenants' webhook endpoints, one hash per tenant in the charge queue's slot (the payment
//! scripts look at it to decide whether an event needs a dispatch job), and redelivery.
//!
//! With `[redis] min_replicas_acked`, these writes are followed by `WAIT` but not held back by
//! it ([`Store::acknowledge_or_warn`]): a write that replicas do not confirm in time is
//! answered as done, with a warning naming the endpoint (or event), never its secret. A 503
//! after the write landed would lose a secret shown only in that answer, and its retry would
//! make a second endpoint or drop the previous secret. A failover may undo a recent change; the
//! tenant sees that in its endpoint list.

use super::{Store, StoreError};
use crate::ids::EventId;
use crate::time::Timestamp;
use crate::webhook::endpoint::{MAX_ENDPOINTS, StoredEndpoint};
use crate::webhook::job::WebhookJob;

/// What writing an endpoint did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Ok,
    /// The tenant has [`MAX_ENDPOINTS`] already.
    Full,
    /// The endpoint was deleted meanwhile.
    Missing,
    /// The endpoint changed since it was read: read it again and redo the change.
    Moved,
}

/// An endpoint with the stored JSON it was read from (what a replacement must still find).
#[derive(Debug, Clone)]
pub struct ReadEndpoint {
    pub endpoint: StoredEndpoint,
    pub stored: String,
}

impl Store {
    /// Adds a new endpoint for `tenant`.
    pub async fn create_endpoint(
        &self,
        tenant: &str,
        endpoint: &StoredEndpoint,
    ) -> Result<Written, StoreError> {
        self.write_endpoint(tenant, endpoint, "create", "").await
    }

    /// Replaces an endpoint of `tenant` if it is still stored as `read`.
    pub async fn replace_endpoint(
        &self,
        tenant: &str,
        read: &ReadEndpoint,
        endpoint: &StoredEndpoint,
    ) -> Result<Written, StoreError> {
        self.write_endpoint(tenant, endpoint, "replace", &read.stored)
            .await
    }

    async fn write_endpoint(
        &self,
        tenant: &str,
        endpoint: &StoredEndpoint,
        mode: &str,
        expected: &str,
    ) -> Result<Written, StoreError> {
        let id = endpoint.endpoint.id.as_str();
        if mode == "create" {
            // Before the endpoint exists anywhere, so that no partition can miss its events.
            self.mirror_endpoint(tenant, id, true).await?;
        }
        let mut conn = self.writer(0).await?;
        let outcome: String = self
            .scripts
            .endpoints
            .key(self.first().endpoints(tenant))
            .arg(mode)
            .arg(endpoint.endpoint.id.as_str())
            .arg(serde_json::to_string(endpoint)?)
            .arg(MAX_ENDPOINTS)
            .arg(expected)
            .invoke_async(&mut conn)
            .await?;
        if outcome == "ok"
            && let Some(e) = self.acknowledge_or_warn(conn).await
        {
            tracing::warn!(
                error = %e,
                tenant,
                webhook_endpoint_id = %endpoint.endpoint.id,
                change = mode,
                "webhook endpoint written on the primary without replicas' confirmation; answered as done"
            );
        }
        if mode == "create"
            && outcome != "ok"
            && let Err(e) = self.mirror_endpoint(tenant, id, false).await
        {
            // A mark left behind costs dispatch jobs that find no endpoint; nothing is missed.
            tracing::warn!(error = %e, tenant, webhook_endpoint_id = id, "removing the marks of an endpoint that was not created failed");
        }
        Ok(match outcome.as_str() {
            "ok" => Written::Ok,
            "full" => Written::Full,
            "moved" => Written::Moved,
            _ => Written::Missing,
        })
    }

    /// The tenant's endpoints, oldest first.
    pub async fn endpoints(&self, tenant: &str) -> Result<Vec<StoredEndpoint>, StoreError> {
        let mut conn = self.conn().await?;
        let values: Vec<String> = redis::cmd("HVALS")
            .arg(self.first().endpoints(tenant))
            .query_async(&mut conn)
            .await?;
        let mut endpoints = values
            .iter()
            .map(|v| serde_json::from_str::<StoredEndpoint>(v))
            .collect::<Result<Vec<_>, _>>()?;
        endpoints.sort_by(|a, b| {
            (a.endpoint.created_at, a.endpoint.id.as_str())
                .cmp(&(b.endpoint.created_at, b.endpoint.id.as_str()))
        });
        Ok(endpoints)
    }

    pub async fn endpoint(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ReadEndpoint>, StoreError> {
        let mut conn = self.conn().await?;
        let value: Option<String> = redis::cmd("HGET")
            .arg(self.first().endpoints(tenant))
            .arg(id)
            .query_async(&mut conn)
            .await?;
        value
            .map(|stored| {
                Ok(ReadEndpoint {
                    endpoint: serde_json::from_str(&stored)?,
                    stored,
                })
            })
            .transpose()
    }

    /// Deletes the endpoint; whether it existed. Deliveries waiting for it find it gone and
    /// are dropped.
    pub async fn delete_endpoint(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.writer(0).await?;
        let removed: u64 = redis::cmd("HDEL")
            .arg(self.first().endpoints(tenant))
            .arg(id)
            .query_async(&mut conn)
            .await?;
        // After the endpoint is gone (a delete repeated after a failure here removes them too).
        if let Err(e) = self.mirror_endpoint(tenant, id, false).await {
            tracing::warn!(error = %e, tenant, webhook_endpoint_id = id, "removing a deleted endpoint's marks from the other partitions failed");
        }
        if removed > 0
            && let Some(e) = self.acknowledge_or_warn(conn).await
        {
            tracing::warn!(
                error = %e,
                tenant,
                webhook_endpoint_id = id,
                change = "delete",
                "webhook endpoint deleted on the primary without replicas' confirmation; answered as done"
            );
        }
        Ok(removed > 0)
    }

    /// Queues the tenant's event `id` for delivery again; `false` when it is not theirs.
    pub async fn redeliver(
        &self,
        tenant: &str,
        id: &EventId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some((partition, _, _)) = self.find_event(id.as_str()).await? else {
            return Ok(false);
        };
        let layout = self.partition(partition);
        let mut conn = self.writer(partition).await?;
        let mut invocation = self.scripts.redeliver.prepare_invoke();
        invocation.key(layout.event(id.as_str()));
        for key in layout.webhooks.job_keys() {
            invocation.key(key);
        }
        let job_id = format!("{id}:again:{}", crate::ids::random_token(12));
        let outcome: String = invocation
            .arg(tenant)
            .arg(job_id)
            .arg(
                WebhookJob::Dispatch {
                    event: id.clone(),
                    at: now,
                }
                .payload(),
            )
            .arg(now.unix_ms())
            .arg(layout.event_prefix())
            .arg(id.as_str())
            .arg(layout.payment_prefix())
            .invoke_async(&mut conn)
            .await?;
        if outcome == "queued"
            && let Some(e) = self.acknowledge_or_warn(conn).await
        {
            tracing::warn!(
                error = %e,
                tenant,
                event_id = %id,
                "redelivery queued on the primary without replicas' confirmation; answered as done"
            );
        }
        Ok(outcome == "queued")
    }

    /// Marks (or unmarks) endpoint `id` in the tenant's endpoint hash of every partition but
    /// the first, which holds the endpoints themselves. The payment scripts push an event's
    /// dispatch job while their partition's hash exists, so each partition must know whether
    /// the tenant has endpoints: marks are added before an endpoint is created and removed
    /// after it is deleted, so a partition may briefly dispatch for nothing, never miss one.
    async fn mirror_endpoint(&self, tenant: &str, id: &str, mark: bool) -> Result<(), StoreError> {
        if self.layouts.len() == 1 {
            return Ok(());
        }
        // Each through a write connection of its partition, so that with
        // `min_replicas_acked` replicas hold a mark as they hold the endpoint.
        let writes = (1..self.layouts.len()).map(|p| {
            let mut cmd = redis::cmd(if mark { "HSET" } else { "HDEL" });
            cmd.arg(self.partition(p).endpoints(tenant)).arg(id);
            if mark {
                cmd.arg("1");
            }
            async move {
                let mut conn = self.writer(p).await?;
                cmd.query_async::<u64>(&mut conn).await?;
                if let Some(e) = self.acknowledge_or_warn(conn).await {
                    tracing::warn!(error = %e, tenant, webhook_endpoint_id = id, partition = p, "an endpoint's mark written without replicas' confirmation");
                }
                Ok::<(), StoreError>(())
            }
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    /// Adds the marks every partition should hold for the tenant's endpoints (those of
    /// partition 0) and lacks: a mark lost (a failover before it was replicated, a hand edit)
    /// would keep that partition's events from ever being delivered. Marks without an endpoint
    /// are left alone: one may belong to an endpoint being created right now, and an extra
    /// mark only costs dispatch jobs that find nothing to send. Returns how many were added.
    pub async fn restore_endpoint_marks(&self, tenant: &str) -> Result<u64, StoreError> {
        if self.layouts.len() == 1 {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let endpoints: Vec<String> = redis::cmd("HKEYS")
            .arg(self.first().endpoints(tenant))
            .query_async(&mut conn)
            .await?;
        if endpoints.is_empty() {
            return Ok(0);
        }
        let mut added = 0;
        for layout in &self.layouts[1..] {
            let key = layout.endpoints(tenant);
            let marks: Vec<String> = redis::cmd("HKEYS").arg(&key).query_async(&mut conn).await?;
            let missing: Vec<&String> = endpoints.iter().filter(|e| !marks.contains(e)).collect();
            if missing.is_empty() {
                continue;
            }
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key);
            for id in &missing {
                cmd.arg(id.as_str()).arg("1");
            }
            added += cmd.query_async::<u64>(&mut conn).await?;
        }
        Ok(added)
    }
}
