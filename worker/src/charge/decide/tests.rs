//! Every decision of the pipeline, one table row per case.

use std::time::Duration;

use flint_shared::ids::PaymentId;
use flint_shared::payment::decline::{Decline, DeclineCode};
use flint_shared::payment::network::{Block, NetworkRule};
use flint_shared::payment::record::{Attempt, AttentionReason, Unanswered, Unresolved};
use flint_shared::payment::request::{CreatePaymentRequest, RetryPolicy, RetryStrategy};
use flint_shared::payment::{EventKind, Payment, Status};
use flint_shared::processor::{Intent, IntentStatus};
use flint_shared::time::Timestamp;

use super::*;
use crate::charge::apply::{apply, apply_start};
use crate::charge::ending::Ending;

const T0: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn policy() -> Policy {
    Policy {
        retry_delays: vec![HOUR, 6 * HOUR],
        unknown_outcome_limit: 24 * HOUR,
        misconfigured_limit: HOUR,
        paused_expiry: 30 * 24 * HOUR,
        max_lost_leases: 5,
        send_window: 5 * MINUTE,
        request_lifetime: MINUTE,
    }
}

/// A payment created at T0 with the default policy (4 attempts in 14 days).
fn payment() -> Payment {
    let req: CreatePaymentRequest = serde_json::from_value(serde_json::json!({
        "customer": "cus_1", "amount": {"value": 2000, "currency": "usd"},
        "purpose": "subscription", "initiated_by": {"type": "service", "id": "billing"}
    }))
    .unwrap();
    Payment::create(PaymentId::generate(), req.validate(T0).unwrap(), T0)
}

/// A payment in attempt `number` (open), the earlier ones soft-declined.
fn in_attempt(number: u32) -> Payment {
    let mut p = payment();
    for n in 1..number {
        let mut a = Attempt::new(n, Some("pm_1".into()), T0);
        a.finished_at = Some(T0);
        p.attempts.push(a);
    }
    p.attempts
        .push(Attempt::new(number, Some("pm_1".into()), T0));
    p.status = Status::Processing;
    p.next_attempt_at = None;
    p
}

fn decline(code: &str, decline_code: Option<&str>) -> Decline {
    Decline {
        code: DeclineCode::parse(code),
        decline_code: decline_code.map(DeclineCode::parse),
        advice_code: None,
        network_advice_code: None,
        message: "declined".into(),
        charge: Some("ch_1".into()),
        intent_id: Some("pi_1".into()),
        request_id: None,
    }
}

fn soft() -> Ending {
    Ending::Soft(decline("card_declined", Some("insufficient_funds")))
}

fn hard() -> Decline {
    decline("card_declined", Some("lost_card"))
}

fn succeeded() -> Ending {
    Ending::Succeeded(Intent {
        id: "pi_1".into(),
        status: IntentStatus::Succeeded,
        amount_minor: 2000,
        payment_method: Some("pm_1".into()),
        latest_charge: Some("ch_ok".into()),
        metadata: Default::default(),
        last_error: None,
    })
}

fn attempted(ending: Ending, card_block: Option<Block>) -> Attempted {
    Attempted {
        ending,
        method: Some("pm_1".into()),
        intent_id: Some("pi_1".into()),
        card_block,
    }
}

fn until(at: Timestamp, rule: NetworkRule) -> Block {
    Block::Until { at, rule }
}

#[test]
fn a_job_starts_by_what_the_record_says() {
    let p = policy();
    let later = T0.plus(HOUR);
    let mut pending_later = payment();
    pending_later.next_attempt_at = Some(later);
    let mut canceled_pending = payment();
    canceled_pending.cancel_requested = true;
    let mut resumed_open = in_attempt(2);
    resumed_open.status = Status::Pending;
    let mut paused = payment();
    paused.status = Status::Paused;
    paused.expires_at = Some(later);
    let mut paused_old = payment();
    paused_old.status = Status::Paused;
    let cases: Vec<(&str, Payment, u32, Timestamp, Start)> = vec![
        ("due", payment(), 0, T0, Start::Begin(1)),
        (
            "due a moment early",
            pending_later.clone(),
            0,
            later.minus(Duration::from_millis(500)),
            Start::Begin(1),
        ),
        ("not due", pending_later, 0, T0, Start::Wait(later)),
        ("cancel requested", canceled_pending, 0, T0, Start::Cancel),
        ("continuation", in_attempt(3), 0, T0, Start::Continue(3)),
        (
            "resumed with an open attempt",
            resumed_open,
            0,
            T0,
            Start::Continue(2),
        ),
        ("worker lost too often", in_attempt(1), 5, T0, Start::GiveUp),
        (
            "worker lost before the limit",
            in_attempt(1),
            4,
            T0,
            Start::Continue(1),
        ),
        ("paused", paused.clone(), 0, T0, Start::Wait(later)),
        ("paused, expired", paused, 0, later, Start::Expire),
        (
            "paused without expiry",
            paused_old,
            0,
            T0,
            Start::Wait(T0.plus(30 * 24 * HOUR)),
        ),
    ];
    for (case, payment, lost, now, expected) in cases {
        assert_eq!(start(&payment, lost, &p, now), expected, "{case}");
    }
    for status in [
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::RequiresAttention,
    ] {
        let mut done = payment();
        done.status = status;
        assert_eq!(start(&done, 9, &p, T0), Start::Done, "{status:?}");
    }
}

#[test]
fn each_attempt_result_decides_the_payment() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let mut exhausted = in_attempt(4);
    exhausted.retry_policy.max_attempts = 4;
    let mut one_shot = in_attempt(1);
    one_shot.retry_policy = RetryPolicy {
        strategy: RetryStrategy::None,
        ..RetryPolicy::default()
    };
    let mut short_window = in_attempt(1);
    short_window.retry_policy.window_hours = 1;
    let mut cancel = in_attempt(1);
    cancel.cancel_requested = true;
    let never = Block::Never {
        rule: NetworkRule::MastercardAdvice03,
    };
    let cases: Vec<(&str, Payment, Attempted, Decision)> = vec![
        (
            "success",
            in_attempt(1),
            attempted(succeeded(), None),
            Decision::Succeed,
        ),
        (
            "success despite a cancel",
            cancel.clone(),
            attempted(succeeded(), None),
            Decision::Succeed,
        ),
        (
            "soft, retries left",
            in_attempt(1),
            attempted(soft(), None),
            Decision::Retry(now.plus(HOUR)),
        ),
        (
            "soft, second retry",
            in_attempt(2),
            attempted(soft(), None),
            Decision::Retry(now.plus(6 * HOUR)),
        ),
        (
            "soft, last delay repeats",
            in_attempt(3),
            attempted(soft(), None),
            Decision::Retry(now.plus(6 * HOUR)),
        ),
        (
            "soft, exhausted",
            exhausted,
            attempted(soft(), None),
            Decision::Fail("retries exhausted".into()),
        ),
        (
            "soft, no retries",
            one_shot,
            attempted(soft(), None),
            Decision::Fail("retries exhausted".into()),
        ),
        (
            "soft, window over",
            short_window.clone(),
            attempted(soft(), None),
            Decision::Fail("retries exhausted".into()),
        ),
        (
            "soft, card waits 72 h",
            in_attempt(1),
            attempted(
                soft(),
                Some(until(now.plus(72 * HOUR), NetworkRule::MastercardAdvice02)),
            ),
            Decision::Retry(now.plus(72 * HOUR)),
        ),
        (
            "soft, cancel requested",
            cancel.clone(),
            attempted(soft(), None),
            Decision::Cancel,
        ),
        (
            "hard",
            in_attempt(1),
            attempted(Ending::Hard(hard()), None),
            Decision::Fail("card_declined (lost_card)".into()),
        ),
        (
            "hard, fallback",
            in_attempt(1),
            attempted(Ending::HardSwitch(hard(), "pm_2".into()), None),
            Decision::Switch("pm_2".into()),
        ),
        (
            "hard, fallback, cancel requested",
            cancel.clone(),
            attempted(Ending::HardSwitch(hard(), "pm_2".into()), None),
            Decision::Cancel,
        ),
        (
            "needs the customer",
            in_attempt(1),
            attempted(
                Ending::NeedsCustomer("authentication required".into(), None),
                None,
            ),
            Decision::Pause("authentication required".into(), now.plus(30 * 24 * HOUR)),
        ),
        (
            "needs the customer, cancel requested",
            cancel.clone(),
            attempted(Ending::NeedsCustomer("x".into(), None), None),
            Decision::Cancel,
        ),
        (
            "rejected",
            in_attempt(1),
            attempted(Ending::Rejected("400 parameter_invalid: x".into()), None),
            Decision::Fail("400 parameter_invalid: x".into()),
        ),
        (
            "blocked forever",
            in_attempt(1),
            attempted(Ending::Blocked(never.clone()), None),
            Decision::Fail("blocked by network rule mastercard_advice_03".into()),
        ),
        (
            "blocked for a day",
            in_attempt(1),
            attempted(
                Ending::Blocked(until(
                    now.plus(24 * HOUR),
                    NetworkRule::CardDeclineRateLimit,
                )),
                None,
            ),
            Decision::Retry(now.plus(24 * HOUR)),
        ),
        (
            "blocked past the window",
            short_window,
            attempted(
                Ending::Blocked(until(now.plus(24 * HOUR), NetworkRule::Visa20In30Days)),
                None,
            ),
            Decision::Fail("blocked by network rule visa_20_in_30_days".into()),
        ),
        (
            "canceled before any charge",
            cancel,
            attempted(Ending::CanceledBeforeCharge, None),
            Decision::Cancel,
        ),
    ];
    for (case, payment, result, expected) in cases {
        let number = payment.open_attempt().unwrap().number;
        assert_eq!(
            decide(&payment, number, &result, &p, now),
            expected,
            "{case}"
        );
    }
}

#[test]
fn an_answer_that_stays_unknown_is_asked_again_until_its_bound() {
    let p = policy();
    let unknown = || {
        attempted(
            Ending::Unanswered(Unanswered::UnknownOutcome, "timeout".into()),
            None,
        )
    };
    let misconfigured = || {
        attempted(
            Ending::Unanswered(Unanswered::ProcessorMisconfigured, "401: bad key".into()),
            None,
        )
    };
    let with = |kind, since: Timestamp, tries| {
        let mut payment = in_attempt(1);
        payment.attempts[0].unresolved = Some(Unresolved {
            kind,
            since,
            tries,
            reason: "x".into(),
        });
        payment
    };
    let asked = |at: Timestamp, kind, since, tries, reason: &str| {
        Decision::AskAgain(
            at,
            Unresolved {
                kind,
                since,
                tries,
                reason: reason.into(),
            },
        )
    };
    let now = T0.plus(MINUTE);
    let unknown_kind = Unanswered::UnknownOutcome;
    let mis_kind = Unanswered::ProcessorMisconfigured;
    let cases: Vec<(&str, Payment, Attempted, Decision)> = vec![
        (
            "first unknown",
            in_attempt(1),
            unknown(),
            asked(
                now.plus(Duration::from_secs(10)),
                unknown_kind,
                now,
                1,
                "timeout",
            ),
        ),
        (
            "third unknown backs off",
            with(unknown_kind, T0, 2),
            unknown(),
            asked(
                now.plus(Duration::from_secs(40)),
                unknown_kind,
                T0,
                3,
                "timeout",
            ),
        ),
        (
            "the wait is capped",
            with(unknown_kind, T0, 20),
            unknown(),
            asked(
                now.plus(Duration::from_secs(600)),
                unknown_kind,
                T0,
                21,
                "timeout",
            ),
        ),
        (
            "first misconfigured",
            in_attempt(1),
            misconfigured(),
            asked(now.plus(MINUTE), mis_kind, now, 1, "401: bad key"),
        ),
    ];
    for (case, payment, result, expected) in cases {
        assert_eq!(decide(&payment, 1, &result, &p, now), expected, "{case}");
    }
    // Past the bound: the payment requires attention (it may have been charged).
    let late = T0.plus(24 * HOUR);
    assert!(matches!(
        decide(&with(unknown_kind, T0, 5), 1, &unknown(), &p, late),
        Decision::Attention(AttentionReason::UnknownOutcome, _)
    ));
    assert!(matches!(
        decide(
            &with(mis_kind, T0, 5),
            1,
            &misconfigured(),
            &p,
            T0.plus(HOUR)
        ),
        Decision::Attention(AttentionReason::ProcessorMisconfigured, _)
    ));
    // The window's end bounds it too, but an attempt is always asked at least once more.
    let mut short = in_attempt(1);
    short.retry_policy.window_hours = 1;
    let after_window = T0.plus(2 * HOUR);
    assert!(matches!(
        decide(&short, 1, &unknown(), &p, after_window),
        Decision::AskAgain(_, Unresolved { tries: 1, .. })
    ));
    short.attempts[0].unresolved = Some(Unresolved {
        kind: unknown_kind,
        since: after_window,
        tries: 1,
        reason: "x".into(),
    });
    assert!(matches!(
        decide(&short, 1, &unknown(), &p, after_window.plus(MINUTE)),
        Decision::Attention(AttentionReason::UnknownOutcome, _)
    ));
}

#[test]
fn a_job_that_lost_its_race_reports_what_the_record_needs() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let later = T0.plus(HOUR);
    let mut pending = payment();
    pending.next_attempt_at = Some(later);
    let mut overdue = payment();
    overdue.next_attempt_at = Some(T0);
    let mut resumed_open = in_attempt(1);
    resumed_open.status = Status::Pending;
    let mut paused = payment();
    paused.status = Status::Paused;
    paused.expires_at = Some(later);
    let cases: Vec<(&str, Payment, Next)> = vec![
        ("pending, retry scheduled", pending, Next::At(later)),
        ("pending, overdue", overdue, Next::At(now)),
        ("pending, open attempt", resumed_open, Next::At(now)),
        (
            "processing elsewhere",
            in_attempt(1),
            Next::At(now.plus(PROCESSING_RECHECK)),
        ),
        ("paused", paused, Next::At(later)),
    ];
    for (case, payment, expected) in cases {
        assert_eq!(outcome_of_record(&payment, &p, now), expected, "{case}");
    }
    for status in [
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::RequiresAttention,
    ] {
        let mut done = payment();
        done.status = status;
        assert_eq!(outcome_of_record(&done, &p, now), Next::Done, "{status:?}");
    }
}

#[test]
fn a_new_attempt_records_the_card_it_will_charge_with_its_send_window() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let open = |payment: &Payment| {
        let a = payment.open_attempt().unwrap();
        (a.payment_method.clone(), a.send_until)
    };
    let window = Some(now.plus(p.send_window));
    // (the payment's own card, the customer's default looked up first) → what the start records
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<Timestamp>,
    );
    let table: [Row; 4] = [
        (Some("pm_own"), None, Some("pm_own"), window),
        (Some("pm_own"), Some("pm_default"), Some("pm_own"), window),
        (None, Some("pm_default"), Some("pm_default"), window),
        // No card yet: an empty window (nothing can have been sent until one is recorded).
        (None, None, None, Some(now)),
    ];
    for (own, default, method, until) in table {
        let mut payment = payment();
        payment.payment_method = own.map(str::to_owned);
        let next = apply_start(
            &mut payment,
            Start::Begin(1),
            default.map(str::to_owned),
            &p,
            now,
        );
        assert_eq!(next, Some(Next::At(now)), "{own:?} {default:?}");
        assert_eq!(
            open(&payment),
            (method.map(str::to_owned), until),
            "{own:?} {default:?}"
        );
        // The payment's own card stays as it was: a default is the attempt's, not the payment's.
        assert_eq!(payment.payment_method.as_deref(), own);
    }
}

#[test]
fn applying_a_decision_records_the_attempt_and_the_timeline() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let kinds = |payment: &Payment| payment.events.iter().map(|e| e.kind).collect::<Vec<_>>();

    // Begin: processing, a new open attempt with the payment's card.
    let mut payment = payment();
    payment.payment_method = Some("pm_1".into());
    assert_eq!(
        apply_start(&mut payment, Start::Begin(1), None, &p, now),
        Some(Next::At(now))
    );
    assert_eq!(payment.status, Status::Processing);
    assert_eq!(
        payment.open_attempt().unwrap().payment_method.as_deref(),
        Some("pm_1")
    );

    // Asked again: the attempt stays open with what is unresolved.
    let result = attempted(
        Ending::Unanswered(Unanswered::UnknownOutcome, "timeout".into()),
        None,
    );
    let decision = decide(&payment, 1, &result, &p, now);
    let next = apply(&mut payment, 1, &result, &decision, now);
    assert_eq!(next, Next::At(now.plus(Duration::from_secs(10))));
    assert_eq!(payment.status, Status::Processing);
    assert_eq!(
        payment
            .open_attempt()
            .unwrap()
            .unresolved
            .as_ref()
            .unwrap()
            .tries,
        1
    );

    // Settled later as a soft decline: the attempt ends, the next one is scheduled.
    let result = attempted(
        soft(),
        Some(until(now.plus(72 * HOUR), NetworkRule::MastercardAdvice02)),
    );
    let decision = decide(&payment, 1, &result, &p, now);
    assert_eq!(
        apply(&mut payment, 1, &result, &decision, now),
        Next::At(now.plus(72 * HOUR))
    );
    let a = &payment.attempts[0];
    assert_eq!(a.finished_at, Some(now));
    assert_eq!(a.decline_code, Some(DeclineCode::InsufficientFunds));
    assert_eq!(a.charge.as_deref(), Some("ch_1"));
    assert_eq!(a.network_rule, Some(NetworkRule::MastercardAdvice02));
    assert_eq!(a.unresolved, None);
    assert_eq!(payment.status, Status::Pending);
    assert_eq!(payment.processor_payment_intent.as_deref(), Some("pi_1"));

    // Needs the customer: paused, and the job waits to expire it.
    assert_eq!(
        apply_start(&mut payment, Start::Begin(2), None, &p, now),
        Some(Next::At(now))
    );
    let result = attempted(
        Ending::NeedsCustomer("authentication required".into(), None),
        None,
    );
    let decision = decide(&payment, 2, &result, &p, now);
    let expires = now.plus(30 * 24 * HOUR);
    assert_eq!(
        apply(&mut payment, 2, &result, &decision, now),
        Next::At(expires)
    );
    assert_eq!(payment.status, Status::Paused);
    assert_eq!(payment.expires_at, Some(expires));
    assert_eq!(
        kinds(&payment),
        [
            EventKind::Created,
            EventKind::AttemptStarted,
            EventKind::AttemptFailed,
            EventKind::AttemptStarted,
            EventKind::AttemptFailed,
            EventKind::Paused
        ]
    );

    // Attention keeps the open attempt open, so that a resume settles it.
    let mut open = in_attempt(1);
    let result = attempted(
        Ending::Unanswered(Unanswered::UnknownOutcome, "timeout".into()),
        None,
    );
    let decision = Decision::Attention(AttentionReason::UnknownOutcome, "no answer".into());
    assert_eq!(apply(&mut open, 1, &result, &decision, now), Next::Done);
    assert_eq!(open.status, Status::RequiresAttention);
    assert!(open.open_attempt().is_some());
    assert_eq!(
        open.attention.as_ref().unwrap().reason,
        AttentionReason::UnknownOutcome
    );
}

#[test]
fn an_attempt_waiting_for_an_earlier_tries_window_waits_for_it_and_no_longer() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let quiet = now.plus(3 * MINUTE);
    let waiting = |payment: &Payment, quiet_at| {
        decide(
            payment,
            1,
            &attempted(Ending::NotYet(quiet_at, "a cancel waits".into()), None),
            &p,
            now,
        )
    };
    assert_eq!(
        waiting(&in_attempt(1), quiet),
        Decision::AskAgain(
            quiet,
            Unresolved {
                kind: Unanswered::UnknownOutcome,
                since: now,
                tries: 1,
                reason: "a cancel waits".into()
            }
        )
    );
    // Even past the unknown-outcome bound: the wait is the window's, fixed and short.
    let mut long_unknown = in_attempt(1);
    long_unknown.attempts[0].unresolved = Some(Unresolved {
        kind: Unanswered::UnknownOutcome,
        since: T0.minus(48 * HOUR),
        tries: 30,
        reason: "x".into(),
    });
    assert!(matches!(
        waiting(&long_unknown, quiet),
        Decision::AskAgain(at, Unresolved { tries: 31, .. }) if at == quiet
    ));
    // A window that closes at once is looked at again a second later, not in a tight loop.
    assert!(matches!(
        waiting(&in_attempt(1), now),
        Decision::AskAgain(at, _) if at == now.plus(Duration::from_secs(1))
    ));
}

#[test]
fn a_block_by_each_network_rule_decides_as_its_kind_says() {
    let p = policy();
    let now = T0.plus(MINUTE);
    let never = [
        NetworkRule::VisaCategory1,
        NetworkRule::MastercardAdvice03,
        NetworkRule::MastercardAdvice21,
    ];
    for rule in never {
        let block = Block::Never { rule: rule.clone() };
        assert_eq!(
            decide(
                &in_attempt(1),
                1,
                &attempted(Ending::Blocked(block), None),
                &p,
                now
            ),
            Decision::Fail(format!("blocked by network rule {rule}")),
            "{rule}"
        );
    }
    let waits = [
        (NetworkRule::MastercardAdvice02, 72 * HOUR),
        (NetworkRule::CardDeclineRateLimit, 24 * HOUR),
        (NetworkRule::Visa20In30Days, 5 * 24 * HOUR),
    ];
    for (rule, wait) in waits {
        let block = Block::Until {
            at: now.plus(wait),
            rule: rule.clone(),
        };
        assert_eq!(
            decide(
                &in_attempt(1),
                1,
                &attempted(Ending::Blocked(block), None),
                &p,
                now
            ),
            Decision::Retry(now.plus(wait)),
            "{rule}"
        );
    }
}
