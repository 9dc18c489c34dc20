//! Listing a tenant's payments: newest first, from the index that matches the filter, one
//! script call per page whatever the filter.

use super::{Store, StoreError};
use crate::payment::{Payment, Status};

/// A page of payments.
#[derive(Debug)]
pub struct Page {
    pub payments: Vec<Payment>,
    /// More payments follow the last one (pass its id as the next cursor).
    pub has_more: bool,
}

impl Store {
    /// At most `limit` of the tenant's payments (of `customer`, in `status`), newest first,
    /// after the payment `starting_after`. `None` when the cursor is not one of the tenant's
    /// payments.
    pub async fn list(
        &self,
        tenant: &str,
        customer: Option<&str>,
        status: Option<Status>,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Option<Page>, StoreError> {
        let mut conn = self.conn().await?;
        let reply: Vec<redis::Value> = self
            .scripts
            .list
            .key(self.layout.index(tenant, customer, status))
            .key(self.layout.index(tenant, None, None))
            .arg(tenant)
            .arg(limit)
            .arg(starting_after.unwrap_or(""))
            .arg(self.layout.payment_prefix())
            .invoke_async(&mut conn)
            .await?;
        let mut reply = reply.into_iter();
        let outcome: String = match reply.next() {
            Some(v) => redis::from_redis_value(v)?,
            None => return Ok(None),
        };
        if outcome != "ok" {
            return Ok(None);
        }
        let has_more: String = match reply.next() {
            Some(v) => redis::from_redis_value(v)?,
            None => String::new(),
        };
        let mut payments = Vec::with_capacity(limit);
        for record in reply {
            let json: String = redis::from_redis_value(record)?;
            payments.push(serde_json::from_str(&json)?);
        }
        Ok(Some(Page {
            payments,
            has_more: has_more == "1",
        }))
    }
}
