//! The stored payment, which is also what the API returns: the request as accepted, its
//! status, each attempt, and the timeline of its events.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::decline::{AdviceCode, DeclineCode, NetworkAdviceCode};
use super::network::NetworkRule;
use super::request::{Actor, Context, InitiatedBy, NewPayment, RetryPolicy};
use super::{Purpose, Status};
use crate::ids::{EventId, PaymentId};
use crate::metadata::Metadata;
use crate::time::Timestamp;

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
    /// Flint stopped trying on its own: an operator must look (see `attention`).
    #[serde(rename = "off_session_payment.requires_attention")]
    RequiresAttention,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Created,
        EventKind::AttemptStarted,
        EventKind::AttemptFailed,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Canceled,
        EventKind::PaymentMethodSwitched,
        EventKind::RequiresAttention,
    ];

    /// The type's name, as serialized (`off_session_payment.succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "off_session_payment.created",
            EventKind::AttemptStarted => "off_session_payment.attempt_started",
            EventKind::AttemptFailed => "off_session_payment.attempt_failed",
            EventKind::Paused => "off_session_payment.paused",
            EventKind::Resumed => "off_session_payment.resumed",
            EventKind::Succeeded => "off_session_payment.succeeded",
            EventKind::Failed => "off_session_payment.failed",
            EventKind::Canceled => "off_session_payment.canceled",
            EventKind::PaymentMethodSwitched => "off_session_payment.payment_method_switched",
            EventKind::RequiresAttention => "off_session_payment.requires_attention",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind's code in a stored payment's timeline: part of the stored format, so a kind
    /// keeps its code for good and a new kind takes the next one.
    pub fn code(self) -> u8 {
        match self {
            EventKind::Created => 0,
            EventKind::AttemptStarted => 1,
            EventKind::AttemptFailed => 2,
            EventKind::Paused => 3,
            EventKind::Resumed => 4,
            EventKind::Succeeded => 5,
            EventKind::Failed => 6,
            EventKind::Canceled => 7,
            EventKind::PaymentMethodSwitched => 8,
            EventKind::RequiresAttention => 9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Why it happened, in words (a decline code, an operator's reason, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who asked for it (a caller's cancel, resume or retry now; the create); absent when Flint
    /// acted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<InitiatedBy>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// May succeed later: retried on the schedule.
    SoftDecline,
    /// Never retried on this card.
    HardDecline,
    /// Authentication, an expired card or no card at all: the payment is paused.
    NeedsCustomer,
    /// The processor refused the request itself (a bug or bad data).
    Rejected,
    /// A card-network rule forbade charging the card; nothing was sent.
    BlockedByNetworkRule,
    /// A cancel was requested and the attempt is known to have made no charge.
    Canceled,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 7] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::SoftDecline,
        AttemptOutcome::HardDecline,
        AttemptOutcome::NeedsCustomer,
        AttemptOutcome::Rejected,
        AttemptOutcome::BlockedByNetworkRule,
        AttemptOutcome::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::SoftDecline => "soft_decline",
            AttemptOutcome::HardDecline => "hard_decline",
            AttemptOutcome::NeedsCustomer => "needs_customer",
            AttemptOutcome::Rejected => "rejected",
            AttemptOutcome::BlockedByNetworkRule => "blocked_by_network_rule",
            AttemptOutcome::Canceled => "canceled",
        }
    }
}

/// Why an attempt has no definite answer yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unanswered {
    /// The processor could not be reached or its answer was lost; its records are read until
    /// they say what happened.
    UnknownOutcome,
    /// The processor refused Flint's credentials (401/403).
    ProcessorMisconfigured,
}

/// An attempt still waiting for a definite answer: since when, how often it was asked again,
/// and the last reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unresolved {
    pub kind: Unanswered,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: Timestamp,
    /// How many times the attempt was tried again without an answer.
    pub tries: u32,
    pub reason: String,
}

/// One attempt to charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub number: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// The card charged, recorded before the attempt's first charging request: a continued
    /// attempt charges the same card and settles what the first try did before anything else.
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Recorded with the card: the attempt's charging requests are sent until this time only,
    /// so once it (and a request's lifetime) has passed, the processor's records show all the
    /// attempt did. An attempt that has not recorded its card yet has sent nothing: its window
    /// is empty (this time is its start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub send_until: Option<Timestamp>,
    #[serde(default)]
    pub outcome: Option<AttemptOutcome>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub decline_code: Option<DeclineCode>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub advice_code: Option<AdviceCode>,
    /// The card network's advice (Mastercard: `02`, `03`, `21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub network_advice_code: Option<NetworkAdviceCode>,
    /// The card-network rule that blocked this attempt, or that the decline put on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub network_rule: Option<NetworkRule>,
    #[serde(default)]
    pub processor_request_id: Option<String>,
    /// The processor's charge of this attempt (`ch_…`), when it made one: how an attempt whose
    /// answer was lost is told apart from the one before it.
    #[serde(default)]
    pub charge: Option<String>,
    /// While the attempt has no definite answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<Unresolved>,
}

impl Attempt {
    pub fn new(number: u32, payment_method: Option<String>, now: Timestamp) -> Attempt {
        Attempt {
            number,
            started_at: now,
            finished_at: None,
            payment_method,
            send_until: None,
            outcome: None,
            decline_code: None,
            advice_code: None,
            network_advice_code: None,
            network_rule: None,
            processor_request_id: None,
            charge: None,
            unresolved: None,
        }
    }
}

/// Why a payment needs an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttentionReason {
    /// An attempt's outcome stayed unknown past its bound: the processor may have charged.
    UnknownOutcome,
    /// The processor kept refusing Flint's credentials for this tenant.
    ProcessorMisconfigured,
    /// The attempt stopped its worker (a crash, a kill, a stall past its lease) too often.
    WorkerLost,
    /// The payment's job had to be restored by the sweeper too often.
    JobLost,
    /// The attempt failed inside Flint (a bug); the log has the detail.
    InternalError,
}

impl AttentionReason {
    pub const ALL: [AttentionReason; 5] = [
        AttentionReason::UnknownOutcome,
        AttentionReason::ProcessorMisconfigured,
        AttentionReason::WorkerLost,
        AttentionReason::JobLost,
        AttentionReason::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttentionReason::UnknownOutcome => "unknown_outcome",
            AttentionReason::ProcessorMisconfigured => "processor_misconfigured",
            AttentionReason::WorkerLost => "worker_lost",
            AttentionReason::JobLost => "job_lost",
            AttentionReason::InternalError => "internal_error",
        }
    }
}

/// While `requires_attention`: why, in a code and in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attention {
    pub reason: AttentionReason,
    pub detail: String,
}

/// How often a payment may be resumed (or retried now): every resume adds attempts and events,
/// and a payment's record must stay bounded. A caller who needs more creates a new payment.
pub const MAX_RESUMES: usize = 10;

/// How many other saved cards one payment may fall back to after hard declines.
pub const MAX_CARD_SWITCHES: usize = 5;

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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub charge_at: Option<Timestamp>,
    pub retry_policy: RetryPolicy,
    /// When the next attempt is due, while `pending`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<Timestamp>,
    /// While `paused`: when the payment fails unless it is resumed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// A cancel arrived while an attempt was running: no further attempt will start.
    pub cancel_requested: bool,
    /// Who asked for that cancel, and why (the `canceled` event records them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_request: Option<Actor>,
    /// The processor's PaymentIntent for this payment (one per payment), once created.
    #[serde(default)]
    pub processor_payment_intent: Option<String>,
    /// Why the payment failed or is paused, in words.
    #[serde(default)]
    pub last_error: Option<String>,
    /// While `requires_attention`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<Attention>,
    pub attempts: Vec<Attempt>,
    /// Never empty on a stored payment (its `created` event is the first); left out only of
    /// the snapshot an [`super::event::Event`] carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub events: Vec<TimelineEvent>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Payment {
    /// A fresh `pending` payment with its `created` event.
    pub fn create(id: PaymentId, new: NewPayment, now: Timestamp) -> Payment {
        let creator = new.initiated_by.clone();
        let created = EventId::created_of(&id);
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
            charge_at: new.charge_at,
            retry_policy: new.retry_policy,
            next_attempt_at: Some(new.charge_at.unwrap_or(now)),
            expires_at: None,
            cancel_requested: false,
            cancel_request: None,
            processor_payment_intent: None,
            last_error: None,
            attention: None,
            attempts: Vec::new(),
            events: vec![TimelineEvent {
                id: created,
                kind: EventKind::Created,
                created_at: now,
                detail: None,
                initiated_by: Some(creator),
            }],
            created_at: now,
            updated_at: now,
        }
    }

    /// Appends an event Flint caused on its own and stamps the update time.
    pub fn record(&mut self, kind: EventKind, detail: Option<String>, now: Timestamp) {
        self.record_by(kind, detail, None, now);
    }

    /// Appends an event someone asked for: `actor`'s reason follows `detail`.
    pub fn record_for(
        &mut self,
        kind: EventKind,
        detail: Option<String>,
        actor: &Actor,
        now: Timestamp,
    ) {
        let detail = match (detail, &actor.reason) {
            (Some(d), Some(r)) => Some(format!("{d}: {r}")),
            (d, r) => d.or_else(|| r.clone()),
        };
        self.record_by(kind, detail, actor.initiated_by.clone(), now);
    }

    fn record_by(
        &mut self,
        kind: EventKind,
        detail: Option<String>,
        initiated_by: Option<InitiatedBy>,
        now: Timestamp,
    ) {
        self.events.push(TimelineEvent {
            id: EventId::generate(),
            kind,
            created_at: now,
            detail,
            initiated_by,
        });
        self.updated_at = now;
    }

    /// The attempt that has started and not ended: a continuation finishes it before any new
    /// attempt starts.
    pub fn open_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.finished_at.is_none())
    }

    pub fn open_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut().filter(|a| a.finished_at.is_none())
    }

    /// The end of the retry window: `retry_policy.window_hours` after `charge_at` (or creation).
    pub fn window_end(&self) -> Timestamp {
        self.charge_at
            .unwrap_or(self.created_at)
            .plus(Duration::from_secs(
                u64::from(self.retry_policy.window_hours) * 3600,
            ))
    }

    /// How often the payment was resumed (or retried now) by a caller.
    pub fn resumes(&self) -> usize {
        self.count(EventKind::Resumed)
    }

    /// How often the payment fell back to another saved card.
    pub fn card_switches(&self) -> usize {
        self.count(EventKind::PaymentMethodSwitched)
    }

    fn count(&self, kind: EventKind) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_payment_is_pending_with_its_created_event_and_round_trips() {
        let now = Timestamp::from_unix_ms(1_800_000_000_000);
        let req: super::super::CreatePaymentRequest = serde_json::from_value(serde_json::json!({
            "customer": "cus_1", "amount": {"value": 2000, "currency": "eur"}, "purpose": "repeat_purchase",
            "initiated_by": {"type": "service", "id": "shop"}, "metadata": {"order": "42"}
        }))
        .unwrap();
        let p = Payment::create(PaymentId::generate(), req.validate(now).unwrap(), now);
        assert_eq!(p.status, Status::Pending);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].kind, EventKind::Created);
        assert_eq!(p.next_attempt_at, Some(now));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["events"][0]["type"], "off_session_payment.created");
        assert_eq!(json["created_at"], "2027-01-15T08:00:00Z");
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
        assert_eq!(
            p.window_end(),
            now.plus(Duration::from_secs(14 * 24 * 3600))
        );
    }

    #[test]
    fn event_type_names_are_their_serialized_names() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("off_session_payment.charged"), None);
    }
}
