//! When a failed delivery is tried again: exponential backoff with full jitter, bounded in
//! total time. Pure, so the schedule is a table test.
//!
//! The job carries when its delivery began (`since`) rather than a try count (the queue re-adds
//! a retried job with its payload unchanged), so the bound doubles with the time spent: each
//! wait is drawn uniformly from zero to `max(first, spent)`, capped at `max`; a wait is never
//! shorter than `floor`, and the last try is placed at the deadline itself.

use std::time::Duration;

use flint_shared::time::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    /// How long a delivery is retried in all.
    pub retry_for: Duration,
}

/// The shortest wait between two tries.
const FLOOR: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(Timestamp),
    GiveUp,
}

/// After a failed try at `now` of a delivery that began at `since`: when to try again, given a
/// uniform draw in `[0, 1)`.
pub fn next(policy: &RetryPolicy, since: Timestamp, now: Timestamp, draw: f64) -> Next {
    let spent = Duration::from_millis(u64::try_from(now.unix_ms() - since.unix_ms()).unwrap_or(0));
    if spent >= policy.retry_for {
        return Next::GiveUp;
    }
    let bound = spent.max(policy.first).min(policy.max);
    let wait = bound.mul_f64(draw.clamp(0.0, 1.0)).max(FLOOR);
    let deadline = since.plus(policy.retry_for);
    Next::RetryAt(now.plus(wait).min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        first: Duration::from_secs(5),
        max: Duration::from_secs(3600),
        retry_for: Duration::from_secs(3 * 86_400),
    };

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_ms(1_800_000_000_000).plus(Duration::from_secs(secs))
    }

    #[test]
    fn the_schedule() {
        let since = at(0);
        let cases: &[(u64, f64, Next)] = &[
            // The first retry: up to `first`.
            (
                0,
                0.5,
                Next::RetryAt(at(0).plus(Duration::from_millis(2500))),
            ),
            (
                0,
                0.999_999,
                Next::RetryAt(at(0).plus(Duration::from_millis(4999))),
            ),
            // Full jitter may draw zero: the floor keeps it from a hot loop.
            (0, 0.0, Next::RetryAt(at(0).plus(FLOOR))),
            // The bound grows with the time spent…
            (60, 1.0, Next::RetryAt(at(120))),
            (600, 0.5, Next::RetryAt(at(900))),
            // …up to `max`.
            (86_400, 1.0, Next::RetryAt(at(86_400 + 3600))),
            // The last try is at the deadline; after it, give up.
            (3 * 86_400 - 60, 1.0, Next::RetryAt(at(3 * 86_400))),
            (3 * 86_400, 0.5, Next::GiveUp),
            (4 * 86_400, 0.5, Next::GiveUp),
        ];
        for (spent, draw, want) in cases {
            assert_eq!(
                next(&POLICY, since, at(*spent), *draw),
                *want,
                "{spent} s, draw {draw}"
            );
        }
    }

    #[test]
    fn a_clock_behind_the_start_waits_as_a_first_retry() {
        let got = next(&POLICY, at(10), at(0), 1.0);
        assert_eq!(got, Next::RetryAt(at(5)));
    }
}
