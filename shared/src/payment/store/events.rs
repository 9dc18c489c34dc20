//! Reading events: one by id, a page of the tenant's (of one type), or a page of one
//! payment's. Events are written only with the transitions that record them
//! (`lua/events.lua`).

use super::list::records;
use super::{Store, StoreError};
use crate::payment::EventKind;
use crate::payment::event::Event;

/// A page of events.
#[derive(Debug)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// More events follow the last one (pass its id as the next cursor).
    pub has_more: bool,
}

/// Why a page of events could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum EventsMissing {
    /// The payment filter names no payment of the tenant.
    Payment,
    /// The cursor is not one of the events of the list.
    Cursor,
}

/// What to list.
#[derive(Debug, Default, Clone)]
pub struct EventFilter<'a> {
    pub kind: Option<EventKind>,
    pub payment: Option<&'a str>,
}

impl Store {
    /// The tenant's event `id`; `None` when it does not exist or belongs to someone else.
    pub async fn event(&self, tenant: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let mut conn = self.conn().await?;
        let (data, owner): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.layout.event(id))
            .arg("d")
            .arg("t")
            .query_async(&mut conn)
            .await?;
        match (data, owner) {
            (Some(d), Some(t)) if t == tenant => Ok(Some(serde_json::from_str(&d)?)),
            _ => Ok(None),
        }
    }

    /// An event whatever its tenant (for workers): the event, and its JSON exactly as stored
    /// (what a webhook delivery sends and signs).
    pub async fn event_any(&self, id: &str) -> Result<Option<(Event, String)>, StoreError> {
        let mut conn = self.conn().await?;
        let data: Option<String> = redis::cmd("HGET")
            .arg(self.layout.event(id))
            .arg("d")
            .query_async(&mut conn)
            .await?;
        match data {
            Some(d) => Ok(Some((serde_json::from_str(&d)?, d))),
            None => Ok(None),
        }
    }

    /// At most `limit` of the tenant's events matching `filter`, newest first, after the event
    /// `starting_after`.
    pub async fn events(
        &self,
        tenant: &str,
        filter: EventFilter<'_>,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Result<EventPage, EventsMissing>, StoreError> {
        let page = match filter.payment {
            Some(payment) => {
                let mut conn = self.conn().await?;
                let reply: Vec<redis::Value> = self
                    .scripts
                    .events_of
                    .key(self.layout.payment(payment))
                    .arg(tenant)
                    .arg(self.layout.event_prefix())
                    .arg(limit)
                    .arg(starting_after.unwrap_or(""))
                    .arg(filter.kind.map_or("", EventKind::as_str))
                    .invoke_async(&mut conn)
                    .await?;
                let missing = match reply.first() {
                    Some(redis::Value::BulkString(b)) if b == b"missing" => EventsMissing::Payment,
                    _ => EventsMissing::Cursor,
                };
                records(reply)?.ok_or(missing)
            }
            None => self
                .page(
                    &self.layout.event_index(tenant, filter.kind),
                    &self.layout.event_index(tenant, None),
                    tenant,
                    limit,
                    starting_after,
                    &self.layout.event_prefix(),
                )
                .await?
                .ok_or(EventsMissing::Cursor),
        };
        Ok(match page {
            Ok((records, has_more)) => Ok(EventPage {
                events: records
                    .iter()
                    .map(|json| serde_json::from_str(json))
                    .collect::<Result<_, _>>()?,
                has_more,
            }),
            Err(missing) => Err(missing),
        })
    }
}
