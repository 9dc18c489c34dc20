//! Tenants' webhook endpoints, one hash per tenant in the charge queue's slot (the payment
//! scripts look at it to decide whether an event needs a dispatch job), and redelivery.

use super::ack::Wrote;
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
        let mut conn = self.writer().await?;
        let outcome: String = self
            .scripts
            .endpoints
            .key(self.layout.endpoints(tenant))
            .arg(mode)
            .arg(endpoint.endpoint.id.as_str())
            .arg(serde_json::to_string(endpoint)?)
            .arg(MAX_ENDPOINTS)
            .arg(expected)
            .invoke_async(&mut conn)
            .await?;
        if outcome == "ok" {
            self.acknowledge(conn, Wrote::Here).await?;
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
            .arg(self.layout.endpoints(tenant))
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
            .arg(self.layout.endpoints(tenant))
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
        let mut conn = self.writer().await?;
        let removed: u64 = redis::cmd("HDEL")
            .arg(self.layout.endpoints(tenant))
            .arg(id)
            .query_async(&mut conn)
            .await?;
        if removed > 0 {
            self.acknowledge(conn, Wrote::Here).await?;
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
        let mut conn = self.writer().await?;
        let mut invocation = self.scripts.redeliver.prepare_invoke();
        invocation.key(self.layout.event(id.as_str()));
        for key in self.layout.webhooks.job_keys() {
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
            .invoke_async(&mut conn)
            .await?;
        if outcome == "queued" {
            self.acknowledge(conn, Wrote::Here).await?;
        }
        Ok(outcome == "queued")
    }
}
