//! One attempt's conversation with the processor, in the order that makes a second charge
//! impossible:
//!
//! 1. A continued attempt whose card was recorded may have charged already: the processor's
//!    records are read first (the intent by id, or by `metadata[flint_payment_id]`) and settle
//!    it. Nothing else — no default-method lookup, no card rule — can end it before that, and no
//!    request is re-sent on the strength of an idempotency key the processor may have forgotten.
//! 2. A cancel requested meanwhile stops an attempt known to have charged nothing.
//! 3. The card: the attempt's recorded one, else the payment's, else the customer's default.
//! 4. The card-network rules check the card and count this attempt, in one script.
//! 5. The card is recorded on the attempt before the first charging request.
//! 6. One PaymentIntent per payment: created and confirmed in one request by the first charge
//!    (key `<payment>:intent`), confirmed once per later attempt (key `<payment>:attempt:<n>`).
//!    An answer that is lost is settled by reading the intent.
//! 7. The answer is recorded against the card; a hard decline may fall back to another card.

use flint_shared::payment::network::{Block, CardOutcome};
use flint_shared::payment::record::Unanswered;
use flint_shared::payment::store::{JobAction, StoreError, Versioned};
use flint_shared::payment::{Payment, Status};
use flint_shared::processor::{CardInfo, IntentRequest, Processor, ProcessorError};
use flint_shared::time::Timestamp;

use super::Pipeline;
use super::decide::Attempted;
use super::ending::Ending;
use super::reconcile::{Settled, settled};

/// How an attempt's run ended.
#[derive(Debug)]
pub enum Step {
    Attempted(Attempted),
    /// The payment moved on while the attempt was being prepared (nothing was charged): the
    /// record as re-read.
    Moved(Payment),
}

/// What the processor's records say about an attempt that may have been sent before.
enum Truth {
    Ended(Box<Ending>, String),
    /// Not charged by this attempt; its intent, when there is one.
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

impl<P: Processor> Pipeline<P> {
    /// Runs attempt `number` of `current` (`processing`, with the attempt open) to a result.
    /// Writes the record at most once: the card, before the first charging request.
    pub(super) async fn attempt(
        &self,
        processor: &P,
        tenant: &str,
        current: &mut Versioned,
        number: u32,
        continuation: bool,
    ) -> Result<Step, StoreError> {
        let p = &current.payment;
        let recorded = p.open_attempt().and_then(|a| a.payment_method.clone());
        // The charge the intent's latest charge would be if this attempt made none.
        let previous_charge = p
            .attempts
            .iter()
            .filter(|a| a.number < number)
            .filter_map(|a| a.charge.clone())
            .next_back();
        let mut intent = p.processor_payment_intent.clone();
        let mut looked_for_intent = false;
        let attempted = |ending, method: Option<String>, intent_id| {
            Ok(Step::Attempted(Attempted {
                ending,
                method,
                intent_id,
                card_block: None,
            }))
        };

        // 1. Settle what an earlier try of this attempt did.
        if continuation && recorded.is_some() {
            match self.truth(processor, p, previous_charge.as_ref()).await {
                Truth::Ended(ending, pi) => {
                    let method = recorded.clone().unwrap_or_default();
                    let card = self.card_of(processor, tenant, &method).await.ok();
                    return Ok(Step::Attempted(
                        self.answered(
                            processor,
                            tenant,
                            p,
                            number,
                            *ending,
                            method,
                            Some(pi),
                            card,
                        )
                        .await,
                    ));
                }
                Truth::NotCharged(pi) => {
                    looked_for_intent = true;
                    intent = intent.or(pi);
                }
                Truth::Unknown(ending) => return attempted(*ending, recorded, intent),
            }
        }
        // 2. Canceled meanwhile, and nothing charged.
        if continuation && p.cancel_requested {
            return attempted(Ending::CanceledBeforeCharge, recorded, intent);
        }
        // 3. The card.
        let method = match recorded.clone().or_else(|| p.payment_method.clone()) {
            Some(pm) => pm,
            None => match processor.default_payment_method(&p.customer).await {
                Ok(Some(pm)) => pm,
                Ok(None) => {
                    return attempted(
                        Ending::NeedsCustomer(
                            "the customer has no default payment method".into(),
                            None,
                        ),
                        None,
                        intent,
                    );
                }
                Err(e) => return attempted(Ending::of_error(e), None, intent),
            },
        };
        let card = match self.card_of(processor, tenant, &method).await {
            Ok(card) => card,
            Err(e) => return attempted(Ending::of_error(e), Some(method), intent),
        };
        // 4. The card-network rules, checked and this attempt counted in one step.
        let attempt_key = format!("{}:{number}", p.id);
        match self
            .rules
            .reserve(tenant, &card, &attempt_key, Timestamp::now())
            .await
        {
            Ok(Some(block)) => return attempted(Ending::Blocked(block), Some(method), intent),
            Ok(None) => {}
            Err(e) => {
                return attempted(
                    Ending::Unanswered(
                        Unanswered::UnknownOutcome,
                        format!("card rules unavailable: {e}"),
                    ),
                    Some(method),
                    intent,
                );
            }
        }
        // 5. The card is on record before anything that could charge it is sent.
        if recorded.is_none() {
            let moved = self.record_method(current, number, &method).await?;
            if moved.is_some() || current.payment.cancel_requested {
                // Nothing will be sent: the card's place among its reattempts is given back.
                let released = self
                    .rules
                    .record(
                        tenant,
                        &card,
                        &attempt_key,
                        CardOutcome::NotSent,
                        Timestamp::now(),
                    )
                    .await;
                if let Err(e) = released {
                    tracing::warn!(payment_id = %current.payment.id, error = %e, "could not release the card's reattempt place");
                }
                return match moved {
                    Some(moved) => Ok(Step::Moved(moved)),
                    None => attempted(Ending::CanceledBeforeCharge, Some(method), intent),
                };
            }
        }
        let p = &current.payment;
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
            )
            .await;
        // 7. What it means for the card.
        Ok(Step::Attempted(
            self.answered(
                processor,
                tenant,
                p,
                number,
                ending,
                method,
                intent,
                Some(card),
            )
            .await,
        ))
    }

    async fn card_of(
        &self,
        processor: &P,
        tenant: &str,
        method: &str,
    ) -> Result<CardInfo, ProcessorError> {
        // Concurrent attempts on one uncached method wait for a single lookup.
        self.cards
            .get_or_insert_async(
                &(tenant.to_owned(), method.to_owned()),
                processor.card(method),
            )
            .await
    }

    /// The processor's records on this payment's intent, read by id or found by Flint's id.
    async fn truth(&self, processor: &P, p: &Payment, previous_charge: Option<&String>) -> Truth {
        let found = match &p.processor_payment_intent {
            Some(pi) => processor.retrieve_intent(pi).await.map(Some),
            None => processor.find_intent(&p.customer, p.id.as_str()).await,
        };
        match found {
            Ok(Some(intent)) => match settled(intent, previous_charge) {
                Settled::Ended(ending, pi) => Truth::Ended(ending, pi),
                Settled::Unconfirmed(pi) => Truth::NotCharged(Some(pi)),
                Settled::Unknown(reason) => Truth::Unknown(Box::new(Ending::Unanswered(
                    Unanswered::UnknownOutcome,
                    reason,
                ))),
            },
            Ok(None) => Truth::NotCharged(None),
            Err(e) => Truth::Unknown(Box::new(unread(e))),
        }
    }

    /// Puts the card on the open attempt (compare-and-set). `Some` with the record as re-read
    /// when the payment left this attempt meanwhile; `None` when the card is recorded (the
    /// record in `current` is then the new one, which may carry a cancel request).
    async fn record_method(
        &self,
        current: &mut Versioned,
        number: u32,
        method: &str,
    ) -> Result<Option<Payment>, StoreError> {
        for _ in 0..8 {
            let mut p = current.payment.clone();
            let open = p.status == Status::Processing
                && p.open_attempt().is_some_and(|a| a.number == number);
            if !open {
                return Ok(Some(p));
            }
            if let Some(a) = p.open_attempt_mut() {
                a.payment_method = Some(method.to_owned());
            }
            let now = Timestamp::now();
            p.updated_at = now;
            if let Some(version) = self
                .store
                .transition(&current.version, &p, JobAction::None, now)
                .await?
            {
                *current = Versioned {
                    payment: p,
                    version,
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
    ) -> (Ending, Option<String>) {
        let id = p.id.as_str();
        let known = match intent {
            Some(pi) => Some(pi),
            // An earlier attempt may have created the intent without its id being recorded: its
            // key must not be used again, so look for it first.
            None if number > 1 && !looked_for_intent => {
                match processor.find_intent(&p.customer, id).await {
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
                    .create_intent(&request, &format!("{id}:intent"))
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
                    }) => match processor.find_intent(&p.customer, id).await {
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
            .confirm_intent(&intent_id, method, &format!("{id}:attempt:{number}"))
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

    /// Records the answer against the card (its decline count and the block it causes, or
    /// that it charged) and, after a hard decline the payment allows it, picks another card.
    #[expect(
        clippy::too_many_arguments,
        reason = "the attempt's coordinates, each used once; a struct would only rename them"
    )]
    async fn answered(
        &self,
        processor: &P,
        tenant: &str,
        p: &Payment,
        number: u32,
        ending: Ending,
        method: String,
        intent_id: Option<String>,
        card: Option<CardInfo>,
    ) -> Attempted {
        let attempt_key = format!("{}:{number}", p.id);
        let outcome = match &ending {
            Ending::Soft(d) | Ending::Hard(d) | Ending::NeedsCustomer(_, Some(d)) => {
                Some(CardOutcome::Declined(d))
            }
            Ending::Succeeded(_) => Some(CardOutcome::Charged),
            _ => None,
        };
        let mut card_block = None;
        if let (Some(outcome), Some(card)) = (outcome, &card) {
            match self
                .rules
                .record(tenant, card, &attempt_key, outcome, Timestamp::now())
                .await
            {
                Ok(block) => {
                    if let Some(b) = &block {
                        match b {
                            Block::Never { rule } => {
                                tracing::info!(payment_id = %p.id, rule = %rule, "network rule: this card is never retried")
                            }
                            Block::Until { at, rule } => {
                                tracing::info!(payment_id = %p.id, rule = %rule, until = %at, "network rule delays the card's next attempt")
                            }
                        }
                    }
                    card_block = block;
                }
                Err(e) => {
                    tracing::warn!(payment_id = %p.id, error = %e, "could not record the answer for network rules")
                }
            }
        }
        let ending = match ending {
            Ending::Hard(d) if p.retry_policy.fallback_to_other_cards => {
                match self
                    .other_card(processor, tenant, p, &method, card.as_ref())
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
