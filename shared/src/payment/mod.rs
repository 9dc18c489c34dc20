//! The off-session payment: what a caller asks for, what Flint stores, and its states.
//!
//! - [`request`]: the create request as the API receives it, and its validation into a
//!   [`NewPayment`] with errors that name the offending field.
//! - [`record`]: the stored [`Payment`] with its attempts and event timeline.
//! - [`event`]: an event on its own, as `/v1/events` lists it: with its tenant and a snapshot.
//! - [`job`]: the charge job the queue carries for a payment.
//! - [`decline`]: decline codes and advice, and what they mean.
//! - [`network`]: card-network retry rules per card.
//! - [`store`]: payment records in Redis, the create script and compare-and-set transitions.
//!
//! States: `pending` (queued or scheduled) → `processing` → `succeeded` | `failed` |
//! `paused` (needs the customer) | `canceled`, and `requires_attention` when Flint stops
//! trying on its own and an operator must look. Transitions are compare-and-set on the stored
//! record, so a duplicate delivery cannot move a finished payment.

pub mod decline;
pub mod event;
pub mod job;
pub mod network;
pub mod record;
pub mod request;
pub mod store;

use serde::{Deserialize, Serialize};

pub use record::{Attempt, EventKind, Payment, TimelineEvent};
pub use request::{CreatePaymentRequest, NewPayment, ValidationError};

/// Why the platform charges the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Subscription,
    RepeatPurchase,
    BalanceRecovery,
    Support,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Subscription,
        Purpose::RepeatPurchase,
        Purpose::BalanceRecovery,
        Purpose::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Subscription => "subscription",
            Purpose::RepeatPurchase => "repeat_purchase",
            Purpose::BalanceRecovery => "balance_recovery",
            Purpose::Support => "support",
        }
    }
}

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, or scheduled for `next_attempt_at`.
    Pending,
    /// An attempt is under way.
    Processing,
    Succeeded,
    /// Will not be charged: hard decline or retries exhausted.
    Failed,
    /// Needs the customer (authentication, expired card, no usable method); resumable.
    Paused,
    Canceled,
    /// Flint stopped trying on its own (an outcome that stayed unknown, a processor that kept
    /// refusing Flint's key, an attempt that kept crashing its worker); resumable once the
    /// cause is fixed.
    RequiresAttention,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Processing,
        Status::Succeeded,
        Status::Failed,
        Status::Paused,
        Status::Canceled,
        Status::RequiresAttention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Paused => "paused",
            Status::Canceled => "canceled",
            Status::RequiresAttention => "requires_attention",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// No transition leaves a finished payment.
    pub fn is_final(self) -> bool {
        match self {
            Status::Succeeded | Status::Failed | Status::Canceled => true,
            Status::Pending | Status::Processing | Status::Paused | Status::RequiresAttention => {
                false
            }
        }
    }

    /// Whether a payment in this status must have a live charge job: its way forward.
    /// (A `requires_attention` payment's way forward is an operator; a final one has none.)
    pub fn needs_job(self) -> bool {
        match self {
            Status::Pending | Status::Processing | Status::Paused => true,
            Status::Succeeded | Status::Failed | Status::Canceled | Status::RequiresAttention => {
                false
            }
        }
    }
}
