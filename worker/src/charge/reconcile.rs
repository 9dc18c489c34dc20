//! Settling an attempt from the processor's records: what a PaymentIntent read after a lost
//! answer, or at the start of a continued attempt, says this attempt did.
//!
//! A PaymentIntent succeeds at most once and records its latest charge. So an attempt happened
//! when the intent succeeded, or when its latest charge is not the charge of the payment's
//! previous attempt; it did not happen when the intent is unconfirmed and has no new charge;
//! anything else (in flight, an unexpected state) is asked again later.

use flint_shared::processor::{Intent, IntentStatus};

use super::ending::Ending;

/// What an intent read says about the attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// A definite ending, and the intent's id.
    Ended(Box<Ending>, String),
    /// No charge since `previous_charge` and nothing in flight: the attempt did not happen.
    Unconfirmed(String),
    /// In flight or unclear: ask again later.
    Unknown(String),
}

/// Settles from `intent`; `previous_charge` is the charge of the payment's last attempt before
/// this one that made one.
pub fn settled(intent: Intent, previous_charge: Option<&String>) -> Settled {
    let id = intent.id.clone();
    if intent.status == IntentStatus::Succeeded {
        return Settled::Ended(Box::new(Ending::Succeeded(intent)), id);
    }
    if intent.latest_charge.is_some() && intent.latest_charge.as_ref() != previous_charge {
        let charge = intent.latest_charge.clone();
        let mut ending = Ending::of_intent(intent);
        if let Ending::Soft(d) | Ending::Hard(d) | Ending::NeedsCustomer(_, Some(d)) = &mut ending {
            d.charge = charge;
        }
        return match ending {
            Ending::Unanswered(_, reason) => Settled::Unknown(reason),
            ending => Settled::Ended(Box::new(ending), id),
        };
    }
    match intent.status {
        IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation => {
            Settled::Unconfirmed(id)
        }
        IntentStatus::RequiresAction
        | IntentStatus::Processing
        | IntentStatus::RequiresCapture
        | IntentStatus::Canceled
        | IntentStatus::Succeeded
        | IntentStatus::Other(_) => {
            Settled::Unknown(format!("intent in status {:?}", intent.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use flint_shared::payment::decline::DeclineCode;
    use flint_shared::processor::Decline;

    use super::*;

    fn intent(status: IntentStatus, latest_charge: Option<&str>, declined: bool) -> Intent {
        Intent {
            id: "pi_1".into(),
            status,
            amount_minor: 2500,
            payment_method: Some("pm_1".into()),
            latest_charge: latest_charge.map(str::to_owned),
            metadata: std::collections::BTreeMap::new(),
            last_error: declined.then(|| Decline {
                code: DeclineCode::CardDeclined,
                decline_code: Some(DeclineCode::InsufficientFunds),
                advice_code: None,
                network_advice_code: None,
                message: "Your card has insufficient funds.".into(),
                charge: None,
                intent_id: Some("pi_1".into()),
                request_id: None,
            }),
        }
    }

    #[test]
    fn a_lost_answer_is_settled_only_by_evidence_of_this_attempt() {
        let before = Some("ch_previous".to_owned());
        // Succeeded: the attempt charged, whatever the charges say.
        let s = settled(
            intent(IntentStatus::Succeeded, Some("ch_new"), false),
            before.as_ref(),
        );
        assert!(matches!(s, Settled::Ended(e, _) if matches!(*e, Ending::Succeeded(_))));
        // A new declined charge: this attempt's decline, with its charge.
        let s = settled(
            intent(IntentStatus::RequiresPaymentMethod, Some("ch_new"), true),
            before.as_ref(),
        );
        match s {
            Settled::Ended(e, pi) => {
                assert_eq!(pi, "pi_1");
                match *e {
                    Ending::Soft(d) => assert_eq!(d.charge.as_deref(), Some("ch_new")),
                    other => panic!("expected a soft decline, got {other:?}"),
                }
            }
            other => panic!("expected an ending, got {other:?}"),
        }
        // Only the previous attempt's charge: this attempt did not happen.
        let s = settled(
            intent(
                IntentStatus::RequiresPaymentMethod,
                Some("ch_previous"),
                true,
            ),
            before.as_ref(),
        );
        assert_eq!(s, Settled::Unconfirmed("pi_1".into()));
        // Created, never confirmed.
        let s = settled(
            intent(IntentStatus::RequiresPaymentMethod, None, false),
            None,
        );
        assert_eq!(s, Settled::Unconfirmed("pi_1".into()));
        // Still in flight: nothing can be concluded.
        let s = settled(intent(IntentStatus::Processing, None, false), None);
        assert!(matches!(s, Settled::Unknown(_)));
    }
}
