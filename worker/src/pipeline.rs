//! The charge pipeline: one job is one attempt of one payment.
//!
//! 1. Skip what must not run: a finished, paused or unknown payment does nothing; a job that
//!    comes early waits for its time; a cancel requested meanwhile cancels.
//! 2. `pending → processing` by compare-and-set, with the attempt recorded (`attempt_started`).
//!    A payment found in `processing` had a worker die mid-attempt: the same attempt is
//!    continued with the same idempotency keys, so it cannot charge twice.
//! 3. The payment method: the request's, else the customer's default now.
//! 4. One PaymentIntent per payment (key `<payment>:intent`), created and confirmed
//!    off-session in one request by the payment's first charge, and confirmed once per later
//!    attempt (key `<payment>:attempt:<n>`). An outcome left unknown is settled by reading the
//!    PaymentIntent (found by `metadata[flint_payment_id]` when its id never came back): a
//!    charge newer than the previous attempt's says the attempt happened, an unconfirmed
//!    intent that it did not. The attempt number only advances after a definite answer, and
//!    since a PaymentIntent succeeds at most once, no retry can charge twice.
//!    Before anything is sent, the card-network rules for the card's fingerprint may forbid
//!    it (recorded with the rule's name); every decline is counted against the card.
//! 5. The answer decides, in one exhaustive `match`: succeeded, a soft decline rescheduled by
//!    the retry policy, a hard decline failed (or, when the payment's policy has
//!    `fallback_to_other_cards`, the next attempt charges another of the customer's saved
//!    cards: newest first, each card once, none sharing a tried card's fingerprint), the
//!    customer needed (paused), or the same attempt retried later when the processor could
//!    not answer.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flint_queue::Outcome;
use flint_shared::payment::decline::{DeclineClass, classify};
use flint_shared::payment::network::{Block, CardRules};
use flint_shared::payment::record::rfc3339;
use flint_shared::payment::request::RetryStrategy;
use flint_shared::payment::store::{JobAction, Store, StoreError, Versioned};
use flint_shared::payment::{EventKind, Payment, Status};
use flint_shared::processor::stripe::{StripeClient, intent_metadata};
use flint_shared::processor::{
    CardInfo, Decline, Intent, IntentRequest, IntentStatus, Processor, ProcessorError,
};
use serde::{Deserialize, Serialize};

/// The job the enqueuer pushes for a payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargeJob {
    pub payment_id: String,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn parse_ms(rfc: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Waits when the processor could not give an answer, or the store was unavailable.
const UNANSWERED_RETRY: Duration = Duration::from_secs(10);
const MISCONFIGURED_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Pipeline {
    pub store: Store,
    /// One processor client per tenant (each has its own processor account).
    pub processors: HashMap<String, StripeClient>,
    pub retry_delays: Vec<Duration>,
    /// Card-network rules per card fingerprint.
    pub rules: CardRules,
    /// Brand and fingerprint per (tenant, payment method). A payment method's card number never
    /// changes, so neither do these: a lookup is needed once per method, not once per attempt.
    pub cards: quick_cache::sync::Cache<(String, String), CardInfo>,
}

/// How many payment methods' card details a worker keeps (about 200 bytes each).
pub const CARD_CACHE_ENTRIES: usize = 100_000;

/// How an attempt ended, before it is written.
#[derive(Debug)]
enum Ending {
    Succeeded(Intent),
    Soft(Decline),
    Hard(Decline),
    /// A hard decline, and the payment allows another saved card: this one is next.
    HardSwitch(Decline, String),
    NeedsCustomer(String, Option<Decline>),
    Rejected(String),
    /// No definite answer: the same attempt runs again later.
    Unanswered(String),
    /// A card-network rule forbids charging this card now; nothing was sent.
    Blocked(Block),
    Misconfigured(String),
}

impl Pipeline {
    /// Runs one job to an outcome; storage trouble means "try this job again soon".
    pub async fn run(&self, job: &ChargeJob) -> Outcome {
        match self.attempt(&job.payment_id).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(payment_id = %job.payment_id, error = %e, "storage unavailable; the job runs again shortly");
                Outcome::RetryAt(SystemTime::now() + UNANSWERED_RETRY)
            }
        }
    }

    async fn attempt(&self, id: &str) -> Result<Outcome, StoreError> {
        let Some((tenant, mut current)) = self.store.get_any(id).await? else {
            tracing::info!(
                payment_id = id,
                "job for an unknown or expired payment; nothing to do"
            );
            return Ok(Outcome::Complete);
        };
        let mut payment = current.payment;
        let now = now_ms();
        let number = match payment.status {
            Status::Succeeded | Status::Failed | Status::Canceled | Status::Paused => {
                tracing::debug!(
                    payment_id = id,
                    status = payment.status.as_str(),
                    "duplicate job for a settled payment"
                );
                return Ok(Outcome::Complete);
            }
            Status::Pending if payment.cancel_requested => {
                payment.status = Status::Canceled;
                payment.next_attempt_at = None;
                payment.record(EventKind::Canceled, Some("cancel requested".into()), now);
                self.store
                    .transition(&current.version, &payment, JobAction::None, now)
                    .await?;
                return Ok(Outcome::Complete);
            }
            Status::Pending => {
                if let Some(due) = payment.next_attempt_at.as_deref().and_then(parse_ms)
                    && due > now + 1000
                {
                    return Ok(Outcome::RetryAt(at(due)));
                }
                let number = u32::try_from(payment.attempts.len()).unwrap_or(u32::MAX) + 1;
                payment.status = Status::Processing;
                payment.next_attempt_at = None;
                payment.attempts.push(flint_shared::payment::Attempt {
                    number,
                    started_at: rfc3339(now),
                    finished_at: None,
                    payment_method: payment.payment_method.clone(),
                    outcome: None,
                    decline_code: None,
                    advice_code: None,
                    processor_request_id: None,
                    charge: None,
                });
                payment.record(
                    EventKind::AttemptStarted,
                    Some(format!("attempt {number}")),
                    now,
                );
                if !self
                    .store
                    .transition(&current.version, &payment, JobAction::None, now)
                    .await?
                {
                    // Moved meanwhile (a cancel, a resume): look again at once.
                    return Ok(Outcome::RetryAt(SystemTime::now()));
                }
                current.version = next_version(&current.version);
                number
            }
            Status::Processing => {
                let number = u32::try_from(payment.attempts.len()).unwrap_or(0).max(1);
                tracing::warn!(
                    payment_id = id,
                    attempt = number,
                    "continuing an attempt whose worker stopped"
                );
                number
            }
        };

        let started = Instant::now();
        let (ending, method, intent_id, not_before) = self.charge(&tenant, &payment, number).await;
        metrics::histogram!("flint_charge_attempt_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let known = Versioned {
            payment,
            version: current.version,
        };
        self.finish(known, number, ending, method, intent_id, not_before)
            .await
    }

    /// Talks to the processor for attempt `number`; also returns the earliest time a network
    /// rule allows the next attempt.
    async fn charge(
        &self,
        tenant: &str,
        payment: &Payment,
        number: u32,
    ) -> (Ending, Option<String>, Option<String>, Option<i64>) {
        let (ending, method, intent, card) = self.charge_card(tenant, payment, number).await;
        let decline = match &ending {
            Ending::Soft(d) | Ending::Hard(d) | Ending::NeedsCustomer(_, Some(d)) => Some(d),
            _ => None,
        };
        let mut not_before = None;
        if let (Some(d), Some(card)) = (decline, &card) {
            match self
                .rules
                .record_decline(tenant, &card.fingerprint, &card.brand, d, now_ms())
                .await
            {
                Ok(Some(Block::Until { at_ms, rule })) => {
                    tracing::info!(payment_id = %payment.id, rule = %rule, "network rule delays the next attempt");
                    not_before = Some(at_ms);
                }
                Ok(Some(Block::Never { rule })) => {
                    tracing::info!(payment_id = %payment.id, rule = %rule, "network rule: this card is never retried");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(payment_id = %payment.id, error = %e, "could not record the decline for network rules")
                }
            }
        }
        let ending = match (ending, &method) {
            (Ending::Hard(d), Some(tried)) if payment.retry_policy.fallback_to_other_cards => {
                match self.other_card(tenant, payment, tried, card.as_ref()).await {
                    Some(next) => Ending::HardSwitch(d, next),
                    None => Ending::Hard(d),
                }
            }
            (ending, _) => ending,
        };
        (ending, method, intent, not_before)
    }

    /// The customer's next saved card to try after a hard decline: one not tried by this
    /// payment yet, whose card (fingerprint) was not tried either. None when there is none or
    /// the processor cannot list them now (the payment then fails as it would without fallback).
    async fn other_card(
        &self,
        tenant: &str,
        payment: &Payment,
        tried: &str,
        card: Option<&CardInfo>,
    ) -> Option<String> {
        let processor = self.processors.get(tenant)?;
        let saved = match processor.saved_cards(&payment.customer).await {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(payment_id = %payment.id, error = %e, "cannot list the customer's saved cards; no fallback");
                return None;
            }
        };
        let mut tried_ids: Vec<&str> = payment
            .attempts
            .iter()
            .filter_map(|a| a.payment_method.as_deref())
            .collect();
        tried_ids.push(tried);
        let mut tried_prints: Vec<String> = tried_ids
            .iter()
            .filter_map(|id| self.cards.get(&(tenant.to_owned(), (*id).to_owned())))
            .map(|c| c.fingerprint)
            .collect();
        tried_prints.extend(card.map(|c| c.fingerprint.clone()));
        for s in &saved {
            self.cards
                .insert((tenant.to_owned(), s.id.clone()), s.card.clone());
        }
        saved
            .into_iter()
            .find(|s| {
                !tried_ids.contains(&s.id.as_str()) && !tried_prints.contains(&s.card.fingerprint)
            })
            .map(|s| s.id)
    }

    async fn charge_card(
        &self,
        tenant: &str,
        payment: &Payment,
        number: u32,
    ) -> (Ending, Option<String>, Option<String>, Option<CardInfo>) {
        let Some(processor) = self.processors.get(tenant) else {
            return (
                Ending::Misconfigured(format!("no processor account for tenant {tenant}")),
                None,
                None,
                None,
            );
        };
        let method = match &payment.payment_method {
            Some(pm) => pm.clone(),
            None => match processor.default_payment_method(&payment.customer).await {
                Ok(Some(pm)) => pm,
                Ok(None) => {
                    return (
                        Ending::NeedsCustomer(
                            "the customer has no default payment method".into(),
                            None,
                        ),
                        None,
                        None,
                        None,
                    );
                }
                Err(e) => return (ending_of(e), None, None, None),
            },
        };
        // Concurrent attempts on one uncached method wait for a single lookup.
        let card = match self
            .cards
            .get_or_insert_async(
                &(tenant.to_owned(), method.clone()),
                processor.card(&method),
            )
            .await
        {
            Ok(card) => card,
            Err(e) => return (ending_of(e), Some(method), None, None),
        };
        match self
            .rules
            .check(tenant, &card.fingerprint, &card.brand, now_ms())
            .await
        {
            Ok(Some(block)) => return (Ending::Blocked(block), Some(method), None, None),
            Ok(None) => {}
            Err(e) => {
                return (
                    Ending::Unanswered(format!("card rules unavailable: {e}")),
                    Some(method),
                    None,
                    None,
                );
            }
        }
        let id = payment.id.as_str();
        // The charge the intent's latest charge would be if this attempt made none.
        let previous_charge = payment
            .attempts
            .iter()
            .filter(|a| a.number < number)
            .filter_map(|a| a.charge.clone())
            .next_back();
        let known = match &payment.processor_payment_intent {
            Some(pi) => Some(pi.clone()),
            // A payment whose earlier attempt reached the processor may have an intent whose id
            // was not recorded: its key must not be used again, so look for it first.
            None if number > 1 => match processor.find_intent(&payment.customer, id).await {
                Ok(found) => found.map(|intent| intent.id),
                Err(e) => return (ending_of(e), Some(method), None, Some(card)),
            },
            None => None,
        };
        let intent_id = match known {
            Some(pi) => pi,
            None => {
                // The payment's one PaymentIntent (key from the payment id), confirmed in the
                // same request: one round trip and one rate-limit turn for a first charge.
                let context = [
                    ("order_id", payment.context.order_id.as_ref()),
                    ("subscription_id", payment.context.subscription_id.as_ref()),
                    ("invoice_id", payment.context.invoice_id.as_ref()),
                ];
                let request = IntentRequest {
                    amount_minor: payment.amount.value,
                    currency: payment.amount.currency.clone(),
                    customer: payment.customer.clone(),
                    description: payment.description.clone(),
                    statement_descriptor_suffix: payment.statement_descriptor_suffix.clone(),
                    metadata: intent_metadata(id, &context, payment.metadata.entries()),
                    confirm_with: Some(method.clone()),
                };
                match processor
                    .create_intent(&request, &format!("{id}:intent"))
                    .await
                {
                    Ok(intent) => {
                        let pi = intent.id.clone();
                        return (ending_of_intent(intent), Some(method), Some(pi), Some(card));
                    }
                    // Whether the intent was created and confirmed, the processor's list of the
                    // customer's intents says (by `metadata[flint_payment_id]`).
                    Err(ProcessorError::Transient {
                        outcome_unknown: true,
                        reason,
                        ..
                    }) => {
                        let found = processor.find_intent(&payment.customer, id).await;
                        match found
                            .ok()
                            .flatten()
                            .map(|i| settled(i, previous_charge.as_ref()))
                        {
                            Some(Settled::Ended(ending, pi)) => {
                                return (*ending, Some(method), Some(pi), Some(card));
                            }
                            // Created, never confirmed: confirm it as any later attempt would.
                            Some(Settled::Unconfirmed(pi)) => pi,
                            Some(Settled::Unknown) | None => {
                                return (
                                    Ending::Unanswered(reason),
                                    Some(method),
                                    None,
                                    Some(card),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        let pi = match &e {
                            ProcessorError::Declined(d) | ProcessorError::NeedsCustomer(d) => {
                                d.intent_id.clone()
                            }
                            _ => None,
                        };
                        return (ending_of(e), Some(method), pi, Some(card));
                    }
                }
            }
        };
        let confirmed = processor
            .confirm_intent(&intent_id, &method, &format!("{id}:attempt:{number}"))
            .await;
        let ending = match confirmed {
            Ok(intent) => ending_of_intent(intent),
            // The confirm may have happened: the intent says what did.
            Err(ProcessorError::Transient {
                outcome_unknown: true,
                reason,
                ..
            }) => {
                let read = processor.retrieve_intent(&intent_id).await;
                match read.ok().map(|i| settled(i, previous_charge.as_ref())) {
                    Some(Settled::Ended(ending, _)) => *ending,
                    _ => Ending::Unanswered(reason),
                }
            }
            Err(e) => ending_of(e),
        };
        (ending, Some(method), Some(intent_id), Some(card))
    }

    /// Writes the attempt's ending with compare-and-set: first against the record as this
    /// worker last wrote it, then, on a conflict (a cancel requested meanwhile), re-reading.
    async fn finish(
        &self,
        known: Versioned,
        number: u32,
        ending: Ending,
        method: Option<String>,
        intent_id: Option<String>,
        not_before: Option<i64>,
    ) -> Result<Outcome, StoreError> {
        let id = known.payment.id.as_str().to_owned();
        let mut known = Some(known);
        for _ in 0..8 {
            let current = match known.take() {
                Some(current) => current,
                None => match self.store.get_any(&id).await? {
                    Some((_, current)) => current,
                    None => return Ok(Outcome::Complete),
                },
            };
            let mut p = current.payment;
            if p.status != Status::Processing {
                return Ok(Outcome::Complete);
            }
            let now = now_ms();
            if p.processor_payment_intent.is_none() {
                p.processor_payment_intent.clone_from(&intent_id);
            }
            let (outcome, action) =
                self.apply(&mut p, number, &ending, method.clone(), not_before, now);
            if self
                .store
                .transition(&current.version, &p, action, now)
                .await?
            {
                if p.status.is_final() || p.status == Status::Paused {
                    metrics::counter!("flint_payments_finished_total", "status" => p.status.as_str()).increment(1);
                }
                return Ok(outcome);
            }
        }
        Ok(Outcome::RetryAt(SystemTime::now()))
    }

    /// The new state of `p` after `ending`, and what the job does next.
    fn apply(
        &self,
        p: &mut Payment,
        number: u32,
        ending: &Ending,
        method: Option<String>,
        not_before: Option<i64>,
        now: i64,
    ) -> (Outcome, JobAction) {
        let (attempt_outcome, decline_class, decline) = match ending {
            Ending::Succeeded(_) => ("succeeded", "none", None),
            Ending::Soft(d) => ("soft_decline", DeclineClass::Soft.as_str(), Some(d)),
            Ending::Hard(d) | Ending::HardSwitch(d, _) => {
                ("hard_decline", DeclineClass::Hard.as_str(), Some(d))
            }
            Ending::NeedsCustomer(_, d) => (
                "needs_customer",
                DeclineClass::NeedsCustomer.as_str(),
                d.as_ref(),
            ),
            Ending::Rejected(_) => ("rejected", "none", None),
            Ending::Unanswered(_) => ("unknown", "none", None),
            Ending::Misconfigured(_) => ("misconfigured", "none", None),
            Ending::Blocked(_) => ("blocked_by_network_rule", "none", None),
        };
        metrics::counter!("flint_charge_attempts_total", "outcome" => attempt_outcome, "decline_class" => decline_class).increment(1);
        let definite = !matches!(ending, Ending::Unanswered(_) | Ending::Misconfigured(_));
        if definite && let Some(a) = p.attempts.iter_mut().find(|a| a.number == number) {
            a.finished_at = Some(rfc3339(now));
            a.outcome = Some(attempt_outcome.to_owned());
            a.payment_method = method.or_else(|| a.payment_method.clone());
            a.decline_code =
                decline.and_then(|d| d.decline_code.clone().or_else(|| Some(d.code.clone())));
            a.advice_code = decline.and_then(|d| d.advice_code.clone());
            a.processor_request_id = decline.and_then(|d| d.request_id.clone());
            // The charge this attempt made, so that a later attempt whose answer is lost can
            // tell its own charge from this one.
            a.charge = match ending {
                Ending::Succeeded(intent) => intent.latest_charge.clone(),
                _ => decline.and_then(|d| d.charge.clone()),
            };
        }
        let detail =
            decline.map(|d| format!("{} ({})", d.code, d.decline_code.as_deref().unwrap_or("-")));
        match ending {
            Ending::Succeeded(intent) => {
                p.status = Status::Succeeded;
                p.last_error = None;
                p.record(EventKind::Succeeded, intent.latest_charge.clone(), now);
                tracing::info!(payment_id = %p.id, attempt = number, "payment succeeded");
                (Outcome::Complete, JobAction::None)
            }
            Ending::Soft(_) => {
                p.record(EventKind::AttemptFailed, detail.clone(), now);
                p.last_error = detail.clone();
                let next = self.next_attempt_ms(p, number, now, not_before);
                self.retry_or_fail(p, number, next, Some("retries exhausted".into()), now)
            }
            Ending::HardSwitch(_, next) => {
                p.record(EventKind::AttemptFailed, detail.clone(), now);
                p.last_error.clone_from(&detail);
                if p.cancel_requested {
                    return self.cancel(p, now);
                }
                let previous = p.attempts.iter().find(|a| a.number == number);
                let previous = previous.and_then(|a| a.payment_method.clone());
                p.payment_method = Some(next.clone());
                p.status = Status::Pending;
                p.next_attempt_at = Some(rfc3339(now));
                p.record(
                    EventKind::PaymentMethodSwitched,
                    Some(format!(
                        "{next} after a hard decline of {}",
                        previous.as_deref().unwrap_or("the previous method")
                    )),
                    now,
                );
                tracing::info!(payment_id = %p.id, attempt = number, next = %next, "hard decline; trying another saved card");
                (Outcome::RetryAt(at(now)), JobAction::None)
            }
            Ending::Hard(_) | Ending::Rejected(_) => {
                let why = match ending {
                    Ending::Rejected(reason) => Some(reason.clone()),
                    _ => detail.clone(),
                };
                p.record(EventKind::AttemptFailed, why.clone(), now);
                p.status = Status::Failed;
                p.last_error = why.clone();
                p.record(EventKind::Failed, why, now);
                tracing::info!(payment_id = %p.id, attempt = number, "payment failed");
                (Outcome::Complete, JobAction::None)
            }
            Ending::NeedsCustomer(reason, _) => {
                let why = detail.clone().or_else(|| Some(reason.clone()));
                p.record(EventKind::AttemptFailed, why.clone(), now);
                p.last_error = why.clone();
                if p.cancel_requested {
                    return self.cancel(p, now);
                }
                p.status = Status::Paused;
                p.record(EventKind::Paused, why, now);
                tracing::info!(payment_id = %p.id, attempt = number, "payment paused: needs the customer");
                (Outcome::Complete, JobAction::None)
            }
            Ending::Blocked(block) => {
                metrics::counter!("flint_network_rule_blocks_total", "rule" => block.rule().to_owned()).increment(1);
                let why = Some(format!("blocked by network rule {}", block.rule()));
                p.record(EventKind::AttemptFailed, why.clone(), now);
                p.last_error.clone_from(&why);
                let next = match block {
                    Block::Until { at_ms, .. } => {
                        self.next_attempt_ms(p, number, now, Some(*at_ms))
                    }
                    Block::Never { .. } => None,
                };
                self.retry_or_fail(p, number, next, why, now)
            }
            Ending::Unanswered(reason) => {
                tracing::warn!(payment_id = %p.id, attempt = number, reason = %reason, "no definite answer; the same attempt runs again");
                (
                    Outcome::RetryAt(at(now) + UNANSWERED_RETRY),
                    JobAction::None,
                )
            }
            Ending::Misconfigured(reason) => {
                tracing::error!(payment_id = %p.id, attempt = number, reason = %reason, "processor misconfigured; the attempt waits");
                (
                    Outcome::RetryAt(at(now) + MISCONFIGURED_RETRY),
                    JobAction::None,
                )
            }
        }
    }

    /// After a failed attempt: pending until `next` when there is one (canceled instead if a
    /// cancel was requested), else failed with `why`.
    fn retry_or_fail(
        &self,
        p: &mut Payment,
        number: u32,
        next: Option<i64>,
        why: Option<String>,
        now: i64,
    ) -> (Outcome, JobAction) {
        match next {
            Some(_) if p.cancel_requested => self.cancel(p, now),
            Some(due) => {
                p.status = Status::Pending;
                p.next_attempt_at = Some(rfc3339(due));
                tracing::info!(payment_id = %p.id, attempt = number, next_attempt_at = %rfc3339(due), "attempt failed; retry scheduled");
                (Outcome::RetryAt(at(due)), JobAction::None)
            }
            None => {
                p.status = Status::Failed;
                tracing::info!(payment_id = %p.id, attempt = number, reason = why.as_deref().unwrap_or(""), "attempt failed; no retry left");
                p.record(EventKind::Failed, why, now);
                (Outcome::Complete, JobAction::None)
            }
        }
    }

    fn cancel(&self, p: &mut Payment, now: i64) -> (Outcome, JobAction) {
        p.status = Status::Canceled;
        p.next_attempt_at = None;
        p.record(
            EventKind::Canceled,
            Some("cancel requested during an attempt".into()),
            now,
        );
        (Outcome::Complete, JobAction::None)
    }

    /// When the next attempt may run, if the policy allows one.
    fn next_attempt_ms(
        &self,
        p: &Payment,
        number: u32,
        now: i64,
        not_before: Option<i64>,
    ) -> Option<i64> {
        let policy = p.retry_policy;
        if policy.strategy == RetryStrategy::None || number >= policy.max_attempts {
            return None;
        }
        let delay = self
            .retry_delays
            .get(number as usize - 1)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(3600));
        let due = (now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
            .max(not_before.unwrap_or(0));
        let start = p
            .charge_at
            .as_deref()
            .and_then(parse_ms)
            .or_else(|| parse_ms(&p.created_at))
            .unwrap_or(now);
        let window_end = start + i64::from(policy.window_hours) * 3_600_000;
        (due <= window_end).then_some(due)
    }
}

/// The version a record has after one transition from `version` (transition.lua adds one).
fn next_version(version: &str) -> String {
    version
        .parse::<u64>()
        .map_or_else(|_| version.to_owned(), |v| (v + 1).to_string())
}

/// What an intent read after a lost answer says about the attempt.
enum Settled {
    /// A definite ending, and the intent's id.
    Ended(Box<Ending>, String),
    /// No charge since `previous_charge` and nothing in flight: the attempt did not happen.
    Unconfirmed(String),
    /// In flight or unclear: ask again later.
    Unknown,
}

/// The attempt happened when the intent succeeded or its latest charge is new since
/// `previous_charge` (the charge of the payment's last attempt that made one).
fn settled(intent: Intent, previous_charge: Option<&String>) -> Settled {
    let id = intent.id.clone();
    if intent.status == IntentStatus::Succeeded {
        return Settled::Ended(Box::new(Ending::Succeeded(intent)), id);
    }
    if intent.latest_charge.is_some() && intent.latest_charge.as_ref() != previous_charge {
        let charge = intent.latest_charge.clone();
        let mut ending = ending_of_intent(intent);
        if let Ending::Soft(d) | Ending::Hard(d) | Ending::NeedsCustomer(_, Some(d)) = &mut ending {
            d.charge = charge;
        }
        return Settled::Ended(Box::new(ending), id);
    }
    match intent.status {
        IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation => {
            Settled::Unconfirmed(id)
        }
        _ => Settled::Unknown,
    }
}

fn decline_ending(d: Decline) -> Ending {
    match classify(&d) {
        DeclineClass::Soft => Ending::Soft(d),
        DeclineClass::Hard => Ending::Hard(d),
        DeclineClass::NeedsCustomer => Ending::NeedsCustomer(d.message.clone(), Some(d)),
    }
}

fn ending_of_intent(intent: Intent) -> Ending {
    match intent.status {
        IntentStatus::Succeeded => Ending::Succeeded(intent),
        IntentStatus::RequiresAction => {
            Ending::NeedsCustomer("authentication required".into(), None)
        }
        IntentStatus::RequiresPaymentMethod => match intent.last_error {
            Some(d) => decline_ending(d),
            None => Ending::Unanswered("intent awaits a payment method".into()),
        },
        IntentStatus::RequiresConfirmation
        | IntentStatus::Processing
        | IntentStatus::RequiresCapture
        | IntentStatus::Canceled
        | IntentStatus::Other(_) => {
            Ending::Unanswered(format!("intent in status {:?}", intent.status))
        }
    }
}

fn ending_of(e: ProcessorError) -> Ending {
    match e {
        ProcessorError::Transient { reason, .. } => Ending::Unanswered(reason),
        ProcessorError::Declined(d) => decline_ending(d),
        ProcessorError::NeedsCustomer(d) => Ending::NeedsCustomer(d.message.clone(), Some(d)),
        ProcessorError::Rejected {
            status,
            code,
            message,
            ..
        } => Ending::Rejected(format!("{status} {code}: {message}")),
        ProcessorError::Misconfigured { status, message } => {
            Ending::Misconfigured(format!("{status}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
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
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
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
            _ => panic!("expected an ending"),
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
        assert!(matches!(s, Settled::Unconfirmed(pi) if pi == "pi_1"));
        // Created, never confirmed.
        let s = settled(
            intent(IntentStatus::RequiresPaymentMethod, None, false),
            None,
        );
        assert!(matches!(s, Settled::Unconfirmed(_)));
        // Still in flight: nothing can be concluded.
        let s = settled(intent(IntentStatus::Processing, None, false), None);
        assert!(matches!(s, Settled::Unknown));
    }
}
