//! Listing a tenant's payments and events: newest first, from the index that matches the
//! filter, one script call per page whatever the filter.

use super::{Store, StoreError};
use crate::payment::{Payment, Status};

/// A page of payments.
#[derive(Debug)]
pub struct Page {
    pub payments: Vec<Payment>,
    /// More payments follow the last one (pass its id as the next cursor).
    pub has_more: bool,
}

/// Records as stored (JSON), newest first, and whether more follow.
pub(super) type Records = (Vec<String>, bool);

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
        let page = self
            .page(
                &self.layout.index(tenant, customer, status),
                &self.layout.index(tenant, None, None),
                tenant,
                limit,
                starting_after,
                &self.layout.payment_prefix(),
            )
            .await?;
        let Some((records, has_more)) = page else {
            return Ok(None);
        };
        let payments = records
            .iter()
            .map(|json| serde_json::from_str(json))
            .collect::<Result<_, _>>()?;
        Ok(Some(Page { payments, has_more }))
    }

    /// A page of `index` (ids by time, records under `prefix` with `d` and `t` fields), after
    /// `starting_after`, whose position is looked up in `all` (the tenant's index of every such
    /// record). `None` when the cursor is not in `all`.
    pub(super) async fn page(
        &self,
        index: &str,
        all: &str,
        tenant: &str,
        limit: usize,
        starting_after: Option<&str>,
        prefix: &str,
    ) -> Result<Option<Records>, StoreError> {
        let mut conn = self.conn().await?;
        let reply: Vec<redis::Value> = self
            .scripts
            .list
            .key(index)
            .key(all)
            .arg(tenant)
            .arg(limit)
            .arg(starting_after.unwrap_or(""))
            .arg(prefix)
            .invoke_async(&mut conn)
            .await?;
        records(reply)
    }
}

/// Reads a `{'ok', has_more, json …}` reply; `None` for any other outcome.
pub(super) fn records(reply: Vec<redis::Value>) -> Result<Option<Records>, StoreError> {
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
    let records = reply
        .map(redis::from_redis_value)
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some((records, has_more == "1")))
}
