//! `/v1/events`: every transition's event, with its tenant and the payment as it left it,
//! newest first, filtered by type or payment, tenant-scoped, and bad queries refused.
use serde_json::{Value, json};

use flint_shared::config::StorageFormat;

use crate::helpers::*;

flint_testkit::in_both_layouts!(
    each_change_of_a_payment_is_an_event_with_the_payment_as_it_left_it,
    pages_of_events_carry_on_from_their_cursor_to_the_end,
    pages_of_events_carry_on_from_their_cursor_to_the_end_compact,
    pages_of_events_carry_on_from_their_cursor_to_the_end_compact_unfiltered,
    a_tenant_sees_only_its_own_events,
    bad_event_queries_name_the_parameter_and_change_nothing,
    every_change_records_who_asked_for_it_and_why,
    a_finished_payments_events_share_its_backstop_expiry,
);

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn each_change_of_a_payment_is_an_event_with_the_payment_as_it_left_it() {
    let app = spawn_app().await;
    let first = app.create("e-1", &body()).await.id();
    let second = app.create("e-2", &body()).await.id();
    let canceled = app
        .post(&format!("/v1/off_session_payments/{first}/cancel"), None)
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);

    let page = app.get("/v1/events").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        types(&page.body),
        [
            "off_session_payment.canceled",
            "off_session_payment.created",
            "off_session_payment.created"
        ]
    );
    let newest = &page.body["data"][0];
    assert_eq!(newest["object"], "event");
    assert_eq!(newest["tenant"], "acme");
    assert_eq!(newest["data"]["object"]["id"], first.as_str());
    assert_eq!(newest["data"]["object"]["status"], "canceled");
    assert!(newest["data"]["object"].get("events").is_none());
    // The created event keeps the payment as it was then.
    let created = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["type"] == "off_session_payment.created"
                && e["data"]["object"]["id"] == first.as_str()
        })
        .unwrap();
    assert_eq!(created["data"]["object"]["status"], "pending");
    // The ids are those of the payment's own timeline.
    let payment = app.get(&format!("/v1/off_session_payments/{first}")).await;
    let timeline: Vec<&str> = payment.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let of_first = app.get(&format!("/v1/events?payment={first}")).await;
    assert_eq!(ids(&of_first.body), timeline);

    // One by id.
    let id = newest["id"].as_str().unwrap();
    let one = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.body, newest);

    // By type, and by type and payment.
    let created = app.get("/v1/events?type=off_session_payment.created").await;
    assert_eq!(ids(&created.body).len(), 2);
    let page = app
        .get(&format!(
            "/v1/events?type=off_session_payment.created&payment={second}"
        ))
        .await;
    assert_eq!(
        page.body["data"][0]["data"]["object"]["id"],
        second.as_str()
    );
    assert_eq!(ids(&page.body).len(), 1);
}

async fn pages_of_events_carry_on_from_their_cursor_to_the_end() {
    pages_of_events(StorageFormat::Json, true).await;
}

async fn pages_of_events_carry_on_from_their_cursor_to_the_end_compact() {
    pages_of_events(StorageFormat::Compact, false).await;
}

/// Compact with the unfiltered index kept (the default while earlier versions still run).
async fn pages_of_events_carry_on_from_their_cursor_to_the_end_compact_unfiltered() {
    pages_of_events(StorageFormat::Compact, true).await;
}

/// Listing every type merges the per-type indexes: pages newest first, each event once,
/// whether or not the unfiltered index is written.
async fn pages_of_events(format: StorageFormat, unfiltered: bool) {
    let app = spawn_app_with(|c| {
        c.redis.storage_format = format;
        c.redis.unfiltered_indexes = unfiltered;
    })
    .await;
    let mut made = Vec::new();
    for i in 0..7 {
        let id = app.create(&format!("p-{i}"), &body()).await.id();
        app.post(&format!("/v1/off_session_payments/{id}/cancel"), None)
            .await;
        made.push(id);
    }
    for filter in ["", "type=off_session_payment.canceled&"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/v1/events?{filter}limit=3"),
                Some(c) => format!("/v1/events?{filter}limit=3&starting_after={c}"),
            };
            let page = app.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.body);
            seen.extend(ids(&page.body));
            if page.body["has_more"] != true {
                break;
            }
            cursor = seen.last().cloned();
        }
        let expected = if filter.is_empty() { 14 } else { 7 };
        assert_eq!(seen.len(), expected, "{filter}");
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), expected, "an event listed twice: {seen:?}");
        let mut times = Vec::new();
        for id in &seen {
            let event = app.get(&format!("/v1/events/{id}")).await;
            let at: flint_shared::time::Timestamp =
                serde_json::from_value(event.body["created_at"].clone()).unwrap();
            times.push(at);
        }
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "not newest first: {seen:?} {times:?}"
        );
    }
    // The index of all the tenant's events is kept only while asked for.
    let kept = app.keys("flint:*:evx:acme").await;
    assert_eq!(kept.is_empty(), !unfiltered, "{kept:?}");
    // One payment's events, a page at a time.
    let first = &made[0];
    let page = app
        .get(&format!("/v1/events?payment={first}&limit=1"))
        .await;
    assert_eq!(types(&page.body), ["off_session_payment.canceled"]);
    assert_eq!(page.body["has_more"], true);
    let cursor = ids(&page.body)[0].clone();
    let page = app
        .get(&format!(
            "/v1/events?payment={first}&limit=1&starting_after={cursor}"
        ))
        .await;
    assert_eq!(types(&page.body), ["off_session_payment.created"]);
    assert_eq!(page.body["has_more"], false);
}

async fn a_tenant_sees_only_its_own_events() {
    let app = spawn_app().await;
    let id = app.create("mine", &body()).await.id();
    let page = app.get("/v1/events").await;
    let event = ids(&page.body)[0].clone();
    let theirs = app.get_as(KEY_B, "/v1/events").await;
    assert_eq!(theirs.status, 200);
    assert!(ids(&theirs.body).is_empty(), "{}", theirs.body);
    let one = app.get_as(KEY_B, &format!("/v1/events/{event}")).await;
    assert_eq!(one.status, 404);
    let of_payment = app.get_as(KEY_B, &format!("/v1/events?payment={id}")).await;
    assert_eq!(of_payment.status, 400);
    assert_eq!(of_payment.param(), Some("payment"));
    let cursor = app
        .get_as(KEY_B, &format!("/v1/events?starting_after={event}"))
        .await;
    assert_eq!(cursor.status, 400);
    assert_eq!(cursor.param(), Some("starting_after"));
    let anonymous = app.http.get(app.url("/v1/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn bad_event_queries_name_the_parameter_and_change_nothing() {
    let app = spawn_app().await;
    app.create("one", &body()).await;
    let unknown_event = "evt_000000000000000000000000";
    for (query, param, code) in [
        (
            "type=off_session_payment.charged",
            "type",
            "parameter_invalid",
        ),
        ("payment=pi_123", "payment", "parameter_invalid"),
        (
            "payment=osp_000000000000000000000000",
            "payment",
            "resource_missing",
        ),
        ("limit=0", "limit", "parameter_invalid"),
        ("limit=101", "limit", "parameter_invalid"),
        (
            "starting_after=osp_1",
            "starting_after",
            "parameter_invalid",
        ),
        (
            &format!("starting_after={unknown_event}") as &str,
            "starting_after",
            "resource_missing",
        ),
        ("colour=red", "colour", "parameter_unknown"),
    ] {
        let page = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert_eq!(page.param(), Some(param), "{query}");
        assert_eq!(page.code(), Some(code), "{query}");
    }
    for path in [
        "/v1/events/evt_nope",
        "/v1/events/osp_000000000000000000000000",
    ] {
        let one = app.get(path).await;
        assert_eq!(one.status, 404, "{path}");
    }
    let page = app.get("/v1/events").await;
    assert_eq!(ids(&page.body).len(), 1);
}

async fn every_change_records_who_asked_for_it_and_why() {
    let app = spawn_app().await;
    let id = app.create("who", &body()).await.id();
    // An operator must say why; a refused change changes nothing.
    for (request, param) in [
        (
            json!({"initiated_by": {"type": "operator", "id": "ann"}}),
            "reason",
        ),
        (
            json!({"initiated_by": {"type": "operator", "id": ""}, "reason": "x"}),
            "initiated_by.id",
        ),
        (
            json!({"initiated_by": {"type": "robot", "id": "r2"}}),
            "initiated_by.type",
        ),
        (json!({"reason": "a\u{0}b"}), "reason"),
    ] {
        let refused = app
            .post(
                &format!("/v1/off_session_payments/{id}/cancel"),
                Some(request.clone()),
            )
            .await;
        assert_eq!(refused.status, 400, "{request}: {}", refused.body);
        assert_eq!(refused.param(), Some(param), "{request}: {}", refused.body);
    }
    assert_eq!(
        app.get(&format!("/v1/off_session_payments/{id}"))
            .await
            .body["status"],
        "pending"
    );

    app.force_status(&id, "paused", 1).await;
    let resumed = app
        .post(
            &format!("/v1/off_session_payments/{id}/resume"),
            Some(json!({"initiated_by": {"type": "operator", "id": "ann", "reason": "card updated by phone"}})),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let canceled = app
        .post(
            &format!("/v1/off_session_payments/{id}/cancel"),
            Some(json!({"initiated_by": {"type": "service", "id": "dunning"}, "reason": "plan ended"})),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);

    let page = app.get(&format!("/v1/events?payment={id}")).await;
    let events = page.body["data"].as_array().unwrap();
    let by_type = |t: &str| {
        events
            .iter()
            .find(|e| e["type"] == t)
            .unwrap_or_else(|| panic!("no {t}: {}", page.body))
    };
    let created = by_type("off_session_payment.created");
    assert_eq!(
        created["initiated_by"],
        json!({"type": "service", "id": "billing"})
    );
    let resumed = by_type("off_session_payment.resumed");
    assert_eq!(
        resumed["initiated_by"],
        json!({"type": "operator", "id": "ann"})
    );
    assert_eq!(resumed["detail"], "card updated by phone");
    let canceled = by_type("off_session_payment.canceled");
    assert_eq!(
        canceled["initiated_by"],
        json!({"type": "service", "id": "dunning"})
    );
    assert_eq!(canceled["detail"], "plan ended");
    // The payment's own timeline says the same.
    let payment = app.get(&format!("/v1/off_session_payments/{id}")).await;
    let timeline = payment.body["events"].as_array().unwrap();
    assert_eq!(timeline.last().unwrap()["initiated_by"]["id"], "dunning");
}

async fn a_finished_payments_events_share_its_backstop_expiry() {
    let app = spawn_app().await;
    let id = app.create("ttl", &body()).await.id();
    let page = app.get(&format!("/v1/events?payment={id}")).await;
    let created = ids(&page.body)[0].clone();
    let mut redis = app.redis().await;
    let ttl = |key: String| {
        let mut redis = redis.clone();
        async move {
            redis::cmd("TTL")
                .arg(key)
                .query_async::<i64>(&mut redis)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        ttl(format!("{}:evt:{created}", app.prefix_of(&id))).await,
        -1,
        "a live payment's events stay"
    );
    app.post(&format!("/v1/off_session_payments/{id}/cancel"), None)
        .await;
    let page = app.get(&format!("/v1/events?payment={id}")).await;
    for event in ids(&page.body) {
        let left = ttl(format!("{}:evt:{event}", app.prefix_of(&id))).await;
        let record = ttl(app.payment_key(&id)).await;
        assert!(
            left > 0 && (left - record).abs() <= 1,
            "{event}: {left} s, record {record} s"
        );
    }
    let _: () = redis::cmd("PING").query_async(&mut redis).await.unwrap();
}
