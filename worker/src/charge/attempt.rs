//! One attempt's conversation with the processor, in the order that makes a second charge, or
//! a charge without a record, impossible:
//!
//! 1. A continued attempt whose card was recorded may have charged already: the processor's
//!    records are read first (the intent by id, or by `metadata[flint_payment_id]`). What they
//!    say is final once the attempt's send window is over (no worker sends its requests after
//!    it, see [`flint_shared::processor::Processor`]). Before that, an earlier try's request may
//!    still arrive: the attempt can then go on only by sending its own request with the same
//!    idempotency key (the processor runs that key once, and a PaymentIntent charges at most
//!    once); anything that would end it without sending (a cancel, a card rule, a card that
//!    cannot be looked up) waits until the window is over. (A card rule is asked again even
//!    then: the earlier try may have stopped before the rules admitted it, and a request the
//!    rules forbid is never sent.)
//! 2. A cancel requested meanwhile stops an attempt known to have charged nothing.
//! 3. The card: the attempt's recorded one, else the payment's, else the customer's default.
//! 4. The card-network rules check the card and count this attempt, in one script.
//! 5. The card, and a send window, are recorded before the first charging request.
//! 6. One PaymentIntent per payment: created and confirmed in one request by the first charge
//!    (key `<payment>:intent`), confirmed once per later attempt (key `<payment>:attempt:<n>`).
//!    An answer that is lost is settled by reading the intent.
//! 7. The answer is recorded against the card (declines counted, blocks stored, a reservation
//!    given back); when that cannot be stored, the attempt is asked again rather than ended
//!    without it. A hard decline may fall back to another card.

use flint_shared::payment::network::{Block, CardOutcome, Reservation};
use flint_shared::payment::record::Unanswered;
use flint_shared::payment::store::{JobAction, StoreError, Versioned};
use flint_shared::payment::{Payment, Status};
use flint_shared::processor::{CardInfo, IntentRequest, Processor, ProcessorError};
use flint_shared::time::Timestamp;

use super::card::no_default_method;
use super::decide::Attempted;
use super::ending::Ending;
use super::reconcile::{Settled, settled};
use super::{Pipeline, window};

/// How an attempt's run ended.
#[derive(Debug)]
pub enum Step {
    Attempted(Attempted),
    /// The payment moved on while the attempt was being prepared (nothing was sent): the
    /// record as re-read.
    Moved(Payment),
}

/// What the processor's records say about an attempt that may have been sent before.
enum Truth {
    /// Settled: the ending, the intent's id and the card it was confirmed with.
    Ended(Box<Ending>, String, Option<String>),
    /// Not charged by this attempt, as far as the records show now; its intent, if any.
    NotCharged(Option<String>),
    Unknown(Box<Ending>),
}

/// A read's failure is never the attempt's answer: it leaves the outcome unknown.
fn unread(e: ProcessorError) -> Ending {
    match e {
        ProcessorError::Misconfigured { status, message } => Ending::Unanswered(
            Unanswered::ProcessorMisconfigured,
            format!("{status}: {message}"),
        ),
        other => Ending::Unanswered(
            Unanswered::UnknownOutcome,
            format!("cannot read the processor's records: {other}"),
        ),
    }
}

/// The attempt's coordinates, as the steps after the settling need them.
struct Course<'a> {
    tenant: &'a str,
    number: u32,
    /// Until when an earlier try's request may still reach the processor; `None` when none
    /// can (nothing was sent, or its window is over). Until then the attempt ends only through
    /// its own same-key request.
    open_until: Option<Timestamp>,
    /// Whether the attempt (may have) taken a place among the card's reattempts, which its
    /// end must give back or keep.
    counted: bool,
}

impl Course<'_> {
    /// `ending`, unless it would end the attempt while it may not end without sending yet.
    /// (An ending that asks again anyway stays as it is.)
    fn unless_open(&self, ending: Ending, why: &str) -> Ending {
        match (self.open_until, ending.outcome()) {
            (Some(at), Some(_)) => Ending::NotYet(at, why.to_owned()),
            (None, _) | (_, None) => ending,
        }
    }
}

impl<P: Processor> Pipeline<P> {
    /// Runs attempt `number` of `current` (`processing`, with the attempt open) to a result.
    /// Writes the record at most once: the card and its send window, before the first charging
    /// request.
    pub(super) async fn attempt(
        &self,
        processor: &P,
        tenant: &str,
        current: &mut Versioned,
        number: u32,
        continuation: bool,
    ) -> Result<Step, StoreError> {
        let p = &current.payment;
        let open = p.open_attempt();
        let recorded = open.and_then(|a| a.payment_method.clone());
        let now = Timestamp::now();
        // The charge the intent's latest charge would be if this attempt made none.
        let previous_charge = p
            .attempts
            .iter()
            .filter(|a| a.number < number)
            .filter_map(|a| a.charge.clone())
            .next_back();
        let mut intent = p.processor_payment_intent.clone();
        let mut course = Course {
            tenant,
            number,
            open_until: None,
            // An earlier try may have taken one.
            counted: continuation,
        };
        let mut looked_for_intent = false;

        // 1. Settle what an earlier try of this attempt did. One may have sent a request when
        //    its card is on record, and, to be safe, whenever no send window is (a record
        //    written before windows existed, or rewritten by a binary that drops the field).
        let may_have_sent =
            open.is_some_and(|a| a.payment_method.is_some() || a.send_until.is_none());
        if continuation && may_have_sent {
            match self.truth(processor, p, previous_charge.as_ref()).await {
                Truth::Ended(ending, pi, used) => {
                    let method = recorded.clone().or(used);
                    return Ok(self
                        .settled_ending(processor, &course, p, *ending, method, pi)
                        .await);
                }
                Truth::NotCharged(pi) => {
                    looked_for_intent = true;
                    intent = intent.or(pi);
                    let quiet_at = open.map(|a| {
                        a.send_until
                            .unwrap_or_else(|| a.started_at.plus(self.policy.send_window))
                            .plus(self.policy.request_lifetime)
                    });
                    course.open_until = quiet_at.filter(|at| *at > now);
                }
                Truth::Unknown(ending) => return Ok(self.ended(*ending, &recorded, intent)),
            }
        }
        // 2. Canceled meanwhile, and nothing charged (nor able to be any more).
        if continuation && p.cancel_requested {
            let ending = course.unless_open(
                Ending::CanceledBeforeCharge,
                "a cancel waits until an earlier try's requests are over",
            );
            if let (Ending::CanceledBeforeCharge, Some(method)) = (&ending, &recorded) {
                self.release(processor, &course, p, method).await;
            }
            return Ok(self.ended(ending, &recorded, intent));
        }
        // 3. The card.
        let method = match recorded.clone().or_else(|| p.payment_method.clone()) {
            Some(pm) => pm,
            None => match processor.default_payment_method(&p.customer).await {
                Ok(Some(pm)) => pm,
                Ok(None) => return Ok(self.ended(no_default_method(), &None, intent)),
                Err(e) => return Ok(self.ended(Ending::of_error(e), &None, intent)),
            },
        };
        let card = match self.card_of(processor, tenant, &method).await {
            Ok(card) => card,
            Err(e) => {
                let ending = course.unless_open(
                    Ending::of_error(e),
                    "the card cannot be looked up while an earlier try's requests may arrive",
                );
                return Ok(self.ended(ending, &Some(method), intent));
            }
        };
        // 4. The card-network rules, checked and this attempt counted in one step. A card
        //    blocked since an earlier try began still ends a continued attempt only once that
        //    try's requests are over (until then it goes on only with its own same-key
        //    request, which the rules now forbid: it waits).
        let attempt_key = format!("{}:{number}", p.id);
        match self.rules.reserve(tenant, &card, &attempt_key, now).await {
            Ok(Reservation::Blocked(block)) => {
                let ending = course.unless_open(
                    Ending::Blocked(block),
                    "a card rule waits until an earlier try's requests are over",
                );
                // This attempt's own earlier reservation, if it made one, is given back.
                if matches!(ending, Ending::Blocked(_)) && course.counted {
                    self.record(&course, &p.id, &card, CardOutcome::NotSent)
                        .await;
                }
                return Ok(self.ended(ending, &Some(method), intent));
            }
            Ok(Reservation::Counted) => course.counted = true,
            Ok(Reservation::Free) => course.counted = false,
            Err(e) => {
                return Ok(self.ended(
                    Ending::Unanswered(
                        Unanswered::UnknownOutcome,
                        format!("card rules unavailable: {e}"),
                    ),
                    &Some(method),
                    intent,
                ));
            }
        }
        // 5. The card and a send window are on record before anything that could charge it
        //    is sent (a continued attempt opens a window of its own).
        let window_open = open
            .filter(|a| a.payment_method.is_some())
            .and_then(|a| a.send_until)
            .is_some_and(|until| until > now && !continuation);
        if !window_open {
            let moved = self.open_window(current, number, &method).await?;
            // A cancel that arrived meanwhile stops the attempt if nothing can have been sent:
            // a fresh attempt has sent nothing yet; a continued one, nothing once the earlier
            // try's window is over. (Otherwise the attempt goes on, like one already running.)
            let stop =
                current.payment.cancel_requested && (!continuation || course.open_until.is_none());
            if let Some(moved) = moved {
                // The card's place, if taken, stays with the attempt while another try may be
                // sending on this card (the try that ends the attempt gives it back). An
                // attempt already over, or going on with another card, will not give back
                // this one: this try does.
                let kept = moved.status == Status::Processing
                    && moved.open_attempt().is_some_and(|a| {
                        a.number == number && a.payment_method.as_deref() == Some(method.as_str())
                    });
                if course.counted && !kept {
                    self.record(&course, &moved.id, &card, CardOutcome::NotSent)
                        .await;
                }
                return Ok(Step::Moved(moved));
            }
            if stop {
                // Nothing will be sent: the card's place among its reattempts is given back.
                if course.counted {
                    self.record(&course, &current.payment.id, &card, CardOutcome::NotSent)
                        .await;
                }
                return Ok(self.ended(Ending::CanceledBeforeCharge, &Some(method), intent));
            }
        }
        let p = &current.payment;
        let send_until = p.open_attempt().and_then(|a| a.send_until).unwrap_or(now);
        // 6. The charge.
        let (ending, intent) = self
            .charge(
                processor,
                p,
                number,
                &method,
                intent,
                looked_for_intent,
                previous_charge.as_ref(),
                send_until,
            )
            .await;
        // 7. What it means for the card.
        Ok(Step::Attempted(
            self.answered(processor, &course, p, ending, method, intent, Some(card))
                .await,
        ))
    }

    /// An attempt that ends without an answer to record against a card.
    fn ended(&self, ending: Ending, method: &Option<String>, intent: Option<String>) -> Step {
        Step::Attempted(Attempted {
            ending,
            method: method.clone(),
            intent_id: intent,
            card_block: None,
        })
    }

    /// The processor's records on this payment's intent, read by id or found by Flint's id.
    async fn truth(&self, processor: &P, p: &Payment, previous_charge: Option<&String>) -> Truth {
        let found = match &p.processor_payment_intent {
            Some(pi) => processor.retrieve_intent(pi).await.map(Some),
            None => {
                processor
                    .find_intent(&p.customer, p.id.as_str(), intents_since(p))
                    .await
            }
        };
        match found {
            Ok(Some(intent)) => {
                let used = intent.payment_method.clone();
                match settled(intent, previous_charge) {
                    Settled::Ended(ending, pi) => Truth::Ended(ending, pi, used),
                    Settled::Unconfirmed(pi) => Truth::NotCharged(Some(pi)),
                    Settled::Unknown(reason) => Truth::Unknown(Box::new(Ending::Unanswered(
                        Unanswered::UnknownOutcome,
                        reason,
                    ))),
                }
            }
            Ok(None) => Truth::NotCharged(None),
            Err(e) => Truth::Unknown(Box::new(unread(e))),
        }
    }

    /// Puts the card and a fresh send window on the open attempt (compare-and-set). `Some`
    /// with the record as re-read when the payment left this attempt meanwhile, or when
    /// another try of it recorded a card or window of its own (it may have sent: this try
    /// stops, and the next run settles from the processor's records); `None` when they are
    /// recorded (the record in `current` is then the new one, which may carry a cancel
    /// request).
    async fn open_window(
        &self,
        current: &mut Versioned,
        number: u32,
        method: &str,
    ) -> Result<Option<Payment>, StoreError> {
        let basis = window(&current.payment);
        for _ in 0..8 {
            let mut p = current.payment.clone();
            let open = p.status == Status::Processing
                && p.open_attempt().is_some_and(|a| a.number == number);
            if !open || window(&p) != basis {
                return Ok(Some(p));
            }
            let now = Timestamp::now();
            if let Some(a) = p.open_attempt_mut() {
                a.payment_method = Some(method.to_owned());
                // Never earlier than a window already recorded (another worker's clock), and
                // always a change: a try that read the old one then sees another opened one.
                let until = now.plus(self.policy.send_window);
                a.send_until = Some(match a.send_until {
                    Some(old) if old >= until => old.plus(std::time::Duration::from_millis(1)),
                    _ => until,
                });
            }
            p.updated_at = now;
            if let Some(version) = self
                .store
                .transition(current, &p, JobAction::None, now)
                .await?
            {
                *current = Versioned {
                    payment: p,
                    version,
                    tenant: std::mem::take(&mut current.tenant),
                    keeps_created: false,
                };
                return Ok(None);
            }
            match self.store.get_any(p.id.as_str()).await? {
                Some((_, reread)) => *current = reread,
                None => return Ok(Some(p)),
            }
        }
        Ok(Some(current.payment.clone()))
    }

    /// Creates and confirms, or confirms, the payment's intent; settles a lost answer by
    /// reading it. Returns the ending and the intent's id when known.
    #[expect(
        clippy::too_many_arguments,
        reason = "the attempt's coordinates, each used once; a struct would only rename them"
    )]
    async fn charge(
        &self,
        processor: &P,
        p: &Payment,
        number: u32,
        method: &str,
        intent: Option<String>,
        looked_for_intent: bool,
        previous_charge: Option<&String>,
        send_until: Timestamp,
    ) -> (Ending, Option<String>) {
        let id = p.id.as_str();
        let known = match intent {
            Some(pi) => Some(pi),
            // An earlier attempt may have created the intent without its id being recorded: its
            // key must not be used again, so look for it first.
            None if number > 1 && !looked_for_intent => {
                match processor
                    .find_intent(&p.customer, id, intents_since(p))
                    .await
                {
                    Ok(found) => found.map(|i| i.id),
                    Err(e) => return (unread(e), None),
                }
            }
            None => None,
        };
        let intent_id = match known {
            Some(pi) => pi,
            None => {
                let request = intent_request(p, method);
                match processor
                    .create_intent(&request, &format!("{id}:intent"), send_until)
                    .await
                {
                    Ok(intent) => {
                        let pi = intent.id.clone();
                        return (Ending::of_intent(intent), Some(pi));
                    }
                    // Whether the intent was created and confirmed, the processor's list of
                    // the customer's intents says (by `metadata[flint_payment_id]`).
                    Err(ProcessorError::Transient {
                        outcome_unknown: true,
                        reason,
                        ..
                    }) => match processor
                        .find_intent(&p.customer, id, intents_since(p))
                        .await
                    {
                        Ok(Some(found)) => match settled(found, previous_charge) {
                            Settled::Ended(ending, pi) => return (*ending, Some(pi)),
                            // Created, never confirmed: confirm it as any later attempt would.
                            Settled::Unconfirmed(pi) => pi,
                            Settled::Unknown(why) => {
                                return (Ending::Unanswered(Unanswered::UnknownOutcome, why), None);
                            }
                        },
                        Ok(None) | Err(_) => {
                            return (Ending::Unanswered(Unanswered::UnknownOutcome, reason), None);
                        }
                    },
                    Err(e) => {
                        let pi = match &e {
                            ProcessorError::Declined(d) | ProcessorError::NeedsCustomer(d) => {
                                d.intent_id.clone()
                            }
                            _ => None,
                        };
                        return (Ending::of_error(e), pi);
                    }
                }
            }
        };
        let confirmed = processor
            .confirm_intent(
                &intent_id,
                method,
                &format!("{id}:attempt:{number}"),
                send_until,
            )
            .await;
        let ending = match confirmed {
            Ok(intent) => Ending::of_intent(intent),
            // The confirm may have happened (or an earlier one did): the intent says what.
            Err(ProcessorError::Transient {
                outcome_unknown: true,
                reason,
                ..
            }) => match processor.retrieve_intent(&intent_id).await {
                Ok(read) => match settled(read, previous_charge) {
                    Settled::Ended(ending, _) => *ending,
                    Settled::Unconfirmed(_) | Settled::Unknown(_) => {
                        Ending::Unanswered(Unanswered::UnknownOutcome, reason)
                    }
                },
                Err(_) => Ending::Unanswered(Unanswered::UnknownOutcome, reason),
            },
            Err(e) => Ending::of_error(e),
        };
        (ending, Some(intent_id))
    }

    /// Records the answer against the card (a decline counted with the block it causes, a
    /// charge or anything else that ends the attempt giving its reservation back) and, after a
    /// hard decline the payment allows it, picks another card. A decline whose record cannot
    /// be stored is not the attempt's end: it is asked again, and the next look reads the same
    /// decline from the processor and records it then.
    #[expect(
        clippy::too_many_arguments,
        reason = "the attempt's coordinates, each used once; a struct would only rename them"
    )]
    async fn answered(
        &self,
        processor: &P,
        course: &Course<'_>,
        p: &Payment,
        ending: Ending,
        method: String,
        intent_id: Option<String>,
        card: Option<CardInfo>,
    ) -> Attempted {
        let outcome = match &ending {
            Ending::Soft(d) | Ending::Hard(d) | Ending::NeedsCustomer(_, Some(d)) => {
                Some(CardOutcome::Declined(d))
            }
            Ending::NeedsCustomer(_, None) => Some(CardOutcome::Refused),
            Ending::Succeeded(_) => Some(CardOutcome::Charged),
            Ending::Rejected(_) | Ending::Blocked(_) | Ending::CanceledBeforeCharge => {
                Some(CardOutcome::NotSent)
            }
            // The attempt goes on: its place stays taken.
            Ending::HardSwitch(..) | Ending::Unanswered(..) | Ending::NotYet(..) => None,
        };
        // A charge, or an end without sending, has nothing to record unless a place was taken.
        let outcome = outcome.filter(|o| {
            course.counted || matches!(o, CardOutcome::Declined(_) | CardOutcome::Refused)
        });
        let mut card_block = None;
        if let (Some(outcome), Some(card)) = (outcome, &card) {
            // Only a decline carries a block that must not be lost; a failed record of anything
            // else over-counts the card at worst.
            let counted = matches!(outcome, CardOutcome::Declined(_));
            match self
                .rules
                .record(
                    course.tenant,
                    card,
                    &attempt_key(p, course),
                    outcome,
                    Timestamp::now(),
                )
                .await
            {
                Ok(block) => {
                    if let Some(b) = &block {
                        log_block(p, b);
                    }
                    card_block = block;
                }
                Err(e) if counted => {
                    tracing::warn!(payment_id = %p.id, error = %e, "could not record the decline for the card's network rules; the attempt is asked again");
                    return Attempted {
                        ending: Ending::Unanswered(
                            Unanswered::UnknownOutcome,
                            format!("the decline could not be recorded for network rules: {e}"),
                        ),
                        method: Some(method),
                        intent_id,
                        card_block: None,
                    };
                }
                Err(e) => {
                    tracing::warn!(payment_id = %p.id, error = %e, "could not give back the card's reattempt place");
                }
            }
        }
        let ending = match ending {
            Ending::Hard(d) if p.retry_policy.fallback_to_other_cards => {
                match self
                    .other_card(processor, course.tenant, p, &method, card.as_ref())
                    .await
                {
                    Some(next) => Ending::HardSwitch(d, next),
                    None => Ending::Hard(d),
                }
            }
            ending => ending,
        };
        Attempted {
            ending,
            method: Some(method),
            intent_id,
            card_block,
        }
    }

    /// An attempt the processor's records settled. Its answer is recorded against the card
    /// when the card can be looked up; a charge is written even when it cannot, a decline only
    /// once the lookup either works or fails for good (the payment method is gone).
    async fn settled_ending(
        &self,
        processor: &P,
        course: &Course<'_>,
        p: &Payment,
        ending: Ending,
        recorded: Option<String>,
        intent_id: String,
    ) -> Step {
        let card = match &recorded {
            Some(method) => self.card_of(processor, course.tenant, method).await,
            None => Err(ProcessorError::Rejected {
                status: 0,
                code: "no_card_recorded".into(),
                message: "the attempt recorded no card".into(),
                param: None,
                request_id: None,
            }),
        };
        match card {
            Ok(card) => Step::Attempted(
                self.answered(
                    processor,
                    course,
                    p,
                    ending,
                    recorded.unwrap_or_default(),
                    Some(intent_id),
                    Some(card),
                )
                .await,
            ),
            Err(ProcessorError::Transient { .. } | ProcessorError::Misconfigured { .. })
                if !matches!(ending, Ending::Succeeded(_)) =>
            {
                self.ended(
                    Ending::Unanswered(
                        Unanswered::UnknownOutcome,
                        "the card cannot be looked up to record the decline for network rules"
                            .into(),
                    ),
                    &recorded,
                    Some(intent_id),
                )
            }
            Err(e) => {
                if !matches!(ending, Ending::Succeeded(_)) {
                    tracing::warn!(payment_id = %p.id, error = %e, "the card is gone: its decline is written without network rules");
                }
                Step::Attempted(Attempted {
                    ending,
                    method: recorded,
                    intent_id: Some(intent_id),
                    card_block: None,
                })
            }
        }
    }

    /// Gives back this attempt's place among the card's reattempts (nothing was, or will be,
    /// sent).
    async fn release(&self, processor: &P, course: &Course<'_>, p: &Payment, method: &str) {
        if let Ok(card) = self.card_of(processor, course.tenant, method).await {
            self.record(course, &p.id, &card, CardOutcome::NotSent)
                .await;
        }
    }

    async fn record(
        &self,
        course: &Course<'_>,
        id: &flint_shared::ids::PaymentId,
        card: &CardInfo,
        outcome: CardOutcome<'_>,
    ) {
        let key = format!("{id}:{}", course.number);
        if let Err(e) = self
            .rules
            .record(course.tenant, card, &key, outcome, Timestamp::now())
            .await
        {
            tracing::warn!(payment_id = %id, error = %e, "could not give back the card's reattempt place");
        }
    }
}

/// Where a search for the payment's intent starts: its creation, less an hour for the
/// difference between Flint's clocks and the processor's.
fn intents_since(p: &Payment) -> Timestamp {
    p.created_at.minus(std::time::Duration::from_secs(3600))
}

fn attempt_key(p: &Payment, course: &Course<'_>) -> String {
    format!("{}:{}", p.id, course.number)
}

fn log_block(p: &Payment, block: &Block) {
    match block {
        Block::Never { rule } => {
            tracing::info!(payment_id = %p.id, rule = %rule, "network rule: this card is never retried")
        }
        Block::Until { at, rule } => {
            tracing::info!(payment_id = %p.id, rule = %rule, until = %at, "network rule delays the card's next attempt")
        }
    }
}

/// The payment's one PaymentIntent, confirmed with `method` in the same request.
fn intent_request(p: &Payment, method: &str) -> IntentRequest {
    IntentRequest {
        payment_id: p.id.clone(),
        amount_minor: p.amount.value,
        currency: p.amount.currency.clone(),
        customer: p.customer.clone(),
        description: p.description.clone(),
        statement_descriptor_suffix: p.statement_descriptor_suffix.clone(),
        purpose: p.purpose,
        initiated_by: p.initiated_by.clone(),
        context: p.context.clone(),
        metadata: p.metadata.clone(),
        confirm_with: Some(method.to_owned()),
    }
}
