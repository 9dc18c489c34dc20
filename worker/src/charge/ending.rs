//! How an attempt ended, in Flint's terms, before anything is written: the processor's answer,
//! or what reading the PaymentIntent settled, or why nothing was sent.

use flint_shared::payment::decline::DeclineClass;
use flint_shared::payment::network::Block;
use flint_shared::payment::record::{AttemptOutcome, Unanswered};
use flint_shared::processor::{Decline, Intent, IntentStatus, ProcessorError};
use flint_shared::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded(Intent),
    Soft(Decline),
    Hard(Decline),
    /// A hard decline, and the payment allows another saved card: this one is next.
    HardSwitch(Decline, String),
    /// The customer must come back: authentication, an expired card, no card at all.
    NeedsCustomer(String, Option<Decline>),
    /// The processor refused the request itself (a bug or bad data).
    Rejected(String),
    /// No definite answer: the same attempt is asked again later.
    Unanswered(Unanswered, String),
    /// The attempt cannot end before this time without sending its own request: an earlier
    /// try's request may still reach the processor until then.
    NotYet(Timestamp, String),
    /// A card-network rule forbids charging this card now; nothing was sent.
    Blocked(Block),
    /// A cancel was requested, and this attempt is known to have made no charge.
    CanceledBeforeCharge,
}

impl Ending {
    /// A decline, classified.
    pub fn of_decline(d: Decline) -> Ending {
        match d.class() {
            DeclineClass::Soft => Ending::Soft(d),
            DeclineClass::Hard => Ending::Hard(d),
            DeclineClass::NeedsCustomer => Ending::NeedsCustomer(d.message.clone(), Some(d)),
        }
    }

    /// What an intent's state says about the request that returned it.
    pub fn of_intent(intent: Intent) -> Ending {
        match intent.status {
            IntentStatus::Succeeded => Ending::Succeeded(intent),
            IntentStatus::RequiresAction => {
                Ending::NeedsCustomer("authentication required".into(), None)
            }
            IntentStatus::RequiresPaymentMethod => match intent.last_error {
                Some(d) => Ending::of_decline(d),
                None => Ending::Unanswered(
                    Unanswered::UnknownOutcome,
                    "intent awaits a payment method".into(),
                ),
            },
            IntentStatus::RequiresConfirmation
            | IntentStatus::Processing
            | IntentStatus::RequiresCapture
            | IntentStatus::Canceled
            | IntentStatus::Other(_) => Ending::Unanswered(
                Unanswered::UnknownOutcome,
                format!("intent in status {:?}", intent.status),
            ),
        }
    }

    /// What a processor error means for the attempt.
    pub fn of_error(e: ProcessorError) -> Ending {
        match e {
            ProcessorError::Transient { reason, .. } => {
                Ending::Unanswered(Unanswered::UnknownOutcome, reason)
            }
            ProcessorError::Declined(d) => Ending::of_decline(*d),
            ProcessorError::NeedsCustomer(d) => Ending::NeedsCustomer(d.message.clone(), Some(*d)),
            ProcessorError::Rejected {
                status,
                code,
                message,
                ..
            } => Ending::Rejected(format!("{status} {code}: {message}")),
            ProcessorError::Misconfigured { status, message } => Ending::Unanswered(
                Unanswered::ProcessorMisconfigured,
                format!("{status}: {message}"),
            ),
        }
    }

    pub fn decline(&self) -> Option<&Decline> {
        match self {
            Ending::Soft(d) | Ending::Hard(d) | Ending::HardSwitch(d, _) => Some(d),
            Ending::NeedsCustomer(_, d) => d.as_ref(),
            Ending::Succeeded(_)
            | Ending::Rejected(_)
            | Ending::Unanswered(..)
            | Ending::NotYet(..)
            | Ending::Blocked(_)
            | Ending::CanceledBeforeCharge => None,
        }
    }

    /// The attempt's recorded outcome; `None` while it has no definite answer.
    pub fn outcome(&self) -> Option<AttemptOutcome> {
        match self {
            Ending::Succeeded(_) => Some(AttemptOutcome::Succeeded),
            Ending::Soft(_) => Some(AttemptOutcome::SoftDecline),
            Ending::Hard(_) | Ending::HardSwitch(..) => Some(AttemptOutcome::HardDecline),
            Ending::NeedsCustomer(..) => Some(AttemptOutcome::NeedsCustomer),
            Ending::Rejected(_) => Some(AttemptOutcome::Rejected),
            Ending::Blocked(_) => Some(AttemptOutcome::BlockedByNetworkRule),
            Ending::CanceledBeforeCharge => Some(AttemptOutcome::Canceled),
            Ending::Unanswered(..) | Ending::NotYet(..) => None,
        }
    }

    /// Labels of `flint_charge_attempts_total`: the outcome and the decline class.
    pub fn labels(&self) -> (&'static str, &'static str) {
        let class = self.decline().map_or(NO_DECLINE, |d| match self {
            Ending::Hard(_) | Ending::HardSwitch(..) => DeclineClass::Hard.as_str(),
            Ending::NeedsCustomer(..) => DeclineClass::NeedsCustomer.as_str(),
            _ => d.class().as_str(),
        });
        let outcome = match self {
            Ending::Unanswered(Unanswered::UnknownOutcome, _) => UNKNOWN,
            Ending::Unanswered(Unanswered::ProcessorMisconfigured, _) => MISCONFIGURED,
            Ending::NotYet(..) => UNKNOWN,
            other => other.outcome().map_or(UNKNOWN, AttemptOutcome::as_str),
        };
        (outcome, class)
    }

    /// Every (outcome, decline class) pair [`Ending::labels`] gives for a usual ending.
    pub fn label_sets() -> Vec<(&'static str, &'static str)> {
        AttemptOutcome::ALL
            .into_iter()
            .map(|outcome| {
                let class = match outcome {
                    AttemptOutcome::SoftDecline => DeclineClass::Soft.as_str(),
                    AttemptOutcome::HardDecline => DeclineClass::Hard.as_str(),
                    AttemptOutcome::NeedsCustomer => DeclineClass::NeedsCustomer.as_str(),
                    AttemptOutcome::Succeeded
                    | AttemptOutcome::Rejected
                    | AttemptOutcome::BlockedByNetworkRule
                    | AttemptOutcome::Canceled => NO_DECLINE,
                };
                (outcome.as_str(), class)
            })
            .chain([(UNKNOWN, NO_DECLINE), (MISCONFIGURED, NO_DECLINE)])
            .collect()
    }
}

/// The `outcome` label of an attempt with no definite answer yet.
const UNKNOWN: &str = "unknown";
/// The `outcome` label of an attempt the processor refused the tenant's key for.
const MISCONFIGURED: &str = "misconfigured";
/// The `decline_class` label of an attempt that was not declined.
const NO_DECLINE: &str = "none";
