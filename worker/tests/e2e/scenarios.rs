//! The interleavings in which a payment used to be stranded or charged twice, each driven
//! exactly: a resume between a pause and its acknowledgement, a worker that loses its lease
//! mid-attempt while another takes over, an attempt continued after the processor forgot its
//! idempotency keys, and a continued attempt that used to end before it settled.

use std::sync::Arc;

use apalis::prelude::{Data, WorkerBuilder, WorkerBuilderExt};
use flint_queue::{LostLeases, Outcome};
use flint_shared::payment::decline::Decline;
use flint_shared::payment::job::ChargeJob;
use flint_shared::payment::network::{CardOutcome, CardRules};
use flint_shared::payment::record::{Attempt, AttemptOutcome};
use flint_shared::processor::stripe::StripeClient;
use flint_shared::processor::{IntentStatus, Processor, ProcessorError};
use flint_shared::time::Timestamp;
use flint_testkit::processor::{Gate, Op, ScriptedProcessor};
use flint_worker::charge::Pipeline;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::harness::*;
use crate::pipelines::{self, deliver, intent, mid_attempt, rejected, soft_decline, stripe};

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
    CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
    )
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

/// Windows short enough to outlast in a test.
fn quick_windows(s: &Stack) -> flint_worker::charge::decide::Policy {
    flint_worker::charge::decide::Policy {
        send_window: std::time::Duration::from_millis(1500),
        request_lifetime: std::time::Duration::ZERO,
        ..flint_worker::policy(&s.config)
    }
}

#[tokio::test]
async fn a_continued_attempt_does_not_end_while_the_first_tries_request_may_still_arrive() {
    let s = api_only(vec![100]).await;
    let charged = || Ok(intent(IntentStatus::Succeeded, "ch_1", None));

    // Worker A's create-and-confirm is on its way (held before the processor acts on it).
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let a = ScriptedProcessor::new();
    let in_flight = Gate::new();
    a.create_intent_at(&in_flight, charged());
    let pipeline_a = pipelines::scripted_with(&s, &a, quick_windows(&s));
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline_a), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    in_flight.reached().await;
    // A cancel arrives, and worker B, taking the job over, finds no charge yet. It may not
    // cancel on that: A's request can still arrive within A's time to send.
    let canceled = s
        .post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(canceled["cancel_requested"], true);
    let b = ScriptedProcessor::new();
    b.find_intent(Ok(None));
    let pipeline_b = pipelines::scripted_with(&s, &b, quick_windows(&s));
    assert!(matches!(
        deliver(&pipeline_b, &id).await,
        Outcome::RetryAt(_)
    ));
    assert_eq!(s.payment(&id).await["status"], "processing");
    // A's request arrives in time and charges: the payment says so.
    in_flight.release();
    assert_eq!(worker_a.await.unwrap(), Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "succeeded", "charged, so not canceled: {p:#}");
    assert!(b.calls_of(Op::CreateIntent).is_empty());

    // Again, but A wakes up after its time to send: it sends nothing, and once that time is
    // over B may cancel.
    let id = s.pay("cus_2", Some("pm_2"), json!({})).await;
    let a = ScriptedProcessor::new();
    let in_flight = Gate::new();
    a.create_intent_at(&in_flight, charged());
    let pipeline_a = pipelines::scripted_with(&s, &a, quick_windows(&s));
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline_a), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    in_flight.reached().await;
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    let b = ScriptedProcessor::new();
    b.find_intent(Ok(None)).find_intent(Ok(None));
    let pipeline_b = pipelines::scripted_with(&s, &b, quick_windows(&s));
    assert!(matches!(
        deliver(&pipeline_b, &id).await,
        Outcome::RetryAt(_)
    ));
    let send_until = Timestamp::parse_rfc3339(
        s.payment(&id).await["attempts"][0]["send_until"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "A's time to send to pass",
        || async { (Timestamp::now() > send_until).then_some(()) },
    )
    .await;
    in_flight.release();
    assert!(matches!(worker_a.await.unwrap(), Outcome::RetryAt(_)));
    assert!(!a.calls_of(Op::CreateIntent)[0].sent, "too late: not sent");
    assert_eq!(deliver(&pipeline_b, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "canceled", "{p:#}");
    assert_eq!(p["attempts"][0]["outcome"], "canceled");
}

fn mastercard_try_later() -> Decline {
    Decline {
        network_advice_code: Some(flint_shared::payment::decline::NetworkAdviceCode::TryLater),
        ..soft_decline("ch_1")
    }
}

#[tokio::test]
async fn a_decline_whose_card_rule_cannot_be_stored_is_asked_again_not_retried_early() {
    let s = api_only(vec![100]).await;
    // The card rules live on a Redis of their own here, so that it can fail alone.
    let mut rules_redis = flint_testkit::redis::RedisServer::start();
    let processor =
        ScriptedProcessor::new().with_card_brand(flint_shared::processor::CardBrand::Mastercard);
    let answered = Gate::new();
    processor.create_intent_at(
        &answered,
        Err(ProcessorError::Declined(Box::new(mastercard_try_later()))),
    );
    let pipeline = Arc::new(Pipeline::new(
        pipelines::store(&s),
        std::collections::HashMap::from([("acme".to_owned(), processor.clone())]),
        flint_worker::policy(&s.config),
        CardRules::new(
            flint_shared::redis_target::RedisTarget::Standalone(rules_redis.url()),
            "charges",
        ),
    ));
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let first = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    answered.reached().await;
    // The decline (Mastercard advice 02: not again for 72 hours) comes back while the rules'
    // Redis is down: the attempt is asked again rather than ended without the card's block.
    rules_redis.kill();
    answered.release();
    assert!(matches!(first.await.unwrap(), Outcome::RetryAt(_)));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "processing", "{p:#}");
    rules_redis.start_again();
    // The next look reads the same decline from the processor (its intent is known from the
    // decline) and records it.
    processor.retrieve_intent(Ok(intent(
        IntentStatus::RequiresPaymentMethod,
        "ch_1",
        Some(mastercard_try_later()),
    )));
    assert!(matches!(deliver(&pipeline, &id).await, Outcome::RetryAt(_)));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "pending", "{p:#}");
    assert_eq!(p["attempts"][0]["network_rule"], "mastercard_advice_02");
    let next = Timestamp::parse_rfc3339(p["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(
        next > Timestamp::now().plus(std::time::Duration::from_secs(71 * 3600)),
        "the next attempt waits the network's 72 hours, not the 100 ms retry delay: {next}"
    );
}

#[tokio::test]
async fn an_attempt_that_ends_without_a_decline_gives_its_card_place_back() {
    let s = api_only(vec![100]).await;
    let rules = CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
    );
    let visa = visa();
    // The card has declined 19 times in 30 days: one reattempt is left.
    for i in 0..19 {
        rules
            .record(
                "acme",
                &visa,
                &format!("osp_old{i}:1"),
                CardOutcome::Declined(&soft_decline("ch_x")),
                Timestamp::now(),
            )
            .await
            .unwrap();
    }
    let processor = ScriptedProcessor::new();
    processor.create_intent(Err(rejected()));
    let pipeline = pipelines::scripted(&s, &processor);
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    assert_eq!(s.payment(&id).await["status"], "failed");
    // The refused request was no reattempt of the card: the place is free again.
    let next = rules
        .reserve("acme", &visa, "osp_next:1", Timestamp::now())
        .await
        .unwrap();
    assert_eq!(next.block(), None);
}

#[tokio::test]
async fn two_workers_continuing_one_attempt_around_a_cancel_never_leave_a_charge_unrecorded() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    // The first try's window is long over: its requests can no longer arrive.
    mid_attempt(&s, &id, |p| {
        p.attempts[0].send_until = Some(Timestamp::now().minus(std::time::Duration::from_secs(60)))
    })
    .await;
    let visa = || {
        Ok(flint_shared::processor::CardInfo {
            brand: flint_shared::processor::CardBrand::Visa,
            fingerprint: "fp_1".into(),
        })
    };
    // B1 continues the attempt and stops at its card lookup, before it opens its own window.
    let b1 = ScriptedProcessor::new();
    let (b1_card, b1_send) = (Gate::new(), Gate::new());
    b1.find_intent(Ok(None))
        .card_at(&b1_card, visa())
        .create_intent_at(&b1_send, Ok(intent(IntentStatus::Succeeded, "ch_1", None)));
    let pipeline_b1 = pipelines::scripted_with(&s, &b1, quick_windows(&s));
    let mut worker_b1 = {
        let (pipeline, job) = (Arc::clone(&pipeline_b1), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(1)).await })
    };
    b1_card.reached().await;
    // A cancel arrives; B2 takes the job over, finds no charge, decides to cancel, and stops
    // (at its card lookup, to give the place back) before it writes.
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    let b2 = ScriptedProcessor::new();
    let b2_card = Gate::new();
    b2.find_intent(Ok(None)).card_at(&b2_card, visa());
    let pipeline_b2 = pipelines::scripted_with(&s, &b2, quick_windows(&s));
    let worker_b2 = {
        let (pipeline, job) = (Arc::clone(&pipeline_b2), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(2)).await })
    };
    b2_card.reached().await;
    // B1 goes on: it must not send once the payment was to be canceled, or if it sends, B2
    // must not write "canceled" over the window B1 opened.
    b1_card.release();
    let b1_sent = tokio::select! {
        outcome = &mut worker_b1 => { outcome.unwrap(); false }
        () = b1_send.reached() => true,
    };
    b2_card.release();
    worker_b2.await.unwrap();
    if b1_sent {
        b1_send.release();
        worker_b1.await.unwrap();
    }
    let p = s.payment(&id).await;
    let charged = b1.calls_of(Op::CreateIntent).iter().any(|c| c.sent);
    assert_eq!(
        p["status"] == "succeeded",
        charged,
        "Flint's status and the processor's charge disagree: {p:#}"
    );
    assert_eq!(p["status"], "canceled", "{p:#}");
    assert!(!charged, "nothing was sent after the cancel");
}

#[tokio::test]
async fn an_open_attempt_recorded_without_a_send_window_is_treated_as_possibly_sent() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    // As a worker from before send windows left it (or a binary that drops the field): a card
    // on record, no window. Its request may still arrive until the window it would have had.
    mid_attempt(&s, &id, |p| p.attempts[0].send_until = None).await;
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    let b = ScriptedProcessor::new();
    b.find_intent(Ok(None)).find_intent(Ok(None));
    let pipeline = pipelines::scripted_with(&s, &b, quick_windows(&s));
    assert!(matches!(deliver(&pipeline, &id).await, Outcome::RetryAt(_)));
    assert_eq!(s.payment(&id).await["status"], "processing");
    // Once that window is over, the cancel goes through.
    let started = Timestamp::parse_rfc3339(
        s.payment(&id).await["attempts"][0]["started_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let quiet = started.plus(std::time::Duration::from_millis(1500));
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the window the attempt would have had to pass",
        || async { (Timestamp::now() > quiet).then_some(()) },
    )
    .await;
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    assert_eq!(s.payment(&id).await["status"], "canceled");
    assert!(b.calls_of(Op::CreateIntent).is_empty());
}

#[tokio::test]
async fn a_continued_attempt_the_card_rules_never_admitted_sends_nothing_once_they_block() {
    let s = api_only(vec![100]).await;
    let rules = CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
    );
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    // The first try opens its window with the payment's card, then cannot look the card up:
    // it stops before the card rules were asked, and is asked again.
    let processor = ScriptedProcessor::new();
    processor.card(Err(ProcessorError::Transient {
        reason: "connection reset".into(),
        outcome_unknown: false,
        request_id: None,
    }));
    let pipeline = pipelines::scripted_with(&s, &processor, quick_windows(&s));
    assert!(matches!(
        pipeline.run(&pipelines::job(&id), LostLeases(0)).await,
        Outcome::RetryAt(_)
    ));
    // Meanwhile another payment learns the card is lost (Visa category 1: never again).
    declined_elsewhere(&rules, &lost_card()).await;
    // The continuation finds nothing charged. Had the first try sent, its same-key request
    // would be the only way on; it did not, and a new request on the card is forbidden: the
    // attempt waits out the first try's window, then ends blocked, without sending.
    processor.find_intent(Ok(None)).find_intent(Ok(None));
    processor.create_intent(Ok(pipelines::charged()));
    let Outcome::RetryAt(at) = deliver(&pipeline, &id).await else {
        panic!("the continuation ended inside the first try's window");
    };
    assert_eq!(s.payment(&id).await["status"], "processing");
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the first try's window to pass",
        || async { (std::time::SystemTime::now() > at).then_some(()) },
    )
    .await;
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert!(
        processor.calls_of(Op::CreateIntent).is_empty(),
        "a request the card rules forbid was sent: {p:#}"
    );
    assert_eq!(p["status"], "failed", "{p:#}");
    assert_eq!(p["attempts"][0]["network_rule"], "visa_category_1");
}

#[tokio::test]
async fn a_continued_attempt_that_never_recorded_a_card_has_sent_nothing_and_ends_at_once() {
    let s = api_only(vec![100]).await;
    let rules = CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
    );
    // No card on the payment: the attempt resolves the customer's default. Its first try finds
    // it, cannot look it up, and stops before recording it.
    let id = s.pay("cus_1", None, json!({})).await;
    let processor = ScriptedProcessor::new();
    processor.default_payment_method(Ok(Some("pm_1".into())));
    processor.card(Err(ProcessorError::Transient {
        reason: "connection reset".into(),
        outcome_unknown: false,
        request_id: None,
    }));
    let pipeline = pipelines::scripted(&s, &processor);
    assert!(matches!(
        pipeline.run(&pipelines::job(&id), LostLeases(0)).await,
        Outcome::RetryAt(_)
    ));
    let p = s.payment(&id).await;
    assert_eq!(p["attempts"][0]["payment_method"], Value::Null, "{p:#}");
    // The card turns out lost (another payment's decline). The continuation needs no window to
    // pass (nothing of the first try can arrive) and no look at the processor's records: it
    // ends blocked at once, without sending.
    declined_elsewhere(&rules, &lost_card()).await;
    processor.default_payment_method(Ok(Some("pm_1".into())));
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "failed", "{p:#}");
    assert_eq!(p["attempts"][0]["network_rule"], "visa_category_1");
    assert!(processor.calls_of(Op::FindIntent).is_empty());
    assert!(processor.calls_of(Op::CreateIntent).is_empty());
}

#[tokio::test]
async fn a_customer_without_a_default_card_is_asked_once_and_the_payment_pauses() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", None, json!({})).await;
    let processor = ScriptedProcessor::new();
    // Answered once: a second question would find the processor not told how to answer.
    processor.default_payment_method(Ok(None));
    let pipeline = pipelines::scripted(&s, &processor);
    assert!(matches!(
        pipeline.run(&pipelines::job(&id), LostLeases(0)).await,
        Outcome::RetryAt(_)
    ));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "paused", "{p:#}");
    assert_eq!(p["attempts"][0]["outcome"], "needs_customer", "{p:#}");
    assert_eq!(p["attempts"][0]["payment_method"], Value::Null, "{p:#}");
    assert_eq!(processor.calls_of(Op::DefaultPaymentMethod).len(), 1);
    assert!(processor.calls_of(Op::Card).is_empty());
    assert!(processor.calls_of(Op::CreateIntent).is_empty());
}

/// The tests' card `pm_1` as the card rules know it: a Visa card.
fn visa() -> flint_shared::processor::CardInfo {
    flint_shared::processor::CardInfo {
        brand: flint_shared::processor::CardBrand::Visa,
        fingerprint: "pm_1".into(),
    }
}

/// A decline saying the card is lost (Visa category 1: never again).
fn lost_card() -> Decline {
    Decline {
        decline_code: Some(flint_shared::payment::decline::DeclineCode::LostCard),
        ..soft_decline("ch_other")
    }
}

/// Another payment's attempt on `pm_1` declined with `decline`, as the card rules record it.
async fn declined_elsewhere(rules: &CardRules, decline: &Decline) {
    rules
        .record(
            "acme",
            &visa(),
            "osp_other:1",
            CardOutcome::Declined(decline),
            Timestamp::now(),
        )
        .await
        .unwrap();
}

/// A payment without a card (its attempts resolve the customer's default) whose attempt 1 is
/// open with no card on record, and a pipeline whose processor the test scripts. (A new attempt
/// records its card as it starts; one whose card could not be looked up starts without, and
/// every later try of it resolves and records the card itself: the path these tests race.)
async fn card_less_attempt(
    s: &Stack,
) -> (String, Arc<Pipeline<ScriptedProcessor>>, ScriptedProcessor) {
    let id = s.pay("cus_1", None, json!({})).await;
    let processor = ScriptedProcessor::new();
    processor.default_payment_method(Ok(Some("pm_1".into())));
    processor.card(Err(ProcessorError::Transient {
        reason: "connection reset".into(),
        outcome_unknown: false,
        request_id: None,
    }));
    let pipeline = pipelines::scripted(s, &processor);
    assert!(matches!(
        pipeline.run(&pipelines::job(&id), LostLeases(0)).await,
        Outcome::RetryAt(_)
    ));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "processing", "{p:#}");
    assert_eq!(p["attempts"][0]["payment_method"], Value::Null, "{p:#}");
    (id, pipeline, processor)
}

#[tokio::test]
async fn a_continuation_never_writes_over_the_window_its_first_try_opened_after_it_looked() {
    let s = api_only(vec![100]).await;
    let (id, pipeline, processor) = card_less_attempt(&s).await;
    let (a_default, b_default, a_send) = (Gate::new(), Gate::new(), Gate::new());
    processor
        .default_payment_method_at(&a_default, Ok(Some("pm_1".into())))
        .default_payment_method_at(&b_default, Ok(Some("pm_1".into())));
    processor
        .create_intent_at(&a_send, Ok(pipelines::charged()))
        .create_intent(Ok(pipelines::charged()));
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    a_default.reached().await;
    // B reads the attempt while it has no card: nothing sent yet, so nothing to settle.
    let worker_b = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(1)).await })
    };
    b_default.reached().await;
    // A wakes: it records its card and window, and its create-and-confirm leaves.
    a_default.release();
    a_send.reached().await;
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    // B must not take A's window for its own and call the attempt canceled on it.
    b_default.release();
    assert!(matches!(worker_b.await.unwrap(), Outcome::RetryAt(_)));
    a_send.release();
    worker_a.await.unwrap();
    let p = s.payment(&id).await;
    assert_eq!(processor.calls_of(Op::CreateIntent).len(), 1, "{p:#}");
    assert_eq!(p["status"], "succeeded", "charged, so not canceled: {p:#}");
}

#[tokio::test]
async fn a_first_try_never_writes_over_the_window_a_continuation_sent_in() {
    let s = api_only(vec![100]).await;
    let (id, pipeline, processor) = card_less_attempt(&s).await;
    let (a_default, b_send) = (Gate::new(), Gate::new());
    processor
        .default_payment_method_at(&a_default, Ok(Some("pm_1".into())))
        .default_payment_method(Ok(Some("pm_1".into())));
    processor.create_intent_at(&b_send, Ok(pipelines::charged()));
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    a_default.reached().await;
    // B takes over, records its card and window, and its create-and-confirm leaves.
    let worker_b = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(1)).await })
    };
    b_send.reached().await;
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    // A wakes to a cancel: nothing of its own was sent, but B's request may have been.
    a_default.release();
    assert!(matches!(worker_a.await.unwrap(), Outcome::RetryAt(_)));
    assert_eq!(s.payment(&id).await["status"], "processing");
    b_send.release();
    assert_eq!(worker_b.await.unwrap(), Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(processor.calls_of(Op::CreateIntent).len(), 1, "{p:#}");
    assert_eq!(p["status"], "succeeded", "charged, so not canceled: {p:#}");
}

#[tokio::test]
async fn a_try_that_finds_its_attempt_ended_by_another_gives_its_card_place_back() {
    let s = api_only(vec![100]).await;
    let rules = CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(s.redis.url()),
        "charges",
    );
    let (id, pipeline, processor) = card_less_attempt(&s).await;
    // The customer's default is a Visa card that declined recently: an attempt on it takes a
    // place among its 20 reattempts in 30 days.
    let visa = visa();
    declined_elsewhere(&rules, &soft_decline("ch_other")).await;
    let a_card = Gate::new();
    processor
        .default_payment_method(Ok(Some("pm_1".into())))
        .card_at(&a_card, Ok(visa.clone()));
    let worker_a = {
        let (pipeline, job) = (Arc::clone(&pipeline), pipelines::job(&id));
        tokio::spawn(async move { pipeline.run(&job, LostLeases(0)).await })
    };
    a_card.reached().await;
    // While A looks its card up, the payment is canceled and B, continuing the attempt (which
    // has recorded no card, so nothing was sent), ends it.
    s.post(&format!("/v1/off_session_payments/{id}/cancel"), json!({}))
        .await;
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    assert_eq!(s.payment(&id).await["status"], "canceled");
    // A wakes, takes a place on the card, and finds the attempt over: it sends nothing, and the
    // place it took is given back.
    a_card.release();
    worker_a.await.unwrap();
    assert!(processor.calls_of(Op::CreateIntent).is_empty());
    let mut redis = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let reserved: Vec<String> = redis::cmd("KEYS")
        .arg("flint:{charges}:card:acme:*:reserved")
        .query_async(&mut redis)
        .await
        .unwrap();
    for key in reserved {
        let places: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(
            places.is_empty(),
            "places still taken on the card: {places:?}"
        );
    }
}
