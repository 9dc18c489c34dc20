//! The payment processor, seen from a worker: a trait so other processors can be added, and a
//! thin Stripe client (`stripe`) for the part of Stripe's API Flint uses.
//!
//! Every failure is a [`ProcessorError`] that says what to do next — the charge pipeline's
//! decision is one exhaustive `match` over it:
//! - [`ProcessorError::Transient`]: retry the same request with the same idempotency key; when
//!   `outcome_unknown`, the request may have taken effect, so read the PaymentIntent before
//!   anything new is tried;
//! - [`ProcessorError::Declined`]: the card said no, with Stripe's codes (a business outcome);
//! - [`ProcessorError::NeedsCustomer`]: authentication required or the card expired;
//! - [`ProcessorError::Rejected`]: the request itself is wrong (a bug or bad data: do not retry);
//! - [`ProcessorError::Misconfigured`]: the key is wrong or lacks permission (alert).

pub mod limit;
pub mod stripe;

use std::collections::BTreeMap;
use std::future::Future;

use crate::codes::string_codes;
use crate::ids::PaymentId;
use crate::metadata::Metadata;
use crate::payment::Purpose;
use crate::payment::request::{Context, InitiatedBy};
use crate::time::Timestamp;

pub use crate::payment::decline::Decline;

string_codes! {
    /// A card's brand, as the processor names it.
    CardBrand {
        Visa => "visa",
        Mastercard => "mastercard",
        Amex => "amex",
        Discover => "discover",
    }
}

/// A PaymentIntent's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    Other(String),
}

impl IntentStatus {
    pub fn parse(s: &str) -> IntentStatus {
        match s {
            "requires_payment_method" => IntentStatus::RequiresPaymentMethod,
            "requires_confirmation" => IntentStatus::RequiresConfirmation,
            "requires_action" => IntentStatus::RequiresAction,
            "processing" => IntentStatus::Processing,
            "requires_capture" => IntentStatus::RequiresCapture,
            "canceled" => IntentStatus::Canceled,
            "succeeded" => IntentStatus::Succeeded,
            other => IntentStatus::Other(other.to_owned()),
        }
    }
}

/// The fields of a PaymentIntent Flint reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: String,
    pub status: IntentStatus,
    pub amount_minor: i64,
    pub payment_method: Option<String>,
    pub latest_charge: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The last failed attempt's error, when there is one.
    pub last_error: Option<Decline>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    #[error("processor temporarily failed ({reason}); outcome unknown: {outcome_unknown}")]
    Transient {
        reason: String,
        outcome_unknown: bool,
        request_id: Option<String>,
    },
    #[error("declined: {}", .0.summary())]
    Declined(Box<Decline>),
    #[error("needs the customer: {}", .0.code)]
    NeedsCustomer(Box<Decline>),
    #[error("request rejected ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        param: Option<String>,
        request_id: Option<String>,
    },
    #[error("processor misconfigured ({status}): {message}")]
    Misconfigured { status: u16, message: String },
}

/// A saved card, as the network rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    pub brand: CardBrand,
    /// The processor's stable fingerprint of the card number.
    pub fingerprint: String,
}

/// A card saved on a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCard {
    /// The payment method id (`pm_…`).
    pub id: String,
    pub card: CardInfo,
}

/// What to charge, for creating the payment's one PaymentIntent: the payment as Flint knows it.
/// How it is put on the wire (Stripe's metadata keys, for one) is the processor client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRequest {
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub currency: String,
    pub customer: String,
    pub description: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub purpose: Purpose,
    pub initiated_by: InitiatedBy,
    pub context: Context,
    /// The caller's metadata.
    pub metadata: Metadata,
    /// Confirm off-session with this payment method in the same request (one round trip and
    /// one rate-limit turn fewer than create, then confirm).
    pub confirm_with: Option<String>,
}

/// A payment processor. Idempotency keys are the caller's: the same key must give the same
/// effect however often a request is retried. A charging request is never sent after the
/// `send_until` its caller gives: a worker that stalls and wakes up late cannot charge behind
/// the back of the worker that took its attempt over.
pub trait Processor: Send + Sync {
    /// The customer's default payment method at this moment.
    fn default_payment_method(
        &self,
        customer: &str,
    ) -> impl Future<Output = Result<Option<String>, ProcessorError>> + Send;

    /// Creates the payment's PaymentIntent, confirmed off-session at once when the request
    /// says `confirm_with`. A decline is an error carrying the intent's id. Nothing is sent
    /// after `send_until` (a transient error then says whether an earlier try went out).
    fn create_intent(
        &self,
        request: &IntentRequest,
        idempotency_key: &str,
        send_until: Timestamp,
    ) -> impl Future<Output = Result<Intent, ProcessorError>> + Send;

    /// Confirms it off-session with `payment_method`; nothing is sent after `send_until`.
    fn confirm_intent(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
        send_until: Timestamp,
    ) -> impl Future<Output = Result<Intent, ProcessorError>> + Send;

    /// The cards saved on the customer, newest first.
    fn saved_cards(
        &self,
        customer: &str,
    ) -> impl Future<Output = Result<Vec<SavedCard>, ProcessorError>> + Send;

    /// The card behind a saved payment method.
    fn card(
        &self,
        payment_method: &str,
    ) -> impl Future<Output = Result<CardInfo, ProcessorError>> + Send;

    fn retrieve_intent(
        &self,
        intent_id: &str,
    ) -> impl Future<Output = Result<Intent, ProcessorError>> + Send;

    /// The customer's PaymentIntent whose `metadata[flint_payment_id]` is `payment_id`, for
    /// reconciling a create whose answer was lost. Only intents created from `created_since`
    /// on are looked at (the payment's creation, less a margin for clocks).
    fn find_intent(
        &self,
        customer: &str,
        payment_id: &str,
        created_since: Timestamp,
    ) -> impl Future<Output = Result<Option<Intent>, ProcessorError>> + Send;
}
