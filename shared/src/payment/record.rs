//! The stored payment, which is also what the API returns: the request as accepted, its
//! status, each attempt, and the timeline of its events.

use serde::{Deserialize, Serialize};

use super::request::{Context, InitiatedBy, NewPayment, RetryPolicy};
use super::{Purpose, Status};
use crate::ids::{EventId, PaymentId};
use crate::metadata::Metadata;

/// RFC 3339 (UTC, millisecond precision) of unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let at = at
        .replace_nanosecond((at.nanosecond() / 1_000_000) * 1_000_000)
        .unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Amount {
    pub value: i64,
    pub currency: String,
}

/// The kinds of lifecycle events (also the webhook event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    #[serde(rename = "off_session_payment.created")]
    Created,
    #[serde(rename = "off_session_payment.attempt_started")]
    AttemptStarted,
    #[serde(rename = "off_session_payment.attempt_failed")]
    AttemptFailed,
    #[serde(rename = "off_session_payment.paused")]
    Paused,
    #[serde(rename = "off_session_payment.resumed")]
    Resumed,
    #[serde(rename = "off_session_payment.succeeded")]
    Succeeded,
    #[serde(rename = "off_session_payment.failed")]
    Failed,
    #[serde(rename = "off_session_payment.canceled")]
    Canceled,
    /// After a hard decline, the next attempt charges another of the customer's saved cards.
    #[serde(rename = "off_session_payment.payment_method_switched")]
    PaymentMethodSwitched,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub created_at: String,
    /// Why it happened, in words (a decline code, an operator's reason, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One attempt to charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub number: u32,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    /// `succeeded`, `soft_decline`, `hard_decline`, `needs_customer`, `unknown`, …
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub advice_code: Option<String>,
    #[serde(default)]
    pub processor_request_id: Option<String>,
    /// The processor's charge of this attempt (`ch_…`), when it made one: how an attempt whose
    /// answer was lost is told apart from the one before it.
    #[serde(default)]
    pub charge: Option<String>,
}

/// An off-session payment (`osp_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    pub id: PaymentId,
    /// Always `off_session_payment`.
    pub object: String,
    pub status: Status,
    pub customer: String,
    pub payment_method: Option<String>,
    pub amount: Amount,
    pub purpose: Purpose,
    pub context: Context,
    pub initiated_by: InitiatedBy,
    pub description: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub metadata: Metadata,
    pub charge_at: Option<String>,
    pub retry_policy: RetryPolicy,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<String>,
    /// A cancel arrived while an attempt was running: no further attempt will start.
    pub cancel_requested: bool,
    /// The processor's PaymentIntent for this payment (one per payment), once created.
    #[serde(default)]
    pub processor_payment_intent: Option<String>,
    /// Why the payment failed or is paused, in words.
    #[serde(default)]
    pub last_error: Option<String>,
    pub attempts: Vec<Attempt>,
    pub events: Vec<TimelineEvent>,
    pub created_at: String,
    pub updated_at: String,
}

impl Payment {
    /// A fresh `pending` payment with its `created` event.
    pub fn create(id: PaymentId, new: NewPayment, now_ms: i64) -> Payment {
        let now = rfc3339(now_ms);
        let first_attempt_ms = new.charge_at_ms.unwrap_or(now_ms);
        Payment {
            id,
            object: "off_session_payment".to_owned(),
            status: Status::Pending,
            customer: new.customer,
            payment_method: new.payment_method,
            amount: Amount {
                value: new.amount.amount_minor(),
                currency: new.amount.currency().code().to_owned(),
            },
            purpose: new.purpose,
            context: new.context,
            initiated_by: new.initiated_by,
            description: new.description,
            statement_descriptor_suffix: new.statement_descriptor_suffix,
            metadata: new.metadata,
            charge_at: new.charge_at_ms.map(rfc3339),
            retry_policy: new.retry_policy,
            next_attempt_at: Some(rfc3339(first_attempt_ms)),
            cancel_requested: false,
            processor_payment_intent: None,
            last_error: None,
            attempts: Vec::new(),
            events: vec![TimelineEvent {
                id: EventId::generate(),
                kind: EventKind::Created,
                created_at: now.clone(),
                detail: None,
            }],
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// Appends an event and stamps the update time.
    pub fn record(&mut self, kind: EventKind, detail: Option<String>, now_ms: i64) {
        let now = rfc3339(now_ms);
        self.events.push(TimelineEvent {
            id: EventId::generate(),
            kind,
            created_at: now.clone(),
            detail,
        });
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000_123), "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn a_created_payment_is_pending_with_its_created_event_and_round_trips() {
        let req: super::super::CreatePaymentRequest = serde_json::from_value(serde_json::json!({
            "customer": "cus_1", "amount": {"value": 2000, "currency": "eur"}, "purpose": "repeat_purchase",
            "initiated_by": {"type": "service", "id": "shop"}, "metadata": {"order": "42"}
        }))
        .unwrap();
        let p = Payment::create(
            PaymentId::generate(),
            req.validate(1_800_000_000_000).unwrap(),
            1_800_000_000_000,
        );
        assert_eq!(p.status, Status::Pending);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].kind, EventKind::Created);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["events"][0]["type"], "off_session_payment.created");
        assert_eq!(
            json["amount"],
            serde_json::json!({"value": 2000, "currency": "eur"})
        );
        assert_eq!(
            json["initiated_by"],
            serde_json::json!({"type": "service", "id": "shop"})
        );
        let back: Payment = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }
}
