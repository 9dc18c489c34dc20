use serde_json::json;

use flint_shared::config::StorageFormat;

use crate::helpers::*;

flint_testkit::in_both_layouts!(
    pages_cover_every_payment_once_in_order_across_ties_and_partitions,
    pages_cover_every_payment_once_in_order_across_ties_and_partitions_compact,
    pages_cover_every_payment_once_in_order_across_ties_and_partitions_compact_unfiltered,
    payments_list_newest_first_with_cursors_and_filters,
    bad_list_queries_are_400s_naming_the_parameter,
);

fn ids(a: &Answer) -> Vec<String> {
    a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn payments_list_newest_first_with_cursors_and_filters() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let mut b = body();
        b["customer"] = json!(if i % 2 == 0 { "cus_even" } else { "cus_odd" });
        created.push(app.create(&format!("l{i}"), &b).await.id());
        // Distinct creation times (milliseconds) keep the expected order unambiguous: the
        // next payment is created only once the clock has moved past this one's answer.
        let answered = std::time::SystemTime::now();
        while std::time::SystemTime::now()
            .duration_since(answered)
            .unwrap_or_default()
            < std::time::Duration::from_millis(1)
        {
            tokio::task::yield_now().await;
        }
    }
    created.reverse();
    let page = app.get("/v1/off_session_payments?limit=2").await;
    assert_eq!(page.body["object"], "list");
    assert_eq!(ids(&page), created[..2]);
    assert_eq!(page.body["has_more"], true);
    let next = app
        .get(&format!(
            "/v1/off_session_payments?limit=2&starting_after={}",
            created[1]
        ))
        .await;
    assert_eq!(ids(&next), created[2..4]);
    let last = app
        .get(&format!(
            "/v1/off_session_payments?limit=2&starting_after={}",
            created[3]
        ))
        .await;
    assert_eq!(ids(&last), created[4..]);
    assert_eq!(last.body["has_more"], false);

    let even = app.get("/v1/off_session_payments?customer=cus_even").await;
    assert_eq!(ids(&even).len(), 3);
    app.post(
        &format!("/v1/off_session_payments/{}/cancel", created[0]),
        None,
    )
    .await;
    let canceled = app.get("/v1/off_session_payments?status=canceled").await;
    assert_eq!(ids(&canceled), vec![created[0].clone()]);
    let pending_odd = app
        .get("/v1/off_session_payments?status=pending&customer=cus_odd")
        .await;
    assert_eq!(ids(&pending_odd).len(), 2);
}

async fn bad_list_queries_are_400s_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("colour=red", "colour"),
        ("starting_after=osp_nope", "starting_after"),
    ] {
        let r = app.get(&format!("/v1/off_session_payments?{query}")).await;
        assert_eq!(
            (r.status, r.param()),
            (400, Some(param)),
            "{query}: {}",
            r.body
        );
    }
}

async fn pages_cover_every_payment_once_in_order_across_ties_and_partitions() {
    pages_cover_every_payment(StorageFormat::Json, true).await;
}

async fn pages_cover_every_payment_once_in_order_across_ties_and_partitions_compact() {
    pages_cover_every_payment(StorageFormat::Compact, false).await;
}

/// Compact with the unfiltered indexes kept (the default while earlier versions still run).
async fn pages_cover_every_payment_once_in_order_across_ties_and_partitions_compact_unfiltered() {
    pages_cover_every_payment(StorageFormat::Compact, true).await;
}

/// Listing every status merges the per-status indexes: pages across ties, partitions and
/// statuses, and a cursor whose payment changed status since its page; the same whether or
/// not the unfiltered indexes are written.
async fn pages_cover_every_payment(format: StorageFormat, unfiltered: bool) {
    let app = spawn_app_with(|c| {
        c.redis.storage_format = format;
        c.redis.unfiltered_indexes = unfiltered;
    })
    .await;
    // Created eight at a time, so that many share a millisecond.
    let mut created = Vec::new();
    for batch in 0..4 {
        let answers = (0..8).map(|i| {
            let app = &app;
            async move { app.create(&format!("tie-{batch}-{i}"), &body()).await.id() }
        });
        created.extend(futures::future::join_all(answers).await);
    }
    // The order a listing promises: newest first, then the larger id first.
    let mut expected = Vec::new();
    for id in &created {
        let p = app.get(&format!("/v1/off_session_payments/{id}")).await;
        let at: flint_shared::time::Timestamp =
            serde_json::from_value(p.body["created_at"].clone()).unwrap();
        expected.push((at.unix_ms(), id.clone()));
    }
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let spread: std::collections::BTreeSet<usize> = created
        .iter()
        .map(|id| app.partitions.of_payment(id))
        .collect();
    assert_eq!(
        spread.len(),
        app.partitions.count(),
        "every partition holds some"
    );
    // Every third one canceled: the listing spans two statuses' indexes.
    for id in created.iter().step_by(3) {
        let r = app
            .post(&format!("/v1/off_session_payments/{id}/cancel"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    for limit in [1, 3, 5, 7, 100] {
        let mut listed: Vec<String> = Vec::new();
        loop {
            let mut path = format!("/v1/off_session_payments?limit={limit}");
            if let Some(last) = listed.last() {
                path.push_str(&format!("&starting_after={last}"));
            }
            let page = app.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let ids = ids(&page);
            assert!(ids.len() <= limit);
            listed.extend(ids);
            if page.body["has_more"] != true {
                break;
            }
            assert!(listed.len() <= expected.len(), "limit {limit}: {listed:?}");
        }
        assert_eq!(listed, expected, "limit {limit}");
    }

    // A cursor whose payment is canceled after its page of pending ones: the next page of
    // pending ones goes on from it.
    let canceled: Vec<&String> = created.iter().step_by(3).collect();
    let pending: Vec<String> = expected
        .iter()
        .filter(|id| !canceled.contains(id))
        .cloned()
        .collect();
    let first = app
        .get("/v1/off_session_payments?status=pending&limit=4")
        .await;
    assert_eq!(ids(&first), pending[..4]);
    let cursor = &pending[3];
    let r = app
        .post(&format!("/v1/off_session_payments/{cursor}/cancel"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let next = app
        .get(&format!(
            "/v1/off_session_payments?status=pending&limit=4&starting_after={cursor}"
        ))
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(ids(&next), pending[4..8]);

    // The indexes of all a tenant's (a customer's) payments, which versions before this one
    // list from, are kept only while asked for.
    let all_indexes = app.keys("flint:*:idx:acme").await.len()
        + app.keys("flint:*:idx:acme:cus:*").await.len()
        - app.keys("flint:*:idx:acme:cus:*:st:*").await.len();
    let kept = if unfiltered {
        2 * app.partitions.count()
    } else {
        0
    };
    assert_eq!(all_indexes, kept);
}
