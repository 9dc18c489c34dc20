use serde_json::json;

use crate::harness::*;

fn outcomes(p: &serde_json::Value) -> Vec<String> {
    p["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
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

#[tokio::test]
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
