//! The charge pipeline driven by the test itself, for interleavings no luck would produce: a
//! worker that stops mid-attempt and one that takes over, a handler held between its write and
//! its acknowledgement, a processor that answers only when told.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use flint_queue::{LostLeases, Outcome, Queue, QueueConfig};
use flint_shared::ids::PaymentId;
use flint_shared::payment::Payment;
use flint_shared::payment::decline::{Decline, DeclineCode};
use flint_shared::payment::job::ChargeJob;
use flint_shared::payment::network::CardRules;
use flint_shared::payment::store::{JobAction, Store};
use flint_shared::processor::stripe::StripeClient;
use flint_shared::processor::{Intent, IntentStatus, Processor, ProcessorError};
use flint_shared::time::Timestamp;
use flint_testkit::processor::ScriptedProcessor;
use flint_worker::charge::Pipeline;
use flint_worker::charge::apply::apply_start;
use flint_worker::charge::decide::{Policy, Start};
use tokio::sync::oneshot;

use crate::harness::Stack;

/// The pipeline `flint worker` builds, against the stack's Redis and sandbox.
pub fn stripe(s: &Stack) -> Arc<Pipeline<StripeClient>> {
    Arc::new(flint_worker::stripe_pipeline(&s.config).unwrap())
}

/// The pipeline with a scripted processor for tenant `acme`.
pub fn scripted(s: &Stack, processor: &ScriptedProcessor) -> Arc<Pipeline<ScriptedProcessor>> {
    scripted_with(s, processor, flint_worker::policy(&s.config))
}

/// The same, deciding by `policy`.
pub fn scripted_with(
    s: &Stack,
    processor: &ScriptedProcessor,
    policy: Policy,
) -> Arc<Pipeline<ScriptedProcessor>> {
    Arc::new(Pipeline::new(
        flint_worker::store(&s.config).unwrap(),
        HashMap::from([("acme".to_owned(), processor.clone())]),
        policy,
        CardRules::new(
            flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
            "charges",
        ),
    ))
}

pub fn store(s: &Stack) -> Store {
    flint_worker::store(&s.config).unwrap()
}

pub async fn queue(s: &Stack) -> Queue {
    Queue::connect(
        &s.redis.url(),
        QueueConfig::new("charges").with_lease(Duration::from_secs(2)),
    )
    .await
    .unwrap()
}

pub fn job(id: &str) -> ChargeJob {
    ChargeJob::new(PaymentId::parse(id).unwrap())
}

/// The charge queue of every partition of the stack (one unless it has several).
pub async fn partition_queues(s: &Stack) -> Vec<Queue> {
    let partitions =
        flint_shared::partition::Partitions::new(&s.config.queue.name, s.config.queue.partitions);
    let mut queues = Vec::new();
    for (p, tag) in (0u16..).zip(partitions.tags()) {
        let config = QueueConfig::new(&s.config.queue.name)
            .in_partition(p, tag.clone())
            .with_lease(Duration::from_secs(2));
        queues.push(Queue::connect(&s.redis.url(), config).await.unwrap());
    }
    queues
}

/// Queue workers (one per partition) running the production handler, until the returned
/// sender is dropped or fired.
pub async fn worker<P: Processor + 'static>(
    s: &Stack,
    pipeline: Arc<Pipeline<P>>,
) -> oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for queue in partition_queues(s).await {
        let worker = WorkerBuilder::new("test-worker")
            .backend(queue.backend::<ChargeJob>())
            .data(pipeline.clone())
            .concurrency(4)
            .build(flint_worker::charge_job::<P>);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            worker
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                    Ok::<(), std::io::Error>(())
                })
                .await
        });
    }
    // Fired or dropped, the oneshot stops every partition's worker.
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rx.await;
        let _ = stop.send(true);
    });
    tx
}

/// Puts payment `id` into its attempt 1 as a worker's start does, then lets `change` adjust the
/// record as that worker's later writes would (its card, its intent), in one compare-and-set.
pub async fn mid_attempt(s: &Stack, id: &str, change: impl FnOnce(&mut Payment)) {
    let store = store(s);
    let (_, current) = store.get_any(id).await.unwrap().unwrap();
    let mut p = current.payment.clone();
    let now = Timestamp::now();
    let number = u32::try_from(p.attempts.len()).unwrap() + 1;
    apply_start(
        &mut p,
        Start::Begin(number),
        None,
        &flint_worker::policy(&s.config),
        now,
    );
    change(&mut p);
    let written = store
        .transition(&current, &p, JobAction::None, now)
        .await
        .unwrap();
    assert!(
        written.is_some(),
        "the payment moved while the test set it up"
    );
}

/// Runs one delivery of payment `id`'s job, as a worker whose previous delivery lost its lease.
pub async fn deliver<P: Processor>(pipeline: &Pipeline<P>, id: &str) -> Outcome {
    pipeline.run(&job(id), LostLeases(1)).await
}

/// A PaymentIntent as the processor would answer it: `pi_1` charged with `charge` (the charge
/// of a decline when `declined` carries one).
pub fn intent(status: IntentStatus, charge: &str, declined: Option<Decline>) -> Intent {
    Intent {
        id: "pi_1".into(),
        status,
        amount_minor: 2500,
        payment_method: Some("pm_1".into()),
        latest_charge: Some(charge.into()),
        metadata: Default::default(),
        last_error: declined,
    }
}

/// `pi_1`, succeeded.
pub fn charged() -> Intent {
    intent(IntentStatus::Succeeded, "ch_1", None)
}

/// A soft decline (insufficient funds) of `pi_1` with its charge.
pub fn soft_decline(charge: &str) -> Decline {
    Decline {
        code: DeclineCode::CardDeclined,
        decline_code: Some(DeclineCode::InsufficientFunds),
        advice_code: None,
        network_advice_code: None,
        message: "Your card has insufficient funds.".into(),
        charge: Some(charge.into()),
        intent_id: Some("pi_1".into()),
        request_id: None,
    }
}

/// Authentication required: the customer must come back.
pub fn needs_customer() -> ProcessorError {
    ProcessorError::NeedsCustomer(Box::new(Decline {
        code: DeclineCode::AuthenticationRequired,
        decline_code: Some(DeclineCode::AuthenticationRequired),
        advice_code: None,
        network_advice_code: None,
        message: "This payment requires authentication.".into(),
        charge: None,
        intent_id: Some("pi_1".into()),
        request_id: None,
    }))
}

/// An answer that never came (a timeout after the request left).
pub fn unknown() -> ProcessorError {
    ProcessorError::Transient {
        reason: "timeout".into(),
        outcome_unknown: true,
        request_id: None,
    }
}

/// The processor refused the request itself.
pub fn rejected() -> ProcessorError {
    ProcessorError::Rejected {
        status: 400,
        code: "parameter_invalid_integer".into(),
        message: "bad".into(),
        param: None,
        request_id: None,
    }
}
