//! The charge pipeline's decisions, as pure functions of the payment as read, the attempt's
//! result, the policy and the time (no I/O, so every case is a row of a table test):
//! - [`start`]: what a job does when it starts;
//! - [`decide`]: what an attempt's result means for the payment;
//! - [`outcome_of_record`]: what a job must report when the payment was moved by someone else
//!   (its compare-and-set lost): always derived from the record as re-read, never assumed.
//!
//! How a decision changes the record is [`super::apply`].

use std::time::Duration;

use flint_shared::payment::network::Block;
use flint_shared::payment::record::{AttentionReason, Unanswered, Unresolved};
use flint_shared::payment::request::RetryStrategy;
use flint_shared::payment::{Payment, Status};
use flint_shared::time::Timestamp;

use super::ending::Ending;

/// The rules a worker decides by (from `[worker]`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Waits before retry 1, 2, 3, … after a soft decline (the last repeats).
    pub retry_delays: Vec<Duration>,
    /// How long an attempt's outcome may stay unknown before the payment requires attention.
    pub unknown_outcome_limit: Duration,
    /// How long the processor may refuse the tenant's key before the payment requires attention.
    pub misconfigured_limit: Duration,
    /// How long a paused payment waits for the customer.
    pub paused_expiry: Duration,
    /// Lost leases in a row after which an attempt requires attention.
    pub max_lost_leases: u32,
    /// How long an attempt may send its charging requests after its card is recorded (its
    /// requests and their retries fit in it; a late worker sends nothing after it).
    pub send_window: Duration,
    /// How long after its last send a request can still take effect at the processor (the
    /// client's timeout, and a margin).
    pub request_lifetime: Duration,
}

/// A job that finds its payment `processing` re-reads it after this long: another worker is
/// (or was) in the attempt, and its outcome may never reach the queue.
pub const PROCESSING_RECHECK: Duration = Duration::from_secs(10);

/// When a job runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Never: the job is done.
    Done,
    At(Timestamp),
}

/// What a job does when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing: the payment is final, waits for an operator, or is gone.
    Done,
    /// Not yet: a pending payment not due, or a paused one until it expires.
    Wait(Timestamp),
    /// A paused payment nobody resumed in time: it fails.
    Expire,
    /// A cancel was requested and no attempt is open: canceled.
    Cancel,
    /// The attempt lost its worker too often in a row: an operator must look.
    GiveUp,
    /// Start attempt `n`.
    Begin(u32),
    /// Finish the open attempt `n`, settling what an earlier try of it did before anything
    /// else.
    Continue(u32),
}

/// How much earlier than its due time a job may start an attempt (clocks differ a little).
const EARLY: Duration = Duration::from_secs(1);

/// What a job that found `p` at `now`, after `lost_leases` deliveries in a row lost their
/// lease, does.
pub fn start(p: &Payment, lost_leases: u32, policy: &Policy, now: Timestamp) -> Start {
    match p.status {
        Status::Succeeded | Status::Failed | Status::Canceled | Status::RequiresAttention => {
            Start::Done
        }
        Status::Paused => {
            let expires = paused_until(p, policy);
            if now >= expires {
                Start::Expire
            } else {
                Start::Wait(expires)
            }
        }
        Status::Pending | Status::Processing => {
            if lost_leases >= policy.max_lost_leases {
                return Start::GiveUp;
            }
            match p.open_attempt() {
                Some(a) => Start::Continue(a.number),
                None if p.cancel_requested => Start::Cancel,
                None => match p.next_attempt_at {
                    Some(due) if p.status == Status::Pending && due > now.plus(EARLY) => {
                        Start::Wait(due)
                    }
                    _ => Start::Begin(next_number(p)),
                },
            }
        }
    }
}

fn next_number(p: &Payment) -> u32 {
    u32::try_from(p.attempts.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// When a paused payment fails unless resumed.
pub fn paused_until(p: &Payment, policy: &Policy) -> Timestamp {
    p.expires_at
        .unwrap_or_else(|| p.updated_at.plus(policy.paused_expiry))
}

/// What an attempt left for the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Succeed,
    /// The next attempt, at this time (a soft decline, or a card rule's wait).
    Retry(Timestamp),
    /// The next attempt, at once, on this other saved card.
    Switch(String),
    /// No further attempt; why.
    Fail(String),
    /// The customer must come back: why, and until when the payment waits.
    Pause(String, Timestamp),
    Cancel,
    /// The same attempt is asked again at this time (its outcome is not known yet).
    AskAgain(Timestamp, Unresolved),
    /// Flint stops trying on its own.
    Attention(AttentionReason, String),
}

/// What an attempt's result is, as [`decide`] and [`super::apply`] need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub ending: Ending,
    /// The card charged (or that would have been).
    pub method: Option<String>,
    pub intent_id: Option<String>,
    /// The block this attempt's decline put on the card (or a stronger one it already had).
    pub card_block: Option<Block>,
}

/// What attempt `number`'s result means for `p` at `now`.
pub fn decide(
    p: &Payment,
    number: u32,
    attempted: &Attempted,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let not_before = match &attempted.card_block {
        Some(Block::Until { at, .. }) => Some(*at),
        Some(Block::Never { .. }) | None => None,
    };
    match &attempted.ending {
        Ending::Succeeded(_) => Decision::Succeed,
        Ending::Soft(_) => retry_or_fail(
            p,
            number,
            not_before,
            policy,
            now,
            "retries exhausted".into(),
        ),
        Ending::HardSwitch(..) if p.cancel_requested => Decision::Cancel,
        Ending::HardSwitch(_, next) => Decision::Switch(next.clone()),
        Ending::Hard(d) => Decision::Fail(d.summary()),
        Ending::Rejected(reason) => Decision::Fail(reason.clone()),
        Ending::NeedsCustomer(_, _) if p.cancel_requested => Decision::Cancel,
        Ending::NeedsCustomer(reason, d) => Decision::Pause(
            d.as_ref().map_or_else(|| reason.clone(), |d| d.summary()),
            now.plus(policy.paused_expiry),
        ),
        Ending::Blocked(block) => {
            let why = format!("blocked by network rule {}", block.rule());
            match block {
                Block::Never { .. } => Decision::Fail(why),
                Block::Until { at, .. } => retry_or_fail(p, number, Some(*at), policy, now, why),
            }
        }
        Ending::Unanswered(kind, reason) => unanswered(p, *kind, reason, policy, now),
        // Waiting for an earlier try's window, which is fixed and short, needs no other bound.
        Ending::NotYet(quiet_at, reason) => {
            let previous = p.open_attempt().and_then(|a| a.unresolved.as_ref());
            Decision::AskAgain(
                (*quiet_at).max(now.plus(Duration::from_secs(1))),
                Unresolved {
                    kind: Unanswered::UnknownOutcome,
                    since: previous.map_or(now, |u| u.since),
                    tries: previous.map_or(0, |u| u.tries).saturating_add(1),
                    reason: reason.clone(),
                },
            )
        }
        Ending::CanceledBeforeCharge => Decision::Cancel,
    }
}

/// After a failed attempt: the next one when the policy allows it (canceled instead if a
/// cancel was requested), else failed with `why`.
fn retry_or_fail(
    p: &Payment,
    number: u32,
    not_before: Option<Timestamp>,
    policy: &Policy,
    now: Timestamp,
    why: String,
) -> Decision {
    match next_attempt_at(p, number, not_before, policy, now) {
        Some(_) if p.cancel_requested => Decision::Cancel,
        Some(at) => Decision::Retry(at),
        None => Decision::Fail(why),
    }
}

/// When the attempt after `number` may run, if the policy allows one within the window.
fn next_attempt_at(
    p: &Payment,
    number: u32,
    not_before: Option<Timestamp>,
    policy: &Policy,
    now: Timestamp,
) -> Option<Timestamp> {
    let retry = p.retry_policy;
    if retry.strategy == RetryStrategy::None || number >= retry.max_attempts {
        return None;
    }
    let index = usize::try_from(number.saturating_sub(1)).unwrap_or(usize::MAX);
    let delay = policy
        .retry_delays
        .get(index)
        .or(policy.retry_delays.last())
        .copied()
        .unwrap_or(Duration::from_secs(3600));
    let due = now.plus(delay).max(not_before.unwrap_or(Timestamp::EPOCH));
    (due <= p.window_end()).then_some(due)
}

/// An attempt without a definite answer is asked again, backing off, until its bound: the
/// policy's limit for its kind from when it first had no answer, or the end of the payment's
/// retry window, whichever is first (but it is always asked at least once more). Then the
/// payment requires attention: it may have been charged, so it can neither fail nor retry.
fn unanswered(
    p: &Payment,
    kind: Unanswered,
    reason: &str,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let previous = p.open_attempt().and_then(|a| a.unresolved.as_ref());
    let since = previous.map_or(now, |u| u.since);
    let tries = previous.map_or(0, |u| u.tries).saturating_add(1);
    let (limit, first, cap, attention) = match kind {
        Unanswered::UnknownOutcome => (
            policy.unknown_outcome_limit,
            Duration::from_secs(10),
            Duration::from_secs(600),
            AttentionReason::UnknownOutcome,
        ),
        Unanswered::ProcessorMisconfigured => (
            policy.misconfigured_limit,
            Duration::from_secs(60),
            Duration::from_secs(900),
            AttentionReason::ProcessorMisconfigured,
        ),
    };
    let deadline = since.plus(limit).min(p.window_end());
    if tries > 1 && now >= deadline {
        return Decision::Attention(
            attention,
            format!(
                "no definite answer for {} s ({tries} tries): {reason}",
                now.since(since).as_secs()
            ),
        );
    }
    let exponent = tries.saturating_sub(1).min(16);
    let wait = first.saturating_mul(1 << exponent).min(cap);
    Decision::AskAgain(
        now.plus(wait),
        Unresolved {
            kind,
            since,
            tries,
            reason: reason.to_owned(),
        },
    )
}

/// What a job reports for `p` as re-read, when a write of its own lost the race: the job stays
/// alive for as long as the payment needs it.
pub fn outcome_of_record(p: &Payment, policy: &Policy, now: Timestamp) -> Next {
    match p.status {
        Status::Pending => match (p.open_attempt(), p.next_attempt_at) {
            (None, Some(due)) => Next::At(due.max(now)),
            (Some(_), _) | (None, None) => Next::At(now),
        },
        Status::Processing => Next::At(now.plus(PROCESSING_RECHECK)),
        Status::Paused => Next::At(paused_until(p, policy)),
        Status::RequiresAttention | Status::Succeeded | Status::Failed | Status::Canceled => {
            Next::Done
        }
    }
}

#[cfg(test)]
mod tests;
