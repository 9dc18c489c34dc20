//! The interleavings in which a payment used to be stranded or charged twice, each driven
//! exactly: a resume between a pause and its acknowledgement, a worker that loses its lease
//! mid-attempt while another takes over, an attempt continued after the processor forgot its
//! idempotency keys, and a continued attempt that used to end before it settled.

use std::sync::Arc;

use apalis::prelude::{Data, WorkerBuilder, WorkerBuilderExt};
use flint_queue::{LostLeases, Outcome};
use flint_shared::payment::decline::{Decline, DeclineCode};
use flint_shared::payment::job::ChargeJob;
use flint_shared::payment::network::{CardOutcome, CardRules};
use flint_shared::payment::record::{Attempt, AttemptOutcome};
use flint_shared::processor::stripe::StripeClient;
use flint_shared::processor::{Intent, IntentStatus, Processor, ProcessorError};
use flint_shared::time::Timestamp;
use flint_testkit::processor::{Gate, Op, ScriptedProcessor};
use flint_worker::charge::Pipeline;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::harness::*;
use crate::pipelines::{self, deliver, mid_attempt, stripe};

#[tokio::test]
async fn a_resume_between_the_pause_and_its_acknowledgement_is_not_lost() {
    let s = api_only(vec![100]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_authenticationRequired")
        .await;
    // The production handler, held after its attempt (the payment written `paused`) and before
    // it returns, that is before its acknowledgement.
    let finished = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let (f, r) = (Arc::clone(&finished), Arc::clone(&release));
    let handler = move |job: ChargeJob, lost: LostLeases, p: Data<Arc<Pipeline<StripeClient>>>| {
        let (f, r) = (Arc::clone(&f), Arc::clone(&r));
        async move {
            let outcome = flint_worker::charge_job(job, lost, p).await;
            f.notify_one();
            r.acquire().await.unwrap().forget();
            outcome
        }
    };
    let queue = pipelines::queue(&s).await;
    let worker = WorkerBuilder::new("held")
        .backend(queue.backend::<ChargeJob>())
        .data(stripe(&s))
        .concurrency(4)
        .build(handler);
    tokio::spawn(async move { worker.run().await });

    let id = s.pay(&cus, Some(&pm), json!({})).await;
    finished.notified().await;
    assert_eq!(s.payment(&id).await["status"], "paused");
    let good = s
        .sandbox
        .post("/v1/payment_methods/pm_card_visa/attach")
        .param("customer", &cus)
        .send()
        .await
        .id();
    let resumed = s
        .post(
            &format!("/v1/off_session_payments/{id}/resume"),
            json!({"payment_method": good}),
        )
        .await;
    assert_eq!(resumed["status"], "pending");
    release.add_permits(100);
    let p = s.settles(&id, &["succeeded"]).await;
    assert_eq!(p["attempts"].as_array().unwrap().len(), 2);
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
    let intents = s.intents(&cus).await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["status"], "succeeded");
}

fn soft_decline(charge: &str) -> Decline {
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

fn intent(status: IntentStatus, charge: &str, declined: Option<Decline>) -> Intent {
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

#[tokio::test]
async fn a_worker_that_loses_its_lease_mid_attempt_leaves_the_payment_a_way_forward() {
    let s = api_only(vec![300]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    // Worker A sends the first charge; the answer (a soft decline) comes back only when told.
    let a = ScriptedProcessor::new();
    let a_answers = Gate::new();
    a.create_intent_at(
        &a_answers,
        Err(ProcessorError::Declined(Box::new(soft_decline("ch_1")))),
    );
    let pipeline_a = pipelines::scripted(&s, &a);
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline_a), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    a_answers.reached().await;
    // A stalls past its lease: worker B takes the job over and continues the attempt, reading
    // the processor's records first; they answer only when told.
    let b = ScriptedProcessor::new();
    let b_reads = Gate::new();
    b.find_intent_at(
        &b_reads,
        Ok(Some(intent(
            IntentStatus::RequiresPaymentMethod,
            "ch_1",
            Some(soft_decline("ch_1")),
        ))),
    );
    // The next attempt, once it is due.
    b.confirm_intent(Ok(intent(IntentStatus::Succeeded, "ch_2", None)));
    let _worker_b = pipelines::worker(&s, pipelines::scripted(&s, &b)).await;
    b_reads.reached().await;
    // A wakes up first and writes the decline: `pending`, the next attempt in 300 ms.
    a_answers.release();
    let a_outcome = worker_a.await.unwrap();
    assert!(matches!(a_outcome, Outcome::RetryAt(_)), "{a_outcome:?}");
    assert_eq!(s.payment(&id).await["status"], "pending");
    // B settles the same decline, loses its compare-and-set to A's write, and must report what
    // the record needs: the job at the next attempt, not done.
    b_reads.release();
    let p = s.settles(&id, &["succeeded"]).await;
    let attempts = p["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{p:#}");
    assert_eq!(attempts[0]["outcome"], "soft_decline");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(a.calls_of(Op::CreateIntent).len(), 1);
    assert!(
        b.calls_of(Op::CreateIntent).is_empty(),
        "B never re-sent the charge"
    );
    assert_eq!(
        b.calls_of(Op::FindIntent).len(),
        1,
        "B read before anything else"
    );
}

/// The request a worker sends for a payment's first charge, sent by the test as a worker that
/// then stopped would have: the processor charged, Flint never heard.
async fn charged_behind_flints_back(s: &Stack, id: &str, customer: &str, pm: &str) -> Value {
    let r = s
        .sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "2500"),
            ("currency", "usd"),
            ("customer", customer),
            ("payment_method", pm),
            ("confirm", "true"),
            ("off_session", "true"),
            ("metadata[flint_payment_id]", id),
        ])
        .idempotency_key(&format!("{id}:intent"))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "succeeded");
    r.body
}

#[tokio::test]
async fn a_first_charge_continued_after_the_processor_forgot_its_key_is_not_sent_again() {
    let s = api_only(vec![100]).await;
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    // A worker started the attempt, its create-and-confirm charged the card, and it stopped
    // before it heard; a day later (say, after a day of 401s) the processor has forgotten the
    // key.
    mid_attempt(&s, &id, |_| {}).await;
    charged_behind_flints_back(&s, &id, &cus, &pm).await;
    assert!(s.sandbox.expire_idempotency_keys().await > 0);
    let outcome = deliver(&stripe(&s), &id).await;
    assert_eq!(outcome, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "succeeded", "{p:#}");
    let intents = s.intents(&cus).await;
    assert_eq!(intents.len(), 1, "no second PaymentIntent");
    assert_eq!(p["processor_payment_intent"], intents[0]["id"]);
}

#[tokio::test]
async fn a_confirm_continued_after_the_processor_forgot_its_key_settles_as_charged() {
    let s = api_only(vec![100]).await;
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    // The payment's intent exists from attempt 1 (declined); attempt 2's confirm charged and
    // its worker stopped before it heard; then the processor forgot the key.
    let created = s
        .sandbox
        .post("/v1/payment_intents")
        .params(&[
            ("amount", "2500"),
            ("currency", "usd"),
            ("customer", &cus),
            ("metadata[flint_payment_id]", &id),
        ])
        .send()
        .await;
    let pi = created.id();
    mid_attempt(&s, &id, |p| {
        p.attempts[0].finished_at = Some(Timestamp::now());
        p.attempts[0].outcome = Some(AttemptOutcome::SoftDecline);
        p.attempts
            .push(Attempt::new(2, Some(pm.clone()), Timestamp::now()));
        p.processor_payment_intent = Some(pi.clone());
    })
    .await;
    let confirmed = s
        .sandbox
        .post(&format!("/v1/payment_intents/{pi}/confirm"))
        .params(&[("payment_method", &pm), ("off_session", "true")])
        .idempotency_key(&format!("{id}:attempt:2"))
        .send()
        .await;
    assert_eq!(confirmed.body["status"], "succeeded");
    s.sandbox.expire_idempotency_keys().await;
    assert_eq!(deliver(&stripe(&s), &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "succeeded", "charged, so never failed: {p:#}");
    assert_eq!(p["attempts"][1]["charge"], confirmed.body["latest_charge"]);
}

#[tokio::test]
async fn a_continued_attempt_settles_before_its_customer_or_its_card_can_end_it() {
    let s = api_only(vec![100]).await;

    // Charged on the customer's default card, which the customer has removed since.
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_visa").await;
    let id = s.pay(&cus, None, json!({})).await;
    mid_attempt(&s, &id, |p| p.attempts[0].payment_method = Some(pm.clone())).await;
    charged_behind_flints_back(&s, &id, &cus, &pm).await;
    let detached = s
        .sandbox
        .post(&format!("/v1/payment_methods/{pm}/detach"))
        .send()
        .await;
    assert_eq!(detached.status, 200, "{}", detached.body);
    assert_eq!(deliver(&stripe(&s), &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(
        p["status"], "succeeded",
        "not paused for want of a card: {p:#}"
    );

    // Charged on a Mastercard that another payment's decline has since closed (advice 03).
    let (cus, pm) = s.sandbox.customer_with_card("pm_card_mastercard").await;
    let id = s.pay(&cus, Some(&pm), json!({})).await;
    mid_attempt(&s, &id, |_| {}).await;
    charged_behind_flints_back(&s, &id, &cus, &pm).await;
    let card = flint_shared::processor::stripe::StripeClient::new(
        flint_shared::processor::stripe::StripeConfig::new(
            s.sandbox.base_url.clone(),
            flint_shared::config::Secret::new(flint_testkit::sandbox::KEY),
        ),
    )
    .card(&pm)
    .await
    .unwrap();
    let closed = Decline {
        network_advice_code: Some(flint_shared::payment::decline::NetworkAdviceCode::DoNotTryAgain),
        ..soft_decline("ch_other")
    };
    CardRules::new(redis::Client::open(s.redis.url()).unwrap(), "charges")
        .record(
            "acme",
            &card,
            "osp_other:1",
            CardOutcome::Declined(&closed),
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(deliver(&stripe(&s), &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(
        p["status"], "succeeded",
        "not blocked after it charged: {p:#}"
    );
    // A new attempt on that card is blocked, as the rule says.
    let next = s.pay(&cus, Some(&pm), json!({})).await;
    assert_eq!(deliver(&stripe(&s), &next).await, Outcome::Complete);
    assert_eq!(s.payment(&next).await["status"], "failed");
}
