//! The charge pipeline: one job is one attempt of one payment.
//!
//! - [`decide`]: the decisions, as pure functions (when a job starts, what a result means,
//!   what a job reports when someone else moved its payment);
//! - [`apply`]: how a decision changes the record;
//! - `attempt`: the attempt's conversation with the processor (settle a continued attempt
//!   first, the card, the network rules, the charge);
//! - `reconcile`: what the processor's records say an attempt did;
//! - `fallback`: another saved card after a hard decline;
//! - [`ending`]: how an attempt ended, in Flint's terms.
//!
//! Here, the edges: read the payment, write each step with one compare-and-set, and tell the
//! queue when the job runs next. Every write that loses its race re-reads the record, and what
//! the job reports is then derived from the record as read ([`decide::outcome_of_record`]):
//! a job never completes while its payment still needs it.

pub mod apply;
mod attempt;
mod card;
pub mod decide;
pub mod ending;
mod fallback;
mod reconcile;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flint_queue::{LostLeases, Outcome};
use flint_shared::payment::job::ChargeJob;
use flint_shared::payment::network::{CardRules, NetworkRule};
use flint_shared::payment::record::AttentionReason;
use flint_shared::payment::store::{JobAction, Store, StoreError, Versioned};
use flint_shared::payment::{Payment, Status};
use flint_shared::processor::{CardInfo, Processor};
use flint_shared::telemetry::catalogue;
use flint_shared::time::Timestamp;

use apply::{apply, apply_start, require_attention};
use attempt::Step;
use card::Prepared;
use decide::{Attempted, Decision, Next, Policy, Start, decide, outcome_of_record, start};
use ending::Ending;

/// How many payment methods' card details a worker keeps (about 200 bytes each).
pub const CARD_CACHE_ENTRIES: usize = 100_000;

/// How soon a job runs again when Redis could not be used.
const STORE_RETRY: Duration = Duration::from_secs(10);

/// Compare-and-set rounds before a job gives up for now and runs again at once.
const CAS_ROUNDS: usize = 8;

/// Charges payments through processor `P` (one client per tenant: each has its own account).
#[derive(Debug)]
pub struct Pipeline<P> {
    store: Store,
    processors: HashMap<String, P>,
    policy: Policy,
    rules: CardRules,
    /// Brand and fingerprint per (tenant, payment method). A payment method's card number never
    /// changes, so neither do these: a lookup is needed once per method, not once per attempt.
    cards: quick_cache::sync::Cache<(String, String), CardInfo>,
}

impl<P: Processor> Pipeline<P> {
    pub fn new(
        store: Store,
        processors: HashMap<String, P>,
        policy: Policy,
        rules: CardRules,
    ) -> Pipeline<P> {
        Pipeline {
            store,
            processors,
            policy,
            rules,
            cards: quick_cache::sync::Cache::new(CARD_CACHE_ENTRIES),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one delivery of a payment's job; storage trouble means "run this job again soon".
    pub async fn run(&self, job: &ChargeJob, lost: LostLeases) -> Outcome {
        match self.run_job(job, lost.0).await {
            Ok(next) => outcome(next),
            Err(e) => {
                tracing::warn!(payment_id = %job.payment_id, error = %e, "storage failed or did not confirm the write; the job runs again shortly");
                Outcome::RetryAt(Timestamp::now().plus(STORE_RETRY).system_time())
            }
        }
    }

    async fn run_job(&self, job: &ChargeJob, lost_leases: u32) -> Result<Next, StoreError> {
        let id = job.payment_id.as_str();
        let Some((tenant, current)) = self.store.get_any(id).await? else {
            tracing::info!(
                payment_id = id,
                "job for an unknown or expired payment; nothing to do"
            );
            return Ok(Next::Done);
        };
        let now = Timestamp::now();
        let start = start(&current.payment, lost_leases, &self.policy, now);
        let (number, continuation) = match start {
            Start::Done => return Ok(Next::Done),
            Start::Wait(at) => return Ok(Next::At(at)),
            Start::Begin(n) => (n, false),
            Start::Continue(n) => (n, true),
            Start::Expire | Start::Cancel | Start::GiveUp => (0, false),
        };
        // A new attempt at a payment without a card of its own finds the customer's default
        // first, so that the start records it (`card.rs`).
        let prepared = match (start, &current.payment.payment_method) {
            (Start::Begin(_), None) => match self.processors.get(&tenant) {
                Some(processor) => Some(self.prepare(processor, &tenant, &current.payment).await),
                None => None,
            },
            _ => None,
        };
        let default_method = match &prepared {
            Some(Prepared::Card(method)) => Some(method.clone()),
            _ => None,
        };
        // The lookups take time: the start, its send window and its event are of now.
        let now = match prepared {
            Some(_) => Timestamp::now(),
            None => now,
        };
        let mut p = current.payment.clone();
        let mut current = match apply_start(&mut p, start, default_method, &self.policy, now) {
            None => current,
            Some(next) => match self
                .store
                .transition(&current, &p, JobAction::None, now)
                .await?
            {
                Some(version) => {
                    self.started(&p, start, lost_leases);
                    if next == Next::Done {
                        return Ok(Next::Done);
                    }
                    Versioned {
                        payment: p,
                        version,
                        tenant: current.tenant,
                        keeps_created: false,
                    }
                }
                // Moved meanwhile (a cancel, a resume): the record says what comes next.
                None => return self.reread(id).await,
            },
        };
        if continuation {
            tracing::warn!(
                payment_id = id,
                attempt = number,
                lost_leases,
                "continuing an attempt whose first try did not finish; settling it first"
            );
        }
        let Some(processor) = self.processors.get(&tenant) else {
            let attempted = Attempted {
                ending: Ending::Unanswered(
                    flint_shared::payment::record::Unanswered::ProcessorMisconfigured,
                    format!("no processor account for tenant {tenant}"),
                ),
                method: None,
                intent_id: None,
                card_block: None,
            };
            return self.finish(current, number, attempted).await;
        };
        if let Some(Prepared::Ended(ending, method)) = prepared {
            let attempted = Attempted {
                ending: *ending,
                method,
                intent_id: current.payment.processor_payment_intent.clone(),
                card_block: None,
            };
            return self.finish(current, number, attempted).await;
        }
        let started = Instant::now();
        let step = self
            .attempt(processor, &tenant, &mut current, number, continuation)
            .await?;
        metrics::histogram!(catalogue::CHARGE_ATTEMPT_DURATION.name)
            .record(started.elapsed().as_secs_f64());
        match step {
            Step::Moved(p) => Ok(outcome_of_record(&p, &self.policy, Timestamp::now())),
            Step::Attempted(attempted) => self.finish(current, number, attempted).await,
        }
    }

    /// Logs and counts what a job's start wrote.
    fn started(&self, p: &Payment, start: Start, lost_leases: u32) {
        match start {
            Start::Expire => {
                tracing::info!(payment_id = %p.id, "paused payment not resumed in time; failed");
                finished(p.status);
            }
            Start::Cancel => {
                tracing::info!(payment_id = %p.id, "canceled before its next attempt");
                finished(p.status);
            }
            Start::GiveUp => {
                tracing::error!(payment_id = %p.id, lost_leases, "the attempt keeps stopping its worker; the payment requires attention");
                attention(AttentionReason::WorkerLost);
            }
            Start::Begin(_) | Start::Continue(_) | Start::Done | Start::Wait(_) => {}
        }
    }

    /// Writes attempt `number`'s result with compare-and-set: first against the record as this
    /// job last wrote it, then, on a conflict (a cancel requested meanwhile, or another worker
    /// that moved the payment), against the record as re-read.
    async fn finish(
        &self,
        mut current: Versioned,
        number: u32,
        attempted: Attempted,
    ) -> Result<Next, StoreError> {
        let (outcome_label, class) = attempted.ending.labels();
        metrics::counter!(catalogue::CHARGE_ATTEMPTS.name, "outcome" => outcome_label, "decline_class" => class)
            .increment(1);
        if let Ending::Blocked(block) = &attempted.ending {
            metrics::counter!(catalogue::NETWORK_RULE_BLOCKS.name, "rule" => block.rule().as_str().to_owned())
                .increment(1);
        }
        // The attempt's card and send window as this run knew them: its result holds only for
        // them. Another worker that continued the attempt meanwhile (a new window) may have
        // sent a request this run knows nothing of, so the result is not written over its
        // record; the job runs again and settles the attempt from the processor's records.
        let basis = window(&current.payment);
        for _ in 0..CAS_ROUNDS {
            let now = Timestamp::now();
            let still_ours = current.payment.status == Status::Processing
                && current
                    .payment
                    .open_attempt()
                    .is_some_and(|a| a.number == number);
            if !still_ours {
                tracing::info!(payment_id = %current.payment.id, attempt = number, status = current.payment.status.as_str(), "the payment moved on while this attempt ran; its result is not written");
                return Ok(outcome_of_record(&current.payment, &self.policy, now));
            }
            if window(&current.payment) != basis {
                tracing::info!(payment_id = %current.payment.id, attempt = number, "another worker continued this attempt meanwhile; it is settled again");
                return Ok(Next::At(now));
            }
            let mut p = current.payment.clone();
            let decision = decide(&p, number, &attempted, &self.policy, now);
            let next = apply(&mut p, number, &attempted, &decision, now);
            if self
                .store
                .transition(&current, &p, JobAction::None, now)
                .await?
                .is_some()
            {
                self.decided(&p, number, &attempted, &decision);
                return Ok(next);
            }
            match self.store.get_any(p.id.as_str()).await? {
                Some((_, reread)) => current = reread,
                None => return Ok(Next::Done),
            }
        }
        Ok(Next::At(Timestamp::now()))
    }

    /// Logs and counts a written decision.
    fn decided(&self, p: &Payment, number: u32, attempted: &Attempted, decision: &Decision) {
        let id = &p.id;
        match decision {
            Decision::Succeed => {
                tracing::info!(payment_id = %id, attempt = number, "payment succeeded")
            }
            Decision::Retry(at) => {
                tracing::info!(payment_id = %id, attempt = number, next_attempt_at = %at, "attempt failed; retry scheduled")
            }
            Decision::Switch(next) => {
                tracing::info!(payment_id = %id, attempt = number, next = %next, "hard decline; trying another saved card")
            }
            Decision::Fail(why) => {
                tracing::info!(payment_id = %id, attempt = number, reason = %why, "payment failed")
            }
            Decision::Pause(why, _) => {
                tracing::info!(payment_id = %id, attempt = number, reason = %why, "payment paused: needs the customer")
            }
            Decision::Cancel => {
                tracing::info!(payment_id = %id, attempt = number, "payment canceled")
            }
            Decision::AskAgain(at, unresolved) => {
                tracing::warn!(payment_id = %id, attempt = number, reason = %unresolved.reason, tries = unresolved.tries, next_look_at = %at, "no definite answer; the same attempt is asked again")
            }
            Decision::Attention(reason, detail) => {
                tracing::error!(payment_id = %id, attempt = number, reason = reason.as_str(), detail = %detail, "the payment requires attention");
                attention(*reason);
            }
        }
        let _ = attempted;
        if p.status.is_final() || p.status == Status::Paused {
            finished(p.status);
        }
    }

    /// What a job reports after losing a race for its payment.
    async fn reread(&self, id: &str) -> Result<Next, StoreError> {
        Ok(match self.store.get_any(id).await? {
            Some((_, v)) => outcome_of_record(&v.payment, &self.policy, Timestamp::now()),
            None => Next::Done,
        })
    }

    /// After an attempt panicked: the payment requires attention (its attempt stays open; a
    /// resume settles it). Returns whether that was written.
    pub async fn internal_error(&self, job: &ChargeJob, detail: &str) -> Result<bool, StoreError> {
        for _ in 0..CAS_ROUNDS {
            let Some((_, current)) = self.store.get_any(job.payment_id.as_str()).await? else {
                return Ok(true);
            };
            let mut p = current.payment.clone();
            if p.status.is_final() || p.status == Status::RequiresAttention {
                return Ok(true);
            }
            let now = Timestamp::now();
            require_attention(
                &mut p,
                AttentionReason::InternalError,
                format!("the attempt failed inside Flint: {detail}"),
                now,
            );
            if self
                .store
                .transition(&current, &p, JobAction::Unschedule, now)
                .await?
                .is_some()
            {
                attention(AttentionReason::InternalError);
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The open attempt's card and send window: what another try of it changes when it opens a
/// window of its own.
pub(super) fn window(p: &Payment) -> Option<(Option<String>, Option<Timestamp>)> {
    p.open_attempt()
        .map(|a| (a.payment_method.clone(), a.send_until))
}

fn outcome(next: Next) -> Outcome {
    match next {
        Next::Done => Outcome::Complete,
        Next::At(at) => Outcome::RetryAt(at.system_time()),
    }
}

/// Sets the charge counters to zero for every label value they can take, so that ratios and
/// `increase()` have data from the first scrape.
pub fn zero_metrics() {
    for (outcome, class) in Ending::label_sets() {
        catalogue::zero(
            catalogue::CHARGE_ATTEMPTS,
            &[("outcome", outcome), ("decline_class", class)],
        );
    }
    for rule in NetworkRule::KNOWN {
        catalogue::zero(catalogue::NETWORK_RULE_BLOCKS, &[("rule", rule.as_str())]);
    }
    for status in Status::ALL.into_iter().filter(|s| s.is_final()) {
        catalogue::zero(catalogue::PAYMENTS_FINISHED, &[("status", status.as_str())]);
    }
    for reason in AttentionReason::ALL {
        catalogue::zero(
            catalogue::PAYMENTS_REQUIRING_ATTENTION_TOTAL,
            &[("reason", reason.as_str())],
        );
    }
}

fn finished(status: Status) {
    metrics::counter!(catalogue::PAYMENTS_FINISHED.name, "status" => status.as_str()).increment(1);
}

fn attention(reason: AttentionReason) {
    metrics::counter!(catalogue::PAYMENTS_REQUIRING_ATTENTION_TOTAL.name, "reason" => reason.as_str())
        .increment(1);
}
