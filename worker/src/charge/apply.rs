//! How a decision changes the payment record: its status, the attempt's result, the timeline,
//! and when the job runs next. Pure, like the decisions ([`super::decide`]); the pipeline
//! writes the result with one compare-and-set.

use flint_shared::payment::record::{Attempt, Attention, AttentionReason};
use flint_shared::payment::{EventKind, Payment, Status};
use flint_shared::time::Timestamp;

use super::decide::{Attempted, Decision, Next, Policy, Start};
use super::ending::Ending;

/// The payment after a job's start decision, and the job's next run; `None` when the start
/// writes nothing (a wait, a continuation of a `processing` attempt, nothing to do).
///
/// `default_method` is the customer's default card, when the job looked it up before the start
/// (a payment without a card of its own): a new attempt then records it, with its send window,
/// in this same write.
pub fn apply_start(
    p: &mut Payment,
    start: Start,
    default_method: Option<String>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Next> {
    match start {
        Start::Done | Start::Wait(_) => None,
        Start::Continue(_) if p.status == Status::Processing => None,
        Start::Continue(number) => {
            // Resumed after requiring attention: the open attempt goes on.
            p.status = Status::Processing;
            p.next_attempt_at = None;
            p.updated_at = now;
            tracing::debug!(payment_id = %p.id, attempt = number, "continuing the open attempt");
            Some(Next::At(now))
        }
        Start::Expire => {
            let why = format!(
                "not resumed within {} of pausing",
                spoken(policy.paused_expiry)
            );
            p.status = Status::Failed;
            p.expires_at = None;
            p.last_error = Some(why.clone());
            p.record(EventKind::Failed, Some(why), now);
            Some(Next::Done)
        }
        Start::Cancel => {
            p.status = Status::Canceled;
            p.next_attempt_at = None;
            let actor = p.cancel_request.clone().unwrap_or_default();
            p.record_for(
                EventKind::Canceled,
                Some("cancel requested".into()),
                &actor,
                now,
            );
            Some(Next::Done)
        }
        Start::GiveUp => {
            let detail = format!(
                "the attempt stopped its worker {} times in a row (a crash, a kill, or a stall past the lease); see those workers' logs",
                policy.max_lost_leases
            );
            require_attention(p, AttentionReason::WorkerLost, detail, now);
            Some(Next::Done)
        }
        Start::Begin(number) => {
            p.status = Status::Processing;
            p.next_attempt_at = None;
            let method = p.payment_method.clone().or(default_method);
            let mut attempt = Attempt::new(number, method, now);
            // The card is known: it is on record, with a window, before the first charging
            // request. Otherwise the window is empty until the attempt records the card it
            // resolves: a continuation then knows that nothing was sent.
            attempt.send_until = Some(match attempt.payment_method {
                Some(_) => now.plus(policy.send_window),
                None => now,
            });
            p.attempts.push(attempt);
            p.record(
                EventKind::AttemptStarted,
                Some(format!("attempt {number}")),
                now,
            );
            Some(Next::At(now))
        }
    }
}

/// A duration as a person reads it: `30 days`, `6 hours`, `0.3 s`.
fn spoken(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 => format!("{} days", s / 86_400),
        s if s >= 3_600 => format!("{} hours", s / 3_600),
        _ => format!("{} s", d.as_secs_f64()),
    }
}

/// Moves `p` to `requires_attention`; an open attempt stays open (a resume settles it).
pub fn require_attention(p: &mut Payment, reason: AttentionReason, detail: String, now: Timestamp) {
    p.status = Status::RequiresAttention;
    p.next_attempt_at = None;
    p.expires_at = None;
    p.last_error = Some(detail.clone());
    p.attention = Some(Attention {
        reason,
        detail: detail.clone(),
    });
    p.record(
        EventKind::RequiresAttention,
        Some(format!("{}: {detail}", reason.as_str())),
        now,
    );
}

/// The payment after attempt `number`'s result and the decision on it, and the job's next run.
pub fn apply(
    p: &mut Payment,
    number: u32,
    attempted: &Attempted,
    decision: &Decision,
    now: Timestamp,
) -> Next {
    if p.processor_payment_intent.is_none() {
        p.processor_payment_intent.clone_from(&attempted.intent_id);
    }
    record_attempt(p, number, attempted, now);
    let ending = &attempted.ending;
    let detail = ending.decline().map(|d| d.summary());
    // The timeline's account of a failed attempt.
    let failed = match ending {
        Ending::Soft(_) | Ending::Hard(_) | Ending::HardSwitch(..) => detail.clone(),
        Ending::NeedsCustomer(reason, _) => detail.clone().or_else(|| Some(reason.clone())),
        Ending::Rejected(reason) => Some(reason.clone()),
        Ending::Blocked(block) => Some(format!("blocked by network rule {}", block.rule())),
        Ending::Succeeded(_)
        | Ending::Unanswered(..)
        | Ending::NotYet(..)
        | Ending::CanceledBeforeCharge => None,
    };
    if let Some(why) = &failed {
        p.record(EventKind::AttemptFailed, Some(why.clone()), now);
        p.last_error = Some(why.clone());
    }
    match decision {
        Decision::Succeed => {
            p.status = Status::Succeeded;
            p.last_error = None;
            let charge = match ending {
                Ending::Succeeded(intent) => intent.latest_charge.clone(),
                _ => None,
            };
            p.record(EventKind::Succeeded, charge, now);
            Next::Done
        }
        Decision::Retry(at) => {
            p.status = Status::Pending;
            p.next_attempt_at = Some(*at);
            Next::At(*at)
        }
        Decision::Switch(next) => {
            let previous = p
                .attempts
                .iter()
                .find(|a| a.number == number)
                .and_then(|a| a.payment_method.clone());
            p.payment_method = Some(next.clone());
            p.status = Status::Pending;
            p.next_attempt_at = Some(now);
            p.record(
                EventKind::PaymentMethodSwitched,
                Some(format!(
                    "{next} after a hard decline of {}",
                    previous.as_deref().unwrap_or("the previous method")
                )),
                now,
            );
            Next::At(now)
        }
        Decision::Fail(why) => {
            p.status = Status::Failed;
            p.last_error = Some(failed.unwrap_or_else(|| why.clone()));
            p.record(EventKind::Failed, Some(why.clone()), now);
            Next::Done
        }
        Decision::Pause(why, until) => {
            p.status = Status::Paused;
            p.expires_at = Some(*until);
            p.record(EventKind::Paused, Some(why.clone()), now);
            // The job waits to fail the payment if nobody resumes it (a resume runs it now).
            Next::At(*until)
        }
        Decision::Cancel => {
            p.status = Status::Canceled;
            p.next_attempt_at = None;
            let actor = p.cancel_request.clone().unwrap_or_default();
            p.record_for(
                EventKind::Canceled,
                Some("cancel requested during an attempt".into()),
                &actor,
                now,
            );
            Next::Done
        }
        Decision::AskAgain(at, unresolved) => {
            if let Some(a) = p.open_attempt_mut() {
                a.unresolved = Some(unresolved.clone());
            }
            p.updated_at = now;
            Next::At(*at)
        }
        Decision::Attention(reason, detail) => {
            require_attention(p, *reason, detail.clone(), now);
            Next::Done
        }
    }
}

/// Writes a definite result into attempt `number` (an attempt without one stays open).
fn record_attempt(p: &mut Payment, number: u32, attempted: &Attempted, now: Timestamp) {
    let ending = &attempted.ending;
    let Some(outcome) = ending.outcome() else {
        return;
    };
    let Some(a) = p.attempts.iter_mut().find(|a| a.number == number) else {
        return;
    };
    let decline = ending.decline();
    a.finished_at = Some(now);
    a.outcome = Some(outcome);
    if attempted.method.is_some() {
        a.payment_method.clone_from(&attempted.method);
    }
    a.decline_code = decline.map(|d| d.reason().clone());
    a.advice_code = decline.and_then(|d| d.advice_code.clone());
    a.network_advice_code = decline.and_then(|d| d.network_advice_code.clone());
    a.processor_request_id = decline.and_then(|d| d.request_id.clone());
    a.network_rule = match (ending, &attempted.card_block) {
        (Ending::Blocked(block), _) | (_, Some(block)) => Some(block.rule().clone()),
        (_, None) => None,
    };
    // The charge this attempt made, so that a later attempt whose answer is lost can tell its
    // own charge from this one.
    a.charge = match ending {
        Ending::Succeeded(intent) => intent.latest_charge.clone(),
        _ => decline.and_then(|d| d.charge.clone()),
    };
    a.unresolved = None;
}
