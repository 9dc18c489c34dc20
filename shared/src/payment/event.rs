//! An event as the API lists it (and as webhooks will deliver it): one step of one payment's
//! life, with the payment as the transition that caused it left it.
//!
//! A payment's timeline ([`TimelineEvent`]) is the short form kept inside the record; an
//! [`Event`] is the same event, addressable on its own by its `evt_` id, with the tenant and a
//! snapshot of the payment (without its timeline, which `GET /v1/events?payment=…` lists).
//! Both are written by the script that writes the transition, so neither exists without the
//! other.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::record::{Attempt, EventKind, Payment, TimelineEvent};
use super::request::InitiatedBy;
use crate::ids::EventId;
use crate::time::Timestamp;

/// An event of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: EventId,
    /// Always `event`.
    pub object: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The tenant whose payment it is.
    pub tenant: String,
    /// Why it happened, in words (a decline code, an operator's reason, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who asked for it; absent when Flint acted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<InitiatedBy>,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventData {
    /// The payment (an `off_session_payment`, as `GET /v1/off_session_payments/{id}` shows
    /// it) as the transition left it, without its `events` timeline.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub object: serde_json::Value,
    /// For `attempt_started` and `attempt_failed`: the attempt (its card, outcome, decline
    /// and advice codes, and the network rule behind a block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
}

impl Event {
    /// The event `e` of `payment` (as the transition that recorded `e` left it).
    pub fn of(tenant: &str, payment: &Payment, e: &TimelineEvent) -> Event {
        let object = serde_json::to_value(without_timeline(payment)).unwrap_or_default();
        Event {
            id: e.id.clone(),
            object: "event".to_owned(),
            kind: e.kind,
            created_at: e.created_at,
            tenant: tenant.to_owned(),
            detail: e.detail.clone(),
            initiated_by: e.initiated_by.clone(),
            data: EventData {
                object,
                attempt: attempt_of(payment, e).cloned(),
            },
        }
    }
}

fn attempt_of<'a>(payment: &'a Payment, e: &TimelineEvent) -> Option<&'a Attempt> {
    match e.kind {
        EventKind::AttemptStarted | EventKind::AttemptFailed => payment.attempts.last(),
        _ => None,
    }
}

fn without_timeline(payment: &Payment) -> Payment {
    Payment {
        events: Vec::new(),
        ..payment.clone()
    }
}

/// The payment's snapshot, as its events carry it: the payment without its timeline.
pub fn snapshot(payment: &Payment) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(&without_timeline(payment))
}

/// A payment's stored JSON and its [`snapshot`], serialized once: the record is the snapshot
/// with the timeline added as its last member.
pub fn encode(payment: &Payment) -> Result<(String, Box<RawValue>), serde_json::Error> {
    let snapshot = snapshot(payment)?;
    let body = snapshot.get();
    let events = serde_json::to_string(&payment.events)?;
    let mut record = String::with_capacity(body.len() + events.len() + 12);
    // The snapshot is a JSON object with at least its id: `{…}`.
    record.push_str(&body[..body.len() - 1]);
    record.push_str(",\"events\":");
    record.push_str(&events);
    record.push('}');
    Ok((record, snapshot))
}

/// The JSON of the events a transition recorded (`events`, of `payment`, whose snapshot
/// [`encode`] made), as stored and delivered: the same as serializing [`Event::of`] each, but
/// the snapshot is serialized once for the record and all of them (the charge path writes
/// events on every transition).
pub fn encode_all<'a>(
    tenant: &str,
    payment: &Payment,
    snapshot: &RawValue,
    events: impl IntoIterator<Item = &'a TimelineEvent>,
) -> Result<Vec<String>, serde_json::Error> {
    events
        .into_iter()
        .map(|e| {
            serde_json::to_string(&Envelope {
                id: &e.id,
                object: "event",
                kind: e.kind,
                created_at: e.created_at,
                tenant,
                detail: e.detail.as_deref(),
                initiated_by: e.initiated_by.as_ref(),
                data: EnvelopeData {
                    object: snapshot,
                    attempt: attempt_of(payment, e),
                },
            })
        })
        .collect()
}

/// [`Event`] by reference, for writing.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a EventId,
    object: &'static str,
    #[serde(rename = "type")]
    kind: EventKind,
    created_at: Timestamp,
    tenant: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initiated_by: Option<&'a InitiatedBy>,
    data: EnvelopeData<'a>,
}

#[derive(Serialize)]
struct EnvelopeData<'a> {
    object: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<&'a Attempt>,
}

/// The events `after` recorded that `before` did not have, oldest first.
pub fn recorded_since<'a>(
    before: &Payment,
    after: &'a Payment,
) -> impl Iterator<Item = &'a TimelineEvent> {
    let known: std::collections::HashSet<&EventId> = before.events.iter().map(|e| &e.id).collect();
    after.events.iter().filter(move |e| !known.contains(&e.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PaymentId;
    use crate::payment::request::CreatePaymentRequest;

    fn payment() -> Payment {
        let request: CreatePaymentRequest = serde_json::from_value(serde_json::json!({
            "customer": "cus_1",
            "amount": {"value": 1000, "currency": "usd"},
            "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "billing"},
        }))
        .unwrap();
        let new = request.validate(Timestamp::now()).unwrap();
        Payment::create(PaymentId::generate(), new, Timestamp::now())
    }

    #[test]
    fn an_event_carries_the_payment_without_its_timeline() {
        let p = payment();
        let e = Event::of("acme", &p, &p.events[0]);
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(e.tenant, "acme");
        assert_eq!(e.data.object["id"], p.id.as_str());
        assert!(e.data.object.get("events").is_none());
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "off_session_payment.created");
        assert_eq!(json["object"], "event");
    }

    #[test]
    fn events_encoded_together_are_each_event_as_it_serializes_alone() {
        let mut p = payment();
        p.record(EventKind::AttemptStarted, None, Timestamp::now());
        p.attempts
            .push(Attempt::new(1, Some("pm_1".into()), Timestamp::now()));
        p.record(
            EventKind::AttemptFailed,
            Some("do_not_honor".into()),
            Timestamp::now(),
        );
        let (record, snapshot) = encode(&p).unwrap();
        let together = encode_all("acme", &p, &snapshot, &p.events).unwrap();
        assert_eq!(together.len(), 3);
        for (json, e) in together.iter().zip(&p.events) {
            let alone = serde_json::to_value(Event::of("acme", &p, e)).unwrap();
            let encoded: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(encoded, alone);
            assert!(encoded["data"]["object"].get("events").is_none());
        }
        // The record is the payment, timeline and all.
        let back: Payment = serde_json::from_str(&record).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&record).unwrap(),
            serde_json::to_value(&p).unwrap()
        );
    }

    #[test]
    fn only_the_events_a_transition_recorded_are_new() {
        let before = payment();
        let mut after = before.clone();
        after.record(EventKind::AttemptStarted, None, Timestamp::now());
        after.record(EventKind::Succeeded, None, Timestamp::now());
        let new: Vec<EventKind> = recorded_since(&before, &after).map(|e| e.kind).collect();
        assert_eq!(new, [EventKind::AttemptStarted, EventKind::Succeeded]);
        assert_eq!(recorded_since(&after, &after).count(), 0);
    }
}
