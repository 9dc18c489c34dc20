//! How payments and events are kept in a real redis-server: compact documents in small hashes,
//! a pending payment's `created` event made from its record until the payment changes (and the
//! same bytes after), and records and events written whole as JSON by earlier versions still
//! read and rewritten compactly.

use std::time::Duration;

use flint_shared::config::StorageFormat;
use flint_shared::ids::{EventId, PaymentId};
use flint_shared::payment::event::{Event, encode};
use flint_shared::payment::store::{EventFilter, JobAction, Store, Versioned};
use flint_shared::payment::{CreatePaymentRequest, EventKind, Payment, Status};
use flint_shared::time::Timestamp;
use flint_testkit::redis::RedisServer;
use redis::aio::MultiplexedConnection;
use serde_json::json;

fn store_in(redis: &RedisServer, format: StorageFormat) -> Store {
    Store::new(
        flint_shared::redis_target::RedisTarget::Standalone(redis.url()),
        "charges",
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .with_storage_format(format)
}

fn store(redis: &RedisServer) -> Store {
    store_in(redis, StorageFormat::Compact)
}

async fn create(store: &Store, extra: serde_json::Value) -> (PaymentId, Versioned) {
    let mut body = json!({
        "customer": "cus_1", "amount": {"value": 2500, "currency": "usd"},
        "purpose": "subscription", "initiated_by": {"type": "service", "id": "billing"},
        "context": {"invoice_id": "in_1"}
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let request: CreatePaymentRequest = serde_json::from_value(body).unwrap();
    let at = Timestamp::now();
    let payment = Payment::create(PaymentId::generate(), request.validate(at).unwrap(), at);
    let id = payment.id.clone();
    store
        .create("acme", &format!("key-{id}"), "fp", payment, at)
        .await
        .unwrap();
    let (_, current) = store.get_any(id.as_str()).await.unwrap().unwrap();
    (id, current)
}

async fn fields(
    conn: &mut MultiplexedConnection,
    key: &str,
    names: &[&str],
) -> Vec<Option<String>> {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(key);
    for n in names {
        cmd.arg(*n);
    }
    let raw: Vec<Option<Vec<u8>>> = cmd.query_async(conn).await.unwrap();
    raw.into_iter()
        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect()
}

async fn encoding(conn: &mut MultiplexedConnection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn memory(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap()
}

fn payment_key(id: &PaymentId) -> String {
    format!("flint:{{charges}}:pay:{id}")
}

fn event_key(id: &str) -> String {
    format!("flint:{{charges}}:evt:{id}")
}

/// Every way an event is read: by id (as a webhook delivery takes it), in the tenant's listing,
/// in the payment's own listing.
async fn read_every_way(store: &Store, payment: &PaymentId, event: &str) -> String {
    let (_, json) = store.event_any(event).await.unwrap().unwrap();
    let as_stored: Event = serde_json::from_str(&json).unwrap();
    assert_eq!(
        store.event("acme", event).await.unwrap().unwrap(),
        as_stored
    );
    assert!(store.event("globex", event).await.unwrap().is_none());
    let listed = store
        .events("acme", EventFilter::default(), 100, None)
        .await
        .unwrap()
        .unwrap();
    assert!(
        listed.events.contains(&as_stored),
        "{event} in the tenant's listing"
    );
    let of_payment = store
        .events(
            "acme",
            EventFilter {
                kind: None,
                payment: Some(payment.as_str()),
            },
            100,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        of_payment.events.contains(&as_stored),
        "{event} in its payment's listing"
    );
    json
}

fn canceled(current: &Versioned) -> Payment {
    let mut p = current.payment.clone();
    let now = Timestamp::now();
    p.status = Status::Canceled;
    p.record(EventKind::Canceled, None, now);
    p
}

/// `payment` with an attempt started, and failed when `failed`.
fn attempted(payment: &Payment, failed: bool) -> Payment {
    let mut p = payment.clone();
    let now = Timestamp::now();
    p.record(EventKind::AttemptStarted, Some("attempt 1".into()), now);
    if failed {
        p.record(EventKind::AttemptFailed, Some("card_declined".into()), now);
    }
    p
}

/// The names of the fields of hash `key`, sorted.
async fn field_names(conn: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let mut names: Vec<String> = redis::cmd("HKEYS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    names.sort_unstable();
    names
}

/// The keys matching `pattern`.
async fn keys(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap()
}

/// A pending payment is one small hash in Redis's compact encoding, and its `created` event
/// has no key of its own: the event is made from the record, and reads byte for byte the same
/// before the payment's first change and after it, when it is written in full. Another tenant
/// does not see it, and an event id that names a payment whose created event has another id
/// finds nothing.
#[tokio::test]
async fn a_pending_payment_is_compact_and_its_created_event_reads_the_same_after_it_changes() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut conn = redis.connect().await;
    let (id, current) = create(&store, json!({"metadata": {"plan": "pro"}})).await;
    let created = current.payment.events[0].id.to_string();

    let record = payment_key(&id);
    assert_eq!(encoding(&mut conn, &record).await, "listpack");
    let record_bytes = memory(&mut conn, &record).await;
    assert!(
        record_bytes < 500,
        "{record_bytes} bytes for a pending payment"
    );
    let [d, k, l, ek, e1] = <[Option<String>; 5]>::try_from(
        fields(&mut conn, &record, &["d", "k", "l", "ek", "e1"]).await,
    )
    .unwrap();
    assert_eq!(d, None, "no JSON kept whole");
    assert!(k.is_some() && l.is_some());
    assert_eq!(
        (ek.as_deref(), e1),
        (Some("1"), Some(format!("{created}:0")))
    );
    // The event is kept in the payment, which its id names.
    assert_eq!(created, EventId::created_of(&id).to_string());
    let event = event_key(&created);
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&event)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "no key of its own");

    let before = read_every_way(&store, &id, &created).await;
    assert!(
        store
            .event_any(EventId::generate().as_str())
            .await
            .unwrap()
            .is_none()
    );
    // A payment whose `created` event has another id (as versions before this one gave it) is
    // not found through an id that merely names the payment.
    let (other, _) = create(&store, json!({})).await;
    let named = EventId::created_of(&other);
    assert!(store.event_any(named.as_str()).await.unwrap().is_some());
    let () = redis::cmd("HSET")
        .arg(payment_key(&other))
        .arg("e1")
        .arg(format!("{}:0", EventId::generate()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(store.event_any(named.as_str()).await.unwrap().is_none());
    let snapshot: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(snapshot["type"], "off_session_payment.created");
    assert_eq!(snapshot["tenant"], "acme");
    assert_eq!(snapshot["data"]["object"]["id"], id.as_str());
    assert_eq!(snapshot["data"]["object"]["status"], "pending");
    assert!(snapshot["data"]["object"].get("events").is_none());

    // A change recording several events: the timeline outgrows one piece, the hash stays small.
    let p = canceled(&Versioned {
        payment: attempted(&current.payment, true),
        ..current.clone()
    });
    store
        .transition(&current, &p, JobAction::Unschedule, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(encoding(&mut conn, &record).await, "listpack");
    assert_eq!(
        fields(&mut conn, &record, &["ek"]).await,
        [Some("2".to_owned())]
    );
    let [t, k] =
        <[Option<String>; 2]>::try_from(fields(&mut conn, &event, &["t", "k"]).await).unwrap();
    assert_eq!(t.as_deref(), Some("acme"));
    assert!(k.is_some(), "written in full, as a document");
    assert_eq!(fields(&mut conn, &record, &["l"]).await, [None]);
    assert_eq!(encoding(&mut conn, &event).await, "listpack");
    assert_eq!(read_every_way(&store, &id, &created).await, before);
    let (_, now) = store.get_any(id.as_str()).await.unwrap().unwrap();
    assert_eq!(now.payment, p);
}

/// A record whose document shrinks leaves none of its former pieces behind.
#[tokio::test]
async fn a_smaller_record_leaves_no_piece_of_the_larger_one() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut conn = redis.connect().await;
    // Ids do not compress: a description of them makes a document of many pieces.
    let long: String = (0..12).map(|_| PaymentId::generate().to_string()).collect();
    let (id, current) = create(&store, json!({"description": &long[..300]})).await;
    let record = payment_key(&id);
    let count = |f: Vec<Option<String>>| f[0].as_deref().unwrap().parse::<usize>().unwrap();
    let large = count(fields(&mut conn, &record, &["k"]).await);
    assert!(large > 4, "{large} pieces");

    let mut p = canceled(&current);
    p.description = None;
    store
        .transition(&current, &p, JobAction::Unschedule, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let small = count(fields(&mut conn, &record, &["k"]).await);
    assert!(small < large, "{small} pieces after, {large} before");
    let names = field_names(&mut conn, &record).await;
    let pieces = names
        .iter()
        .filter(|n| n.starts_with('d') && n[1..].parse::<usize>().is_ok())
        .count();
    assert_eq!(pieces, small, "fields {names:?}");
    assert_eq!(
        store.get_any(id.as_str()).await.unwrap().unwrap().1.payment,
        p
    );
}

/// Records and events that earlier versions wrote whole as JSON (field `d`, no `e`, the
/// `created` event in full) read as before and are listed; the first change rewrites the
/// record compactly and leaves the events as they are; the reaper forgets them all.
#[tokio::test]
async fn records_and_events_written_as_json_by_earlier_versions_still_read() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut conn = redis.connect().await;
    let (id, current) = create(&store, json!({})).await;
    let created = current.payment.events[0].id.to_string();
    let (record_json, _) = encode(&current.payment).unwrap();
    let event_json = store.event_any(&created).await.unwrap().unwrap().1;
    // As an earlier version wrote them.
    let record = payment_key(&id);
    let event = event_key(&created);
    let old_fields: Vec<Option<String>> = fields(&mut conn, &record, &["s", "t", "c", "v"]).await;
    let () = redis::pipe()
        .atomic()
        .del(&record)
        .hset_multiple(
            &record,
            &[
                ("d", record_json.as_str()),
                ("s", old_fields[0].as_deref().unwrap()),
                ("t", old_fields[1].as_deref().unwrap()),
                ("c", old_fields[2].as_deref().unwrap()),
                ("v", old_fields[3].as_deref().unwrap()),
            ],
        )
        .del(&event)
        .hset_multiple(&event, &[("d", event_json.as_str()), ("t", "acme")])
        .query_async(&mut conn)
        .await
        .unwrap();

    let (_, read) = store.get_any(id.as_str()).await.unwrap().unwrap();
    assert_eq!(read.payment, current.payment);
    assert_eq!(read_every_way(&store, &id, &created).await, event_json);
    let listed = store
        .list("acme", None, None, 10, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.payments, std::slice::from_ref(&current.payment));

    let p = canceled(&read);
    store
        .transition(&read, &p, JobAction::Unschedule, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let [d, k, e] =
        <[Option<String>; 3]>::try_from(fields(&mut conn, &record, &["d", "k", "ek"]).await)
            .unwrap();
    assert_eq!(d, None, "the JSON written whole is gone");
    assert!(k.is_some() && e.is_some());
    assert_eq!(
        fields(&mut conn, &event, &["d"]).await,
        [Some(event_json.clone())]
    );
    assert_eq!(read_every_way(&store, &id, &created).await, event_json);
    assert_eq!(
        store.get_any(id.as_str()).await.unwrap().unwrap().1.payment,
        p
    );

    // Its retention over, the payment and every one of its events are forgotten.
    let later = Timestamp::now().plus(Duration::from_secs(2 * 3600));
    assert_eq!(store.reap(0, later, 10).await.unwrap(), 1);
    assert_eq!(
        keys(&mut conn, "flint:{charges}:evt:*").await,
        Vec::<String>::new()
    );
    assert!(store.get_any(id.as_str()).await.unwrap().is_none());
    let listed = store
        .events("acme", EventFilter::default(), 10, None)
        .await
        .unwrap()
        .unwrap();
    assert!(listed.events.is_empty());
}

/// `[redis] storage_format` may change either way on a live system: each format reads what the
/// other wrote, a payment's change rewrites it in the writer's format and leaves nothing of the
/// other behind, and a payment written as JSON is forgotten whole (its events found through its
/// JSON).
#[tokio::test]
async fn the_storage_format_switches_either_way_and_leaves_nothing_of_the_other() {
    let redis = RedisServer::start();
    let json_store = store_in(&redis, StorageFormat::Json);
    let compact_store = store(&redis);
    let mut conn = redis.connect().await;
    let (id, current) = create(&json_store, json!({"metadata": {"plan": "pro"}})).await;
    let record = payment_key(&id);
    let created = current.payment.events[0].id.to_string();
    let event = event_key(&created);
    // As versions before the compact format wrote it.
    let [d, k, ek, l] =
        <[Option<String>; 4]>::try_from(fields(&mut conn, &record, &["d", "k", "ek", "l"]).await)
            .unwrap();
    assert!(d.is_some() && k.is_none() && ek.is_none() && l.is_none());
    let event_json = fields(&mut conn, &event, &["d"]).await[0].clone().unwrap();
    assert_eq!(
        read_every_way(&compact_store, &id, &created).await,
        event_json
    );
    assert_eq!(read_every_way(&json_store, &id, &created).await, event_json);

    // A compact writer's change: compact, and nothing of the JSON left.
    let (_, read) = compact_store.get_any(id.as_str()).await.unwrap().unwrap();
    let p = attempted(&read.payment, false);
    compact_store
        .transition(&read, &p, JobAction::None, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let [d, k, ek] =
        <[Option<String>; 3]>::try_from(fields(&mut conn, &record, &["d", "k", "ek"]).await)
            .unwrap();
    assert!(d.is_none() && k.is_some() && ek.is_some());
    let started = p.events[1].id.to_string();
    let started_json = read_every_way(&json_store, &id, &started).await;
    assert_eq!(
        read_every_way(&compact_store, &id, &started).await,
        started_json
    );

    // Back to JSON, finishing: JSON, and nothing of the compact form left.
    let (_, read) = json_store.get_any(id.as_str()).await.unwrap().unwrap();
    assert_eq!(read.payment, p);
    let p = canceled(&read);
    json_store
        .transition(&read, &p, JobAction::Unschedule, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        field_names(&mut conn, &record).await,
        ["c", "d", "s", "t", "v"]
    );
    assert_eq!(
        compact_store
            .get_any(id.as_str())
            .await
            .unwrap()
            .unwrap()
            .1
            .payment,
        p
    );
    assert_eq!(
        read_every_way(&compact_store, &id, &created).await,
        event_json
    );
    assert_eq!(
        read_every_way(&compact_store, &id, &started).await,
        started_json
    );

    // Its retention over, the payment goes with every event and index entry.
    let later = Timestamp::now().plus(Duration::from_secs(2 * 3600));
    assert_eq!(compact_store.reap(0, later, 10).await.unwrap(), 1);
    for pattern in [
        "flint:{charges}:evt:*",
        "flint:{charges}:evx:*",
        "flint:{charges}:pay:*",
    ] {
        assert_eq!(
            keys(&mut conn, pattern).await,
            Vec::<String>::new(),
            "{pattern}"
        );
    }
}

/// A payment written compact that still keeps its `created` event, changed by a JSON writer:
/// the event is written in full, as JSON, with the bytes it read as before, and the record
/// keeps nothing of the compact form.
#[tokio::test]
async fn a_json_writer_changing_a_compact_payment_writes_its_created_event_in_full() {
    let redis = RedisServer::start();
    let compact_store = store(&redis);
    let json_store = store_in(&redis, StorageFormat::Json);
    let mut conn = redis.connect().await;
    let (id, _) = create(&compact_store, json!({})).await;
    let created = EventId::created_of(&id).to_string();
    let before = read_every_way(&json_store, &id, &created).await;
    let (_, read) = json_store.get_any(id.as_str()).await.unwrap().unwrap();
    assert!(read.keeps_created);
    let p = canceled(&read);
    json_store
        .transition(&read, &p, JobAction::Unschedule, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let event = event_key(&created);
    assert_eq!(
        fields(&mut conn, &event, &["d", "t", "k"]).await,
        [Some(before.clone()), Some("acme".to_owned()), None]
    );
    assert_eq!(
        field_names(&mut conn, &payment_key(&id)).await,
        ["c", "d", "s", "t", "v"]
    );
    assert_eq!(read_every_way(&compact_store, &id, &created).await, before);
}

/// An event type this version does not know (written by a later one) in a payment's timeline
/// leaves the others' types where they are.
#[tokio::test]
async fn an_unknown_event_type_misfiles_no_other_event() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let mut conn = redis.connect().await;
    let (id, current) = create(&store, json!({})).await;
    let p = attempted(&current.payment, true);
    store
        .transition(&current, &p, JobAction::None, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    // The attempt_started event's code, as a later version's new kind would read to this one.
    let timeline: Vec<String> = p
        .events
        .iter()
        .zip(["0", "42", "2"])
        .map(|(e, code)| format!("{}:{code}", e.id))
        .collect();
    let () = redis::cmd("HSET")
        .arg(payment_key(&id))
        .arg("ek")
        .arg(1)
        .arg("e1")
        .arg(timeline.join(","))
        .query_async(&mut conn)
        .await
        .unwrap();
    let failed = store
        .events(
            "acme",
            EventFilter {
                kind: Some(EventKind::AttemptFailed),
                payment: Some(id.as_str()),
            },
            10,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<String> = failed.events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, [p.events[2].id.to_string()]);
}
