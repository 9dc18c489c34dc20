//! Nothing retries forever, and everything stuck is visible: an outcome that stays unknown, a
//! processor that keeps refusing Flint's key, an attempt that keeps stopping its worker, and a
//! bug in an attempt all end in `requires_attention` with the reason, resumable once the cause
//! is fixed; a paused payment nobody resumes fails when it expires.

use std::time::Duration;

use apalis::prelude::Data;
use flint_queue::{LostLeases, Outcome};
use flint_shared::processor::ProcessorError;
use flint_testkit::processor::{Op, ScriptedProcessor};
use flint_worker::charge::decide::Policy;
use serde_json::json;

use crate::harness::*;
use crate::pipelines::{self, charged, deliver, needs_customer, unknown};

flint_testkit::in_both_layouts!(
    an_outcome_that_stays_unknown_requires_attention_and_a_resume_settles_it,
    a_cancel_of_a_payment_whose_outcome_is_unknown_settles_it_first,
    a_processor_that_keeps_refusing_the_key_makes_the_payment_require_attention,
    an_attempt_that_keeps_stopping_its_worker_requires_attention,
    a_bug_in_an_attempt_makes_the_payment_require_attention_not_loop,
    a_paused_payment_nobody_resumes_fails_when_it_expires,
);

/// Bounds that the second look at an attempt is always past (the first look always happens).
fn impatient() -> Policy {
    Policy {
        retry_delays: vec![Duration::from_millis(100)],
        unknown_outcome_limit: Duration::ZERO,
        misconfigured_limit: Duration::ZERO,
        paused_expiry: Duration::from_millis(300),
        max_lost_leases: 3,
        send_window: Duration::from_millis(200),
        request_lifetime: Duration::ZERO,
    }
}

async fn an_outcome_that_stays_unknown_requires_attention_and_a_resume_settles_it() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let processor = ScriptedProcessor::new();
    // The charge's answer is lost, and the processor cannot be read either, twice.
    processor
        .create_intent(Err(unknown()))
        .find_intent(Err(unknown()))
        .find_intent(Err(unknown()));
    let pipeline = pipelines::scripted_with(&s, &processor, impatient());
    assert!(matches!(deliver(&pipeline, &id).await, Outcome::RetryAt(_)));
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "processing");
    assert_eq!(p["attempts"][0]["unresolved"]["tries"], 1);
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "requires_attention", "{p:#}");
    assert_eq!(p["attention"]["reason"], "unknown_outcome");
    assert!(
        p["attempts"][0]["finished_at"].is_null(),
        "the attempt stays open"
    );
    let listed = s
        .http
        .get(format!(
            "{}/v1/off_session_payments?status=requires_attention",
            s.api
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id.as_str(), "visible to operators");

    // The processor is back: a resume settles the open attempt from its records.
    processor.find_intent(Ok(Some(charged())));
    let resumed = s
        .post(&format!("/v1/off_session_payments/{id}/resume"), json!({}))
        .await;
    assert_eq!(resumed["status"], "pending", "{resumed:#}");
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "succeeded", "{p:#}");
    assert_eq!(p["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(processor.calls_of(Op::CreateIntent).len(), 1, "sent once");
}

async fn a_cancel_of_a_payment_whose_outcome_is_unknown_settles_it_first() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let processor = ScriptedProcessor::new();
    processor
        .create_intent(Err(unknown()))
        .find_intent(Err(unknown()))
        .find_intent(Err(unknown()));
    let pipeline = pipelines::scripted_with(&s, &processor, impatient());
    deliver(&pipeline, &id).await;
    deliver(&pipeline, &id).await;
    assert_eq!(s.payment(&id).await["status"], "requires_attention");
    // An operator cancels, with a reason: the event that ends the payment records both.
    let canceled = s
        .post(
            &format!("/v1/off_session_payments/{id}/cancel"),
            json!({"initiated_by": {"type": "operator", "id": "ann"}, "reason": "customer called"}),
        )
        .await;
    assert_eq!(canceled["cancel_requested"], true, "{canceled:#}");
    // The processor shows no charge, and the attempt's time to send is over (its request can
    // no longer arrive): canceled, without another charge.
    processor.find_intent(Ok(None));
    let p = s.payment(&id).await;
    let send_until = flint_shared::time::Timestamp::parse_rfc3339(
        p["attempts"][0]["send_until"].as_str().unwrap(),
    )
    .unwrap();
    flint_testkit::poll_until(
        Duration::from_secs(10),
        "the attempt's time to send to pass",
        || async { (flint_shared::time::Timestamp::now() > send_until).then_some(()) },
    )
    .await;
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "canceled", "{p:#}");
    assert_eq!(p["attempts"][0]["outcome"], "canceled");
    assert_eq!(processor.calls_of(Op::CreateIntent).len(), 1);
    let last = p["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "off_session_payment.canceled");
    assert_eq!(
        last["initiated_by"],
        json!({"type": "operator", "id": "ann"})
    );
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .ends_with(": customer called"),
        "{last}"
    );
}

async fn a_processor_that_keeps_refusing_the_key_makes_the_payment_require_attention() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let refused = || ProcessorError::Misconfigured {
        status: 401,
        message: "Invalid API Key provided".into(),
    };
    let processor = ScriptedProcessor::new();
    processor.card(Err(refused())).card(Err(refused()));
    let pipeline = pipelines::scripted_with(&s, &processor, impatient());
    assert!(matches!(deliver(&pipeline, &id).await, Outcome::RetryAt(_)));
    assert_eq!(deliver(&pipeline, &id).await, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "requires_attention", "{p:#}");
    assert_eq!(p["attention"]["reason"], "processor_misconfigured");
    assert!(processor.calls_of(Op::CreateIntent).is_empty());
}

async fn an_attempt_that_keeps_stopping_its_worker_requires_attention() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let processor = ScriptedProcessor::new();
    let pipeline = pipelines::scripted_with(&s, &processor, impatient());
    let outcome = pipeline.run(&pipelines::job(&id), LostLeases(3)).await;
    assert_eq!(outcome, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "requires_attention", "{p:#}");
    assert_eq!(p["attention"]["reason"], "worker_lost");
    assert!(processor.calls().is_empty(), "nothing was sent");
}

async fn a_bug_in_an_attempt_makes_the_payment_require_attention_not_loop() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    // Nothing scripted for the charge: the processor panics inside the attempt.
    let processor = ScriptedProcessor::new();
    let pipeline = pipelines::scripted_with(&s, &processor, impatient());
    let outcome =
        flint_worker::charge_job(pipelines::job(&id), LostLeases(0), Data::new(pipeline)).await;
    assert_eq!(outcome, Outcome::Complete);
    let p = s.payment(&id).await;
    assert_eq!(p["status"], "requires_attention", "{p:#}");
    assert_eq!(p["attention"]["reason"], "internal_error");
    assert!(
        p["attempts"][0]["finished_at"].is_null(),
        "a resume settles it"
    );
}

async fn a_paused_payment_nobody_resumes_fails_when_it_expires() {
    let s = api_only(vec![100]).await;
    let id = s.pay("cus_1", Some("pm_1"), json!({})).await;
    let processor = ScriptedProcessor::new();
    processor.create_intent(Err(needs_customer()));
    // Through the queue: the paused payment's job waits for its expiry, and fails it then.
    let _worker =
        pipelines::worker(&s, pipelines::scripted_with(&s, &processor, impatient())).await;
    let p = s.settles(&id, &["paused"]).await;
    assert!(p["expires_at"].is_string(), "{p:#}");
    let p = s.settles(&id, &["failed"]).await;
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .starts_with("not resumed within"),
        "{p:#}"
    );
    assert_eq!(processor.calls_of(Op::CreateIntent).len(), 1);
}
