//! What the store keeps beside a document for its scripts, and what it makes from documents:
//! a payment's record as read back, its timeline (its events' ids and type codes), and the
//! `created` event made from a record that has not changed since its create (see
//! `lua/events.lua`).

use std::collections::HashMap;

use super::{StoreError, codec};
use crate::config::StorageFormat;
use crate::ids::{EventId, PaymentId};
use crate::payment::event::{encode_all, snapshot};
use crate::payment::{EventKind, Payment};

/// The constants of `lua/events.lua`: `fe_kinds()`, the event type names by their code in a
/// payment's timeline ([`EventKind::code`], plus one: Lua's tables count from 1; a function, so
/// that only the script calls that read a timeline make the table), and the id prefixes by
/// which a `created` event's id names its payment ([`EventId::created_of`]).
pub(super) fn constants_lua() -> String {
    let names: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| format!("[{}] = '{}'", u16::from(k.code()) + 1, k.as_str()))
        .collect();
    format!(
        "local function fe_kinds() return {{{}}} end\nlocal FE_EVENT_PREFIX, FE_PAYMENT_PREFIX = '{}', '{}'",
        names.join(", "),
        EventId::PREFIX,
        PaymentId::PREFIX
    )
}

/// A payment's timeline: `<id>:<code>` for each of its events, oldest first, comma-separated
/// (`lua/events.lua` keeps it in pieces); empty in the JSON format, which does not keep it.
pub(super) fn timeline(format: StorageFormat, payment: &Payment) -> String {
    if format == StorageFormat::Json {
        return String::new();
    }
    let mut out = String::with_capacity(payment.events.len() * 32);
    for (n, e) in payment.events.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(e.id.as_str());
        out.push(':');
        out.push_str(&e.kind.code().to_string());
    }
    out
}

/// `json` as written in `format`.
pub(super) fn stored(format: StorageFormat, json: &str) -> Vec<u8> {
    match format {
        StorageFormat::Json => json.as_bytes().to_vec(),
        StorageFormat::Compact => codec::pack(json),
    }
}

/// A payment's hash, as `HGETALL` gave it.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// The document (pieces joined), as stored.
    pub document: Option<Vec<u8>>,
    pub tenant: Option<String>,
    pub version: Option<String>,
    /// Field l: the record keeps its payment's `created` event.
    pub keeps_created: bool,
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
            keeps_created: fields.contains_key("l"),
            tenant: fields.remove("t").map(text).transpose()?,
            version: fields.remove("v").map(text).transpose()?,
        })
    }
}

/// The JSON of `payment`'s `created` event (its first), of `tenant`: what the create would
/// have written, made from the payment as the create wrote it.
pub(super) fn created_event(tenant: &str, payment: &Payment) -> Result<String, serde_json::Error> {
    let mut events = encode_all(tenant, payment, &snapshot(payment)?, payment.events.first())?;
    Ok(events.pop().unwrap_or_default())
}

/// How a script handed over a record's document (`fe_form` in `lua/events.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The record's own document.
    Own,
    /// The record of the payment whose unchanged `created` event this is.
    CreatedFrom,
}

impl Form {
    fn parse(form: &[u8]) -> Result<Form, StoreError> {
        match form {
            b"d" => Ok(Form::Own),
            b"p" => Ok(Form::CreatedFrom),
            _ => Err(codec::CodecError::Form.into()),
        }
    }
}

/// The JSON of record `id` (a payment, or an event) of `tenant`, from what a script handed
/// over: its form and its document.
pub(super) fn json_of_document(
    id: &str,
    tenant: &str,
    form: &[u8],
    document: &[u8],
) -> Result<String, StoreError> {
    let form = Form::parse(form)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline's codes are stored: each kind keeps its code for good.
    #[test]
    fn each_kind_keeps_its_code() {
        let codes: Vec<(u8, &str)> = EventKind::ALL
            .iter()
            .map(|k| (k.code(), k.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                (0, "off_session_payment.created"),
                (1, "off_session_payment.attempt_started"),
                (2, "off_session_payment.attempt_failed"),
                (3, "off_session_payment.paused"),
                (4, "off_session_payment.resumed"),
                (5, "off_session_payment.succeeded"),
                (6, "off_session_payment.failed"),
                (7, "off_session_payment.canceled"),
                (8, "off_session_payment.payment_method_switched"),
                (9, "off_session_payment.requires_attention"),
            ]
        );
        assert!(constants_lua().contains("[1] = 'off_session_payment.created'"));
        assert!(constants_lua().contains("[10] = 'off_session_payment.requires_attention'"));
    }
}
