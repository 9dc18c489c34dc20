//! One sandbox account: the data behind one API key, like a Stripe account in test mode.
//!
//! An account is used under its own mutex; every operation is synchronous and short, so a
//! request's whole effect (create, confirm, record the charge, record the events) is atomic,
//! which is what Stripe's own per-object locking gives its clients.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use flint_shared::ids::random_token;

use crate::error::ApiError;
use crate::idempotency::IdempotencyStore;
use crate::objects::{Charge, Customer, Event, PaymentIntent, PaymentMethod, PendingEvent};

/// Per-request facts that end up in the objects and events a request creates.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub api_version: String,
    pub strict_attach: bool,
}

/// Events kept per account for `GET /v1/events/{id}`; older ones are forgotten so that a
/// long-running sandbox (`flint dev`) does not grow without bound on events alone.
pub const MAX_EVENTS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Account {
    pub customers: HashMap<String, Customer>,
    /// Customer ids, oldest first, for listing.
    pub customer_order: Vec<String>,
    pub payment_methods: HashMap<String, PaymentMethod>,
    pub payment_method_order: Vec<String>,
    pub intents: HashMap<String, PaymentIntent>,
    pub intent_order: Vec<String>,
    pub charges: HashMap<String, Charge>,
    /// The newest [`MAX_EVENTS`] events, by id, and their order for eviction.
    pub events: HashMap<String, Event>,
    pub event_order: VecDeque<String>,
    /// Events not yet handed to the webhook sender.
    pub outbox: Vec<PendingEvent>,
    pub idempotency: IdempotencyStore,
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `{prefix}_` followed by 24 random base62 characters, like Stripe's ids.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(24))
}

impl Account {
    pub fn customer(&self, id: &str) -> Result<&Customer, ApiError> {
        self.customers
            .get(id)
            .ok_or_else(|| ApiError::no_such("customer", id))
    }

    pub fn customer_mut(&mut self, id: &str) -> Result<&mut Customer, ApiError> {
        self.customers
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("customer", id))
    }

    /// A live customer named in a parameter (400 rather than 404 when it does not exist).
    pub fn customer_param(&self, id: &str, param: &str) -> Result<&Customer, ApiError> {
        match self.customers.get(id) {
            Some(c) if !c.deleted => Ok(c),
            Some(_) | None => Err(ApiError::no_such_param("customer", id, param)),
        }
    }

    pub fn intent(&self, id: &str) -> Result<&PaymentIntent, ApiError> {
        self.intents
            .get(id)
            .ok_or_else(|| ApiError::no_such("payment_intent", id))
    }

    pub fn intent_mut(&mut self, id: &str) -> Result<&mut PaymentIntent, ApiError> {
        self.intents
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("payment_intent", id))
    }

    /// Makes an event about `object`; the request renders it, then [`Account::record`]s it and
    /// sends its webhooks.
    pub fn emit(&mut self, kind: &'static str, object: serde_json::Value, ctx: &RequestCtx) {
        self.outbox.push(PendingEvent {
            id: new_id("evt"),
            created: now_unix(),
            kind,
            object,
            request_id: ctx.request_id.clone(),
            idempotency_key: ctx.idempotency_key.clone(),
            api_version: ctx.api_version.clone(),
        });
    }

    /// Keeps rendered events for `GET /v1/events/{id}`, the newest [`MAX_EVENTS`].
    pub fn record(&mut self, events: &[Event]) {
        for event in events {
            self.event_order.push_back(event.id.clone());
            self.events.insert(event.id.clone(), event.clone());
        }
        while self.event_order.len() > MAX_EVENTS {
            if let Some(old) = self.event_order.pop_front() {
                self.events.remove(&old);
            }
        }
    }
}

/// Cursor pagination over ids kept oldest first, answered newest first as Stripe lists are.
pub struct Page<'a> {
    pub limit: usize,
    pub starting_after: Option<&'a str>,
    pub ending_before: Option<&'a str>,
}

/// Returns the selected ids and `has_more`. `exists` says whether a cursor id is known.
pub fn paginate<'a>(
    order: &'a [String],
    page: &Page<'_>,
    keep: impl Fn(&str) -> bool,
    cursor_object: &str,
) -> Result<(Vec<&'a String>, bool), ApiError> {
    let newest_first: Vec<&String> = order.iter().rev().filter(|id| keep(id)).collect();
    let position = |cursor: &str, param: &str| {
        newest_first
            .iter()
            .position(|id| id.as_str() == cursor)
            .ok_or_else(|| ApiError::no_such_param(cursor_object, cursor, param))
    };
    if let Some(before) = page.ending_before {
        let end = position(before, "ending_before")?;
        let start = end.saturating_sub(page.limit);
        return Ok((newest_first[start..end].to_vec(), start > 0));
    }
    let start = match page.starting_after {
        Some(after) => position(after, "starting_after")? + 1,
        None => 0,
    };
    let end = (start + page.limit).min(newest_first.len());
    Ok((newest_first[start..end].to_vec(), end < newest_first.len()))
}

/// Stripe's list envelope.
pub fn list_json(url: &str, data: Vec<serde_json::Value>, has_more: bool) -> serde_json::Value {
    serde_json::json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

/// Metadata after an update: empty values delete keys, `metadata=` (empty map) clears all.
pub fn merge_metadata(
    current: &mut BTreeMap<String, String>,
    update: Option<BTreeMap<String, String>>,
) {
    match update {
        None => {}
        Some(update) if update.is_empty() => current.clear(),
        Some(update) => {
            for (k, v) in update {
                if v.is_empty() {
                    current.remove(&k);
                } else {
                    current.insert(k, v);
                }
            }
        }
    }
}
