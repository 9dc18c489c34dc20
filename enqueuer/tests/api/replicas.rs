//! Durable acceptance (`[redis] min_replicas_acked`) against a real primary and a real replica:
//! a 202 means the replica held the payment; a replica that does not answer (SIGSTOPped) turns
//! it into a retryable 503 that the same Idempotency-Key later converges from.

use std::time::{Duration, Instant};

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret};
use flint_testkit::redis::RedisServer;

use crate::helpers::*;

const TIMEOUT_MS: u64 = 500;

async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn info(server: &RedisServer, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn(server).await)
        .await
        .unwrap()
}

async fn exists(server: &RedisServer, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u32>(&mut conn(server).await)
        .await
        .unwrap()
        == 1
}

fn payment_key(id: &str) -> String {
    format!("flint:{{charges}}:pay:{id}")
}

/// How many payments tenant `acme` has on `server`.
async fn payments(server: &RedisServer) -> u64 {
    redis::cmd("ZCARD")
        .arg("flint:{charges}:idx:acme")
        .query_async(&mut conn(server).await)
        .await
        .unwrap()
}

async fn waits_sent(server: &RedisServer) -> bool {
    info(server, "commandstats").await.contains("cmdstat_wait:")
}

fn acked(replicas: u32) -> impl FnOnce(&mut Config) {
    move |config| {
        config.redis.min_replicas_acked = replicas;
        config.redis.min_replicas_timeout_ms = TIMEOUT_MS;
    }
}

#[tokio::test]
async fn with_a_live_replica_a_202_means_the_replica_holds_the_payment() {
    let app = spawn_app_with(acked(1)).await;
    let replica = RedisServer::start_replica_of(&app.redis).await;

    let r = app.create("durable-1", &body()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.id();
    // No polling: WAIT returned only once the replica had applied the create.
    assert!(
        exists(&replica, &payment_key(&id)).await,
        "the payment is on the replica when the 202 is answered"
    );
    assert!(
        waits_sent(&app.redis).await,
        "the create was followed by WAIT"
    );

    let again = app.create("durable-1", &body()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.id(), id);
    let canceled = app
        .post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    let status: String = redis::cmd("HGET")
        .arg(payment_key(&id))
        .arg("s")
        .query_async(&mut conn(&replica).await)
        .await
        .unwrap();
    assert_eq!(
        status, "canceled",
        "the cancel is on the replica when answered"
    );
}

#[tokio::test]
async fn a_replica_that_does_not_acknowledge_turns_a_202_into_a_retryable_503_that_converges() {
    let app = spawn_app_with(acked(1)).await;
    let replica = RedisServer::start_replica_of(&app.redis).await;
    replica.signal("STOP");

    let started = Instant::now();
    let r = app.create("durable-2", &body()).await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), Some("storage_not_replicated"));
    assert_eq!(r.body["error"]["type"], "api_error");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS) && took < Duration::from_secs(5),
        "answered after about the timeout, not at once nor much later: {took:?}"
    );
    assert_eq!(payments(&app.redis).await, 1, "written on the primary");

    // A retry while the replica still does not answer waits again, and is refused again.
    let r = app.create("durable-2", &body()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), Some("storage_not_replicated"));

    replica.signal("CONT");
    let r = flint_testkit::poll_until(
        Duration::from_secs(10),
        "the retry to be accepted",
        || async {
            let r = app.create("durable-2", &body()).await;
            (r.status == 202).then_some(r)
        },
    )
    .await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    let id = r.id();
    assert!(exists(&replica, &payment_key(&id)).await);
    assert_eq!(payments(&app.redis).await, 1, "one payment, on the primary");
    assert_eq!(payments(&replica).await, 1, "and on the replica");
    assert_eq!(app.stats().await.ready, 1, "one charge job");

    // A transition the API makes waits the same way.
    replica.signal("STOP");
    let cancel = format!("/v1/off_session_payments/{id}/cancel");
    let r = app.post(&cancel, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), Some("storage_not_replicated"));
    // Cancel and resume take no Idempotency-Key, and a repeated resume is a second resume: the
    // answer says the change was written and to read the payment before repeating it.
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was written") && message.contains("read the resource (GET)"),
        "{message}"
    );
    assert!(!message.contains("Retry it"), "{message}");
    // The retry finds the payment canceled already: answered only once replicas hold it.
    let r = app.post(&cancel, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    replica.signal("CONT");
    let r = flint_testkit::poll_until(
        Duration::from_secs(10),
        "the cancel's retry to be answered",
        || async {
            let r = app.post(&cancel, None).await;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    assert_eq!(r.body["status"], "canceled");
}

/// An enqueuer of its own on `redis` (another process of the fleet, with its own connections).
async fn another_enqueuer(redis: &RedisServer, replicas: u32) -> String {
    let mut config = Config::default();
    config.redis.url = Secret::new(redis.url());
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.tenants = vec![tenant("acme", KEY_A)];
    acked(replicas)(&mut config);
    let app = Application::build(&config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    base
}

#[tokio::test]
async fn a_replay_waits_for_replicas_to_hold_what_another_process_wrote() {
    // The first create is acknowledged without waiting (min_replicas_acked = 0) while the
    // replica is stopped: it is on the primary only.
    let app = spawn_app().await;
    let replica = RedisServer::start_replica_of(&app.redis).await;
    replica.signal("STOP");
    let first = app.create("durable-3", &body()).await;
    assert_eq!(first.status, 202);

    // Its replay through a process that waits, on connections that never wrote it, must not
    // take the replica's silence for an acknowledgement.
    let base = another_enqueuer(&app.redis, 1).await;
    let replay = |base: String| {
        let http = app.http.clone();
        async move {
            Answer::from(
                http.post(format!("{base}/v1/off_session_payments"))
                    .bearer_auth(KEY_A)
                    .header("Idempotency-Key", "durable-3")
                    .json(&body())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let r = replay(base.clone()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), Some("storage_not_replicated"));

    replica.signal("CONT");
    let r = flint_testkit::poll_until(
        Duration::from_secs(10),
        "the replay to be accepted",
        || async {
            let r = replay(base.clone()).await;
            (r.status == 202).then_some(r)
        },
    )
    .await;
    assert_eq!(r.id(), first.id());
    assert!(exists(&replica, &payment_key(&first.id())).await);
}

#[tokio::test]
async fn with_no_replica_acknowledgement_asked_no_wait_is_sent() {
    let app = spawn_app().await;
    let replica = RedisServer::start_replica_of(&app.redis).await;
    let r = app.create("cheap-1", &body()).await;
    assert_eq!(r.status, 202);
    assert_eq!(app.create("cheap-1", &body()).await.status, 202);
    let cancel = format!("/v1/off_session_payments/{}/cancel", r.id());
    assert_eq!(app.post(&cancel, None).await.status, 200);
    assert_eq!(app.post(&cancel, None).await.status, 200);
    assert!(
        !waits_sent(&app.redis).await,
        "{}",
        info(&app.redis, "commandstats").await
    );
    assert!(
        !exists(&app.redis, "flint:{charges}:ack").await,
        "no marker"
    );
    drop(replica);
}

/// The `flint_payments_created_total` series of `purpose`.
async fn created_total(app: &TestApp, purpose: &str) -> Option<String> {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("flint_payments_created_total{{purpose=\"{purpose}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_owned))
}

#[tokio::test]
async fn a_create_answered_not_replicated_is_counted_once_as_created() {
    // `repeat_purchase`: no other test of this binary creates one (the metrics are the
    // process's).
    let mut b = body();
    b["purpose"] = serde_json::json!("repeat_purchase");
    let app = spawn_app_with(acked(1)).await;
    let replica = RedisServer::start_replica_of(&app.redis).await;
    replica.signal("STOP");
    let r = app.create("counted-1", &b).await;
    assert_eq!(r.code(), Some("storage_not_replicated"), "{}", r.body);
    assert_eq!(
        created_total(&app, "repeat_purchase").await.as_deref(),
        Some("1"),
        "the payment exists: counted when written, not only if replicas confirm it"
    );
    replica.signal("CONT");
    flint_testkit::poll_until(
        Duration::from_secs(10),
        "the retry to be accepted",
        || async { (app.create("counted-1", &b).await.status == 202).then_some(()) },
    )
    .await;
    assert_eq!(
        created_total(&app, "repeat_purchase").await.as_deref(),
        Some("1"),
        "its replay is not a second creation"
    );
}

#[tokio::test]
async fn a_confirmation_that_breaks_after_the_write_is_not_answered_as_nothing_changed() {
    // No replica: `WAIT 1` blocks for its whole (long) timeout, time enough to kill the pooled
    // connection it waits on, as a network fault would break it.
    let app = spawn_app_with(|config| {
        config.redis.min_replicas_acked = 1;
        config.redis.min_replicas_timeout_ms = 10_000;
    })
    .await;
    let started = Instant::now();
    let create = tokio::spawn({
        let http = app.http.clone();
        let url = app.url("/v1/off_session_payments");
        async move {
            Answer::from(
                http.post(url)
                    .bearer_auth(KEY_A)
                    .header("Idempotency-Key", "broken-1")
                    .json(&body())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    let waiting = flint_testkit::poll_until(
        Duration::from_secs(5),
        "the create's WAIT to be blocked on the primary",
        || async {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut conn(&app.redis).await)
                .await
                .unwrap();
            clients
                .lines()
                .find(|l| l.contains(" cmd=wait "))
                .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
                .map(str::to_owned)
        },
    )
    .await;
    let killed: u32 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&waiting)
        .query_async(&mut conn(&app.redis).await)
        .await
        .unwrap();
    assert_eq!(killed, 1);

    let r = create.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered when the connection broke, not at the WAIT's timeout"
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.code(),
        Some("storage_not_replicated"),
        "the payment was written: storage_unavailable would say nothing changed, and a client \
         believing it may create it again under a new key: {}",
        r.body
    );
    assert_eq!(payments(&app.redis).await, 1, "written on the primary");
}

async fn endpoint_change(app: &TestApp, path: &str, body: serde_json::Value) -> Answer {
    let r = app.post(path, Some(body)).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        r.body
    );
    r
}

#[tokio::test]
async fn webhook_endpoint_changes_are_answered_as_done_when_replicas_do_not_confirm_them() {
    let app = spawn_app_with(acked(1)).await;
    let replica = RedisServer::start_replica_of(&app.redis).await;
    replica.signal("STOP");

    // A 503 here would lose the secret (shown only in this answer) and its retry would make a
    // second endpoint.
    let made = endpoint_change(
        &app,
        "/v1/webhook_endpoints",
        serde_json::json!({"url": "https://hooks.example.com/flint", "enabled_events": ["*"]}),
    )
    .await;
    assert_eq!(made.status, 201);
    let id = made.id();
    let first = made.body["secret"].as_str().unwrap().to_owned();
    // ... and its retry would drop the secret the receiver still verifies with.
    let rotated = endpoint_change(
        &app,
        &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
        serde_json::json!({}),
    )
    .await;
    let second = rotated.body["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != first);
    endpoint_change(
        &app,
        &format!("/v1/webhook_endpoints/{id}"),
        serde_json::json!({"description": "billing"}),
    )
    .await;

    let listed = app.get("/v1/webhook_endpoints").await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "one endpoint"
    );
    let stored: String = redis::cmd("HGET")
        .arg("flint:{charges}:whe:acme")
        .arg(&id)
        .query_async(&mut conn(&app.redis).await)
        .await
        .unwrap();
    assert!(
        stored.contains(&first) && stored.contains(second),
        "both secrets sign during the overlap"
    );

    let deleted = app
        .delete_as(KEY_A, &format!("/v1/webhook_endpoints/{id}"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(
        waits_sent(&app.redis).await,
        "the WAITs were sent all the same"
    );
    replica.signal("CONT");
}
