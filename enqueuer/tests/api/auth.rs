use crate::helpers::*;

#[tokio::test]
async fn every_v1_route_needs_a_valid_key() {
    let app = spawn_app().await;
    let id = app.create("a", &body()).await.id();
    let routes = [
        ("POST", "/v1/off_session_payments".to_owned()),
        ("GET", "/v1/off_session_payments".to_owned()),
        ("GET", format!("/v1/off_session_payments/{id}")),
        ("POST", format!("/v1/off_session_payments/{id}/cancel")),
        ("POST", format!("/v1/off_session_payments/{id}/resume")),
    ];
    for (method, path) in &routes {
        for key in [None, Some("wrong-key"), Some("")] {
            let mut request = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .header("Idempotency-Key", "k");
            if let Some(k) = key {
                request = request.header("Authorization", format!("Bearer {k}"));
            }
            let r = Answer::from(request.json(&body()).send().await.unwrap()).await;
            assert_eq!(r.status, 401, "{method} {path} with {key:?}");
            assert_eq!(r.body["error"]["type"], "authentication_error");
            assert!(
                !r.body.to_string().contains("wrong-key"),
                "keys are never echoed"
            );
        }
    }
    // Nothing changed.
    assert_eq!(
        app.get(&format!("/v1/off_session_payments/{id}"))
            .await
            .body["status"],
        "pending"
    );
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_payments() {
    let app = spawn_app().await;
    let id = app.create_as(KEY_A, "x", &body()).await.id();
    let theirs = app
        .get_as(KEY_B, &format!("/v1/off_session_payments/{id}"))
        .await;
    assert_eq!(theirs.status, 404);
    let list = app.get_as(KEY_B, "/v1/off_session_payments").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
    let cancel = Answer::from(
        app.http
            .post(app.url(&format!("/v1/off_session_payments/{id}/cancel")))
            .bearer_auth(KEY_B)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cancel.status, 404);
    assert_eq!(
        app.get(&format!("/v1/off_session_payments/{id}"))
            .await
            .body["status"],
        "pending"
    );
    let cursor = app
        .get_as(
            KEY_B,
            &format!("/v1/off_session_payments?starting_after={id}"),
        )
        .await;
    assert_eq!(
        (cursor.status, cursor.param()),
        (400, Some("starting_after"))
    );
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.enqueuer.rate_limit_per_second = 1;
        c.enqueuer.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app.get("/v1/off_session_payments").await;
        if r.status == 429 {
            assert_eq!(r.code(), Some("rate_limited"));
            assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        app.get_as(KEY_B, "/v1/off_session_payments").await.status,
        200,
        "limits are per key"
    );
}
