//! What the store keeps beside a document for its scripts, and what it makes from documents:
//! a payment's record as read back, the `e` field naming its events, and the `created` event
//! made from a record that has not changed since its create (see `lua/events.lua`).

use std::collections::HashMap;

use super::{StoreError, codec};
use crate::ids::{EventId, PaymentId};
use crate::payment::event::{encode, encode_all};
use crate::payment::{EventKind, Payment};

/// The constants of `lua/events.lua`: FE_KINDS, the event type names that the code in a
/// payment's `e` field indexes (from 0, in [`EventKind::ALL`]'s order; Lua's tables count from
/// 1), and the id prefixes by which a `created` event's id names its payment
/// ([`EventId::created_of`]).
pub(super) fn constants_lua() -> String {
    let names: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect();
    format!(
        "local FE_KINDS = {{{}}}\nlocal FE_EVENT_PREFIX, FE_PAYMENT_PREFIX = '{}', '{}'",
        names.join(", "),
        EventId::PREFIX,
        PaymentId::PREFIX
    )
}

fn kind_code(kind: EventKind) -> usize {
    EventKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("ALL lists every kind")
}

/// A payment's `e` field: `<id>:<code>` for each of its events, oldest first, comma-separated.
pub(super) fn timeline(payment: &Payment) -> String {
    let mut out = String::with_capacity(payment.events.len() * 32);
    for (n, e) in payment.events.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(e.id.as_str());
        out.push(':');
        out.push_str(&kind_code(e.kind).to_string());
    }
    out
}

/// A payment's hash, as `HGETALL` gave it.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// The document (pieces joined), as stored.
    pub document: Option<Vec<u8>>,
    pub tenant: Option<String>,
    pub version: Option<String>,
}

impl Record {
    pub fn of(mut fields: HashMap<String, Vec<u8>>) -> Result<Record, StoreError> {
        let text = |v: Vec<u8>| String::from_utf8(v).map_err(|_| codec::CodecError::NotText);
        let document = match (fields.remove("d"), fields.remove("k")) {
            // Written whole by an earlier version.
            (Some(d), _) => Some(d),
            (None, Some(k)) => {
                let count: usize = text(k)?.parse().map_err(|_| codec::CodecError::Pieces)?;
                let mut doc = Vec::new();
                for i in 1..=count {
                    let piece = fields
                        .remove(&format!("d{i}"))
                        .ok_or(codec::CodecError::Pieces)?;
                    doc.extend_from_slice(&piece);
                }
                Some(doc)
            }
            (None, None) => None,
        };
        Ok(Record {
            document,
            tenant: fields.remove("t").map(text).transpose()?,
            version: fields.remove("v").map(text).transpose()?,
        })
    }
}

/// The JSON of `payment`'s `created` event (its first), of `tenant`: what the create would
/// have written, made from the payment as the create wrote it.
pub(super) fn created_event(tenant: &str, payment: &Payment) -> Result<String, serde_json::Error> {
    let (_, snapshot) = encode(payment)?;
    let mut events = encode_all(tenant, payment, &snapshot, payment.events.first())?;
    Ok(events.pop().unwrap_or_default())
}

/// How a script handed over a record's document (`lua/list.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// The record's own document.
    Own,
    /// The record of the payment whose unchanged `created` event this is.
    CreatedFrom,
}

impl Form {
    pub fn parse(form: &[u8]) -> Result<Form, StoreError> {
        match form {
            b"d" => Ok(Form::Own),
            b"p" => Ok(Form::CreatedFrom),
            _ => Err(codec::CodecError::Form.into()),
        }
    }
}

/// The JSON of record `id` (a payment, or an event) of `tenant`, from what a script handed
/// over.
pub(super) fn json_of_document(
    id: &str,
    tenant: &str,
    form: Form,
    document: &[u8],
) -> Result<String, StoreError> {
    let json = codec::unpack(document)?;
    match form {
        Form::Own => Ok(json),
        Form::CreatedFrom => {
            let payment: Payment = serde_json::from_str(&json)?;
            match payment.events.first() {
                Some(e) if e.id.as_str() == id => Ok(created_event(tenant, &payment)?),
                _ => Err(codec::CodecError::NotCreatedEvent(id.to_owned()).into()),
            }
        }
    }
}
