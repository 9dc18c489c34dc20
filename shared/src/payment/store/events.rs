//! Reading events: one by id, a page of the tenant's (of one type), or a page of one
//! payment's. Events are written only with the transitions that record them
//! (`lua/events.lua`).

use super::codec::CodecError;
use super::documents::json_of_document;
use super::list::{Listing, records};
use super::{Layout, Store, StoreError};
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
        let (data, owner) = self.event_fields(id).await?;
        match (data, owner) {
            (Some(d), Some(t)) if t == tenant => Ok(Some(serde_json::from_str(&d)?)),
            _ => Ok(None),
        }
    }

    /// An event whatever its tenant (for workers): the event, and its JSON exactly as stored
    /// (what a webhook delivery sends and signs).
    pub async fn event_any(&self, id: &str) -> Result<Option<(Event, String)>, StoreError> {
        let (data, _) = self.event_fields(id).await?;
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
                let layout = self.of_payment(payment);
                let reply: Vec<redis::Value> = self
                    .scripts
                    .events_of
                    .key(layout.payment(payment))
                    .arg(tenant)
                    .arg(layout.event_prefix())
                    .arg(limit)
                    .arg(starting_after.unwrap_or(""))
                    .arg(filter.kind.map_or("", EventKind::as_str))
                    .arg(layout.payment_prefix())
                    .invoke_async(&mut conn)
                    .await?;
                let missing = match reply.first() {
                    Some(redis::Value::BulkString(b)) if b == b"missing" => EventsMissing::Payment,
                    _ => EventsMissing::Cursor,
                };
                records(reply, tenant)?.ok_or(missing)
            }
            None => {
                let kinds = |l: &Layout| {
                    EventKind::ALL
                        .iter()
                        .map(|k| l.event_index(tenant, Some(*k)))
                        .collect()
                };
                let listing = Listing {
                    tenant,
                    indexes: &|l: &Layout| match filter.kind {
                        Some(kind) => vec![l.event_index(tenant, Some(kind))],
                        None => kinds(l),
                    },
                    all: &kinds,
                    prefix: &|l: &Layout| l.event_prefix(),
                    created_in: Some(&|l: &Layout| l.payment_prefix()),
                    // Event ids do not name their partition.
                    cursor_home: None,
                };
                self.page(&listing, limit, starting_after)
                    .await?
                    .ok_or(EventsMissing::Cursor)
            }
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

    /// The event `id`'s JSON and tenant, and the partition holding it. Event ids do not name
    /// their partition, so every partition is asked (at once); an event is in one only.
    pub(super) async fn find_event(
        &self,
        id: &str,
    ) -> Result<Option<(usize, String, String)>, StoreError> {
        let conn = self.conn().await?;
        let lookups = self.layouts.iter().map(|layout| {
            let mut conn = conn.clone();
            let key = layout.event(id);
            let (events, payments) = (layout.event_prefix(), layout.payment_prefix());
            async move {
                self.scripts
                    .event
                    .key(key)
                    .arg(events)
                    .arg(id)
                    .arg(payments)
                    .invoke_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
            }
        });
        let found = futures::future::try_join_all(lookups).await?;
        for (p, fields) in found.into_iter().enumerate() {
            if let Ok([form, doc, tenant]) = <[Vec<u8>; 3]>::try_from(fields) {
                let tenant = String::from_utf8(tenant).map_err(|_| CodecError::NotText)?;
                let json = json_of_document(id, &tenant, &form, &doc)?;
                return Ok(Some((p, json, tenant)));
            }
        }
        Ok(None)
    }

    async fn event_fields(&self, id: &str) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(match self.find_event(id).await? {
            Some((_, d, t)) => (Some(d), Some(t)),
            None => (None, None),
        })
    }
}
