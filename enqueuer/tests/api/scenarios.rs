//! Lists that always make progress with bounded cost, and ids that cannot reach a URL path or a
//! key name as anything but data.
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_rare_status_filter_finds_its_payments_on_the_first_page() {
    let app = spawn_app_with(|c| {
        c.enqueuer.rate_limit_per_second = 100_000;
        c.enqueuer.rate_limit_burst = 100_000;
    })
    .await;
    let first = app.create("rare-0", &body()).await.id();
    let canceled = app
        .post(&format!("/v1/off_session_payments/{first}/cancel"), None)
        .await;
    assert_eq!(canceled.status, 200);
    for i in 1..2_101 {
        assert_eq!(app.create(&format!("rare-{i}"), &body()).await.status, 202);
    }
    // 2,100 newer pending payments do not stand between the filter and its one payment.
    let page = app
        .get("/v1/off_session_payments?status=canceled&limit=10")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let data = page.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", page.body);
    assert_eq!(data[0]["id"], first.as_str());
    assert_eq!(page.body["has_more"], false);
    // The same for one customer's payments, and pages of a common status carry on.
    let page = app
        .get("/v1/off_session_payments?customer=cus_123&status=canceled")
        .await;
    assert_eq!(page.body["data"][0]["id"], first.as_str());
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/off_session_payments?status=pending&limit=100".to_owned(),
            Some(c) => {
                format!("/v1/off_session_payments?status=pending&limit=100&starting_after={c}")
            }
        };
        let page = app.get(&path).await;
        let data = page.body["data"].as_array().unwrap();
        assert!(data.iter().all(|p| p["status"] == "pending"));
        seen += data.len();
        if page.body["has_more"] != true {
            break;
        }
        cursor = data
            .last()
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned);
        assert!(cursor.is_some(), "has_more without a cursor: {}", page.body);
    }
    assert_eq!(seen, 2_100);
}

#[tokio::test]
async fn processor_ids_with_path_characters_are_refused() {
    let app = spawn_app().await;
    for (n, (field, value)) in [
        ("customer", "cus_1/../../v1/charges"),
        ("customer", "cus 1"),
        ("payment_method", "pm_1?expand=x"),
        ("payment_method", "pm_%2e%2e"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = body();
        b[field] = json!(value);
        let a = app.create(&format!("bad-{n}"), &b).await;
        assert_eq!(a.status, 400, "{field}={value}: {}", a.body);
        assert_eq!(a.param(), Some(field));
    }
    let id = app.create("ok", &body()).await.id();
    app.force_status(&id, "paused", 1).await;
    for pm in ["pm_1/../x", "pm_\n1", "pm 1"] {
        let a = app
            .post(
                &format!("/v1/off_session_payments/{id}/resume"),
                Some(json!({"payment_method": pm})),
            )
            .await;
        assert_eq!(a.status, 400, "{pm:?}: {}", a.body);
        assert_eq!(a.param(), Some("payment_method"));
    }
}
