//! The sandbox's stored objects and their wire form.
//!
//! Objects are stored as plain structs and rendered with `to_json`, which writes every field a
//! client reads, including Stripe's `null`s, in Stripe's shape.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cards::TestCard;

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub phone: Option<String>,
    pub metadata: Metadata,
    pub default_payment_method: Option<String>,
    pub deleted: bool,
}

impl Customer {
    pub fn to_json(&self) -> Value {
        if self.deleted {
            return json!({"id": self.id, "object": "customer", "deleted": true});
        }
        json!({
            "id": self.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": self.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": self.description,
            "email": self.email,
            "invoice_prefix": self.id.trim_start_matches("cus_").chars().take(8).collect::<String>().to_uppercase(),
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": self.default_payment_method,
                "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": self.name,
            "phone": self.phone,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null
        })
    }
}

#[derive(Debug, Clone)]
pub struct PaymentMethod {
    pub id: String,
    pub created: i64,
    pub card: &'static TestCard,
    pub exp_month: u32,
    pub exp_year: i32,
    pub customer: Option<String>,
    pub metadata: Metadata,
    pub billing_name: Option<String>,
    pub billing_email: Option<String>,
    pub billing_phone: Option<String>,
}

impl PaymentMethod {
    pub fn card_json(&self) -> Value {
        let [cvc, postal, line1] = self.card.checks;
        json!({
            "brand": self.card.brand,
            "checks": {"address_line1_check": line1, "address_postal_code_check": postal, "cvc_check": cvc},
            "country": "US",
            "display_brand": self.card.brand,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "fingerprint": self.card.fingerprint(),
            "funding": self.card.funding,
            "generated_from": null,
            "last4": self.card.last4,
            "networks": {"available": [self.card.brand], "preferred": null},
            "three_d_secure_usage": {"supported": true},
            "wallet": null
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
                "email": self.billing_email,
                "name": self.billing_name,
                "phone": self.billing_phone
            },
            "card": self.card_json(),
            "created": self.created,
            "customer": self.customer,
            "livemode": false,
            "metadata": self.metadata,
            "type": "card"
        })
    }
}

/// A PaymentIntent's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresCapture => "requires_capture",
            IntentStatus::Canceled => "canceled",
            IntentStatus::Succeeded => "succeeded",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentIntent {
    pub id: String,
    pub created: i64,
    pub amount: i64,
    pub currency: &'static str,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    pub status: IntentStatus,
    pub latest_charge: Option<String>,
    pub last_payment_error: Option<Value>,
    pub next_action: Option<Value>,
    pub cancellation_reason: Option<String>,
    pub canceled_at: Option<i64>,
    pub capture_method: String,
    pub confirmation_method: String,
    pub client_secret: String,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub statement_descriptor_suffix: Option<String>,
    pub setup_future_usage: Option<String>,
    pub receipt_email: Option<String>,
}

impl PaymentIntent {
    pub fn to_json(&self) -> Value {
        let received = if self.status == IntentStatus::Succeeded {
            self.amount
        } else {
            0
        };
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": received,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": null,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": self.confirmation_method,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "invoice": null,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": self.next_action,
            "on_behalf_of": null,
            "payment_method": self.payment_method,
            "payment_method_options": {"card": {"installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": self.receipt_email,
            "review": null,
            "setup_future_usage": self.setup_future_usage,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": self.statement_descriptor_suffix,
            "status": self.status.as_str(),
            "transfer_data": null,
            "transfer_group": null
        })
    }
}

/// How a charge ended, for `charge.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    Authorized,
    IssuerDeclined,
    Blocked,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: String,
    pub created: i64,
    pub amount: i64,
    pub currency: &'static str,
    pub customer: Option<String>,
    pub payment_intent: String,
    pub payment_method: String,
    pub card_json: Value,
    pub outcome: ChargeOutcome,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub decline_code: Option<String>,
    pub risk_level: &'static str,
    pub description: Option<String>,
    pub metadata: Metadata,
}

impl Charge {
    pub fn to_json(&self) -> Value {
        let succeeded = self.outcome == ChargeOutcome::Authorized;
        let (network_status, outcome_type, seller_message) = match self.outcome {
            ChargeOutcome::Authorized => ("approved_by_network", "authorized", "Payment complete."),
            ChargeOutcome::IssuerDeclined => (
                "declined_by_network",
                "issuer_declined",
                "The bank did not return any further details with this decline.",
            ),
            ChargeOutcome::Blocked => (
                "not_sent_to_network",
                "blocked",
                "Stripe blocked this payment as too risky.",
            ),
        };
        json!({
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": if succeeded { self.amount } else { 0 },
            "amount_refunded": 0,
            "captured": succeeded,
            "created": self.created,
            "currency": self.currency,
            "customer": self.customer,
            "description": self.description,
            "disputed": false,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "livemode": false,
            "metadata": self.metadata,
            "outcome": {
                "network_status": network_status,
                "reason": if self.outcome == ChargeOutcome::Blocked { Some("highest_risk_level") } else { self.decline_code.as_deref() },
                "risk_level": self.risk_level,
                "seller_message": seller_message,
                "type": outcome_type
            },
            "paid": succeeded,
            "payment_intent": self.payment_intent,
            "payment_method": self.payment_method,
            "payment_method_details": {"card": self.card_json, "type": "card"},
            "refunded": false,
            "status": if succeeded { "succeeded" } else { "failed" }
        })
    }
}

/// A Stripe event (`payment_intent.succeeded`, …), kept for `GET /v1/events/{id}` and webhooks.
///
/// Stored already rendered: an event is written once and read rarely, and a rendered string
/// takes a fraction of the memory of a `serde_json::Value` tree.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: &'static str,
    pub body: std::sync::Arc<str>,
}

/// An event as a request makes it: rendered into an [`Event`] after the account's lock is
/// released, so that serialising it does not hold up the account's other requests.
#[derive(Debug)]
pub struct PendingEvent {
    pub id: String,
    pub created: i64,
    pub kind: &'static str,
    pub object: Value,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub api_version: String,
}

impl PendingEvent {
    pub fn render(self) -> Event {
        let body = json!({
            "id": self.id,
            "object": "event",
            "api_version": self.api_version,
            "created": self.created,
            "data": {"object": self.object},
            "livemode": false,
            "pending_webhooks": 0,
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": self.kind
        })
        .to_string();
        Event {
            id: self.id,
            kind: self.kind,
            body: body.into(),
        }
    }
}
