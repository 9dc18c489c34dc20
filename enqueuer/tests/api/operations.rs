use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.create("m1", &body()).await;
    app.create("m1", &body()).await;
    let invented = reqwest::Method::from_bytes(b"FOO1").unwrap();
    let r = app
        .http
        .request(invented, app.url("/whatever/123"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"flint_api_requests_total{route="/v1/off_session_payments",method="POST",status="202"}"#,
        r#"flint_payments_created_total{purpose="subscription"}"#,
        "flint_idempotent_replays_total",
        // A histogram (it adds up across a fleet), not a per-process summary.
        r#"flint_api_request_duration_seconds_bucket{route="/v1/off_session_payments",method="POST",le="0.005"}"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("osp_"), "no payment ids in metrics");
    // A caller cannot add a series, and probes and scrapes are not API traffic.
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(!text.contains("FOO1"), "{text}");
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            !text.contains(&format!("route=\"{probe}\"")),
            "{probe}: {text}"
        );
    }
    assert!(!text.contains("quantile="), "no summaries: {text}");
    // Every series has its HELP; counters with a closed label set exist from the start.
    for needle in [
        "# HELP flint_payments_created_total ",
        "# HELP flint_api_request_duration_seconds ",
        r#"flint_payments_created_total{purpose="balance_recovery"} 0"#,
        r#"flint_build_info{role="enqueuer",version=""#,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[tokio::test]
async fn readiness_fails_while_redis_may_evict_keys() {
    let app = spawn_app().await;
    let policy = |policy: &'static str| {
        let url = app.redis.url();
        async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory-policy")
                .arg(policy)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    let ready = || async {
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    policy("allkeys-lru").await;
    assert_eq!(ready().await, (503, "redis settings unsafe".to_owned()));
    policy("noeviction").await;
    assert_eq!(ready().await.0, 200);
}

#[tokio::test]
async fn with_redis_down_writes_answer_503_and_leave_nothing_behind() {
    let mut app = spawn_app().await;
    assert_eq!(app.create("warm", &body()).await.status, 202);
    app.redis.kill();
    let r = app.create("during-outage", &body()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), Some("storage_unavailable"));
    assert_eq!(r.header("retry-after"), Some("1"));
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(app.get("/v1/off_session_payments").await.status, 503);
    app.redis.start_again();
    flint_testkit::poll_until(
        std::time::Duration::from_secs(10),
        "the API to reach redis again",
        || async { (app.get("/v1/off_session_payments").await.status == 200).then_some(()) },
    )
    .await;
    // The failed create left no claim: the same key now creates.
    let r = app.create("during-outage", &body()).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("idempotent-replayed"), None);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/off_session_payments",
        "/v1/off_session_payments/{id}",
        "/v1/off_session_payments/{id}/cancel",
        "/v1/off_session_payments/{id}/resume",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/events",
        "/v1/events/{id}",
        "/v1/events/{id}/redeliver",
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints/{id}",
        "/v1/webhook_endpoints/{id}/rotate_secret",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(paths["/v1/off_session_payments"]["post"]["responses"]["409"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Payment",
        "CreatePaymentRequest",
        "ErrorBody",
        "PaymentList",
        "Event",
        "EventList",
        "Endpoint",
        "EndpointWithSecret",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    // Every stored payment has its timeline.
    let required = schemas["Payment"]["required"].as_array().unwrap();
    assert!(required.iter().any(|r| r == "events"), "{required:?}");
}
