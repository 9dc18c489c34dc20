use std::sync::Arc;
use std::time::Duration;

use flint_queue::{Outcome, Replayed};
use flint_testkit::poll_until;

use crate::harness::*;

pub async fn an_aborted_job_becomes_a_dead_letter_that_can_be_replayed(env: Env) {
    let queue = env.queue(env.config("dead")).await;
    let runs = Runs::scripted(Arc::new(|_, run| {
        Ok(if run == 1 {
            Outcome::DeadLetter("card stolen".into())
        } else {
            Outcome::Complete
        })
    }));
    let worker = TestWorker::start(&queue, &runs, 1);
    queue.push(job(1)).await.unwrap();
    let letters = poll_until(Duration::from_secs(10), "the dead letter", || async {
        let l = queue.dead_letters(10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].job_id, "job-1");
    assert_eq!(letters[0].reason, "card stolen");
    assert_eq!(queue.stats().await.unwrap().dead, 1);
    assert_eq!(
        runs.count(1),
        1,
        "a dead letter does not run again by itself"
    );

    assert_eq!(
        queue
            .replay_dead_letter(&letters[0].dead_letter_id)
            .await
            .unwrap(),
        Replayed::Replayed
    );
    poll_until(Duration::from_secs(10), "the replayed run", || async {
        (runs.count(1) == 2).then_some(())
    })
    .await;
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(
        queue
            .replay_dead_letter(&letters[0].dead_letter_id)
            .await
            .unwrap(),
        Replayed::NotFound
    );
    worker.stop().await;
}

pub async fn a_handler_error_dead_letters_the_job_with_the_error(env: Env) {
    let queue = env.queue(env.config("err")).await;
    let runs = Runs::scripted(Arc::new(|_, _| Err("processor misconfigured".to_owned())));
    let worker = TestWorker::start(&queue, &runs, 1);
    queue.push(job(1)).await.unwrap();
    let letters = poll_until(Duration::from_secs(10), "the dead letter", || async {
        let l = queue.dead_letters(10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert!(
        letters[0].reason.contains("processor misconfigured"),
        "{}",
        letters[0].reason
    );
    worker.stop().await;
    assert_eq!(runs.count(1), 1);
}

pub async fn the_dead_letter_store_is_bounded(env: Env) {
    let queue = env
        .queue(env.config("bounded").with_dead_letters_max(10))
        .await;
    let runs = Runs::scripted(Arc::new(|_, _| Ok(Outcome::DeadLetter("no".into()))));
    let worker = TestWorker::start(&queue, &runs, 4);
    queue.push_batch((0..50).map(job).collect()).await.unwrap();
    poll_until(Duration::from_secs(10), "50 runs", || async {
        (runs.distinct() == 50).then_some(())
    })
    .await;
    poll_until(Duration::from_secs(10), "acks", || async {
        (queue.stats().await.unwrap().leased == 0).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(queue.stats().await.unwrap().dead, 10);
    let letters = queue.dead_letters(100).await.unwrap();
    assert_eq!(letters.len(), 10, "only the newest are kept");
}

pub async fn replaying_while_a_live_job_has_the_id_changes_nothing(env: Env) {
    let queue = env.queue(env.config("replaydup")).await;
    let runs = Runs::scripted(Arc::new(|_, _| Ok(Outcome::DeadLetter("no".into()))));
    let worker = TestWorker::start(&queue, &runs, 1);
    queue.push(job(1)).await.unwrap();
    let letter = poll_until(Duration::from_secs(10), "the dead letter", || async {
        queue.dead_letters(1).await.unwrap().pop()
    })
    .await;
    worker.stop().await;
    queue.push(job(1)).await.unwrap();
    assert_eq!(
        queue
            .replay_dead_letter(&letter.dead_letter_id)
            .await
            .unwrap(),
        Replayed::LiveDuplicate
    );
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);
}
