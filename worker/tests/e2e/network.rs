use serde_json::json;

use crate::harness::*;

flint_testkit::in_both_layouts!(
    a_visa_category_1_decline_is_never_retried_on_that_card_even_by_another_payment,
    a_visa_card_gets_at_most_twenty_reattempts_in_thirty_days,
    mastercard_advice_03_and_21_are_never_retried_on_that_card,
    mastercard_advice_02_waits_72_hours_and_the_decline_rate_limit_24,
);

fn outcomes(p: &serde_json::Value) -> Vec<String> {
    p["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn a_visa_category_1_decline_is_never_retried_on_that_card_even_by_another_payment() {
    let s = stack(vec![100]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedLostCard")
        .await;
    let first = s.pay(&cus, Some(&pm), json!({})).await;
    s.settles(&first, &["failed"]).await;
    let second = s.pay(&cus, Some(&pm), json!({})).await;
    let p = s.settles(&second, &["failed"]).await;
    assert_eq!(outcomes(&p), ["blocked_by_network_rule"]);
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("visa_category_1"),
        "{p}"
    );
    assert_eq!(
        s.intents(&cus).await.len(),
        1,
        "nothing was sent for the blocked payment"
    );
}

async fn a_visa_card_gets_at_most_twenty_reattempts_in_thirty_days() {
    let s = stack(vec![20]).await;
    let (cus, pm) = s
        .sandbox
        .customer_with_card("pm_card_chargeDeclinedInsufficientFunds")
        .await;
    let policy =
        json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 15, "window_hours": 1}});
    let a = s.pay(&cus, Some(&pm), policy.clone()).await;
    let pa = s.settles(&a, &["failed"]).await;
    assert_eq!(outcomes(&pa).len(), 15);
    let b = s.pay(&cus, Some(&pm), policy).await;
    let pb = s.settles(&b, &["failed"]).await;
    let ob = outcomes(&pb);
    assert_eq!(
        ob.iter().filter(|o| *o == "soft_decline").count(),
        5,
        "{ob:?}"
    );
    assert_eq!(
        ob.last().map(String::as_str),
        Some("blocked_by_network_rule"),
        "{ob:?}"
    );
    assert!(
        pb["last_error"]
            .as_str()
            .unwrap()
            .contains("visa_20_in_30_days"),
        "{pb}"
    );
}

/// Milliseconds from now until the RFC 3339 time `at`.
fn ms_until(at: &serde_json::Value) -> i64 {
    let at = time::OffsetDateTime::parse(
        at.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    i64::try_from((at - time::OffsetDateTime::now_utc()).whole_milliseconds()).unwrap()
}

async fn mastercard_advice_03_and_21_are_never_retried_on_that_card() {
    let s = stack(vec![100]).await;
    for (card, rule) in [
        (
            "pm_card_flint_mastercardAdviceAccountClosed",
            "mastercard_advice_03",
        ),
        (
            "pm_card_flint_mastercardAdviceStopRecurring",
            "mastercard_advice_21",
        ),
    ] {
        let (cus, pm) = s.sandbox.customer_with_card(card).await;
        let first = s.pay(&cus, Some(&pm), json!({})).await;
        let p = s.settles(&first, &["failed"]).await;
        assert_eq!(outcomes(&p), ["hard_decline"], "{p}");
        let second = s.pay(&cus, Some(&pm), json!({})).await;
        let p = s.settles(&second, &["failed"]).await;
        assert_eq!(outcomes(&p), ["blocked_by_network_rule"], "{p}");
        assert!(p["last_error"].as_str().unwrap().contains(rule), "{p}");
        assert_eq!(s.intents(&cus).await.len(), 1, "nothing sent for {card}");
    }
}

async fn mastercard_advice_02_waits_72_hours_and_the_decline_rate_limit_24() {
    let s = stack(vec![100]).await;
    let long =
        json!({"retry_policy": {"strategy": "scheduled", "max_attempts": 4, "window_hours": 720}});
    for (card, hours, rule) in [
        (
            "pm_card_flint_mastercardAdviceTryLater",
            72,
            "mastercard_advice_02",
        ),
        (
            "pm_card_flint_declineRateLimitExceeded",
            24,
            "card_decline_rate_limit",
        ),
    ] {
        let wait_ms = hours * 3_600_000;
        let (cus, pm) = s.sandbox.customer_with_card(card).await;
        let first = s.pay(&cus, Some(&pm), long.clone()).await;
        let p = flint_testkit::poll_until(
            std::time::Duration::from_secs(30),
            "the first attempt to finish",
            || async {
                let p = s.payment(&first).await;
                p["attempts"][0]["finished_at"].is_string().then_some(p)
            },
        )
        .await;
        assert_eq!(p["status"], "pending", "{p}");
        assert_eq!(outcomes(&p), ["soft_decline"], "{p}");
        let next = ms_until(&p["next_attempt_at"]);
        assert!(
            (wait_ms - 60_000..=wait_ms).contains(&next),
            "{card}: next attempt in {next} ms, expected about {wait_ms}"
        );

        // Another payment on the same card is held back too, with nothing sent.
        let second = s.pay(&cus, Some(&pm), long.clone()).await;
        let p = flint_testkit::poll_until(
            std::time::Duration::from_secs(30),
            "the second payment's blocked attempt",
            || async {
                let p = s.payment(&second).await;
                (p["attempts"][0]["outcome"] == "blocked_by_network_rule").then_some(p)
            },
        )
        .await;
        assert_eq!(p["status"], "pending", "{p}");
        assert!(p["last_error"].as_str().unwrap().contains(rule), "{p}");
        let next = ms_until(&p["next_attempt_at"]);
        assert!(
            (wait_ms - 60_000..=wait_ms).contains(&next),
            "{card}: second payment's next attempt in {next} ms"
        );
        assert_eq!(s.intents(&cus).await.len(), 1, "nothing sent for {card}");
    }
}
