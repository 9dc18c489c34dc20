//! Card-network rules against a real redis-server, with attempts racing on one card: a block
//! only ever gets stronger, and Visa's 20 reattempts in 30 days admit exactly 20 however many
//! attempts ask at once.

use flint_shared::payment::decline::{Decline, DeclineCode, NetworkAdviceCode};
use flint_shared::payment::network::{Block, CardOutcome, CardRules, NetworkRule, Reservation};
use flint_shared::processor::{CardBrand, CardInfo};
use flint_shared::time::Timestamp;
use flint_testkit::redis::RedisServer;

const NOW: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

fn decline(code: &str, network_advice: Option<&str>) -> Decline {
    Decline {
        code: DeclineCode::CardDeclined,
        decline_code: Some(DeclineCode::parse(code)),
        advice_code: None,
        network_advice_code: network_advice.map(NetworkAdviceCode::parse),
        message: String::new(),
        charge: None,
        intent_id: None,
        request_id: None,
    }
}

fn card(brand: CardBrand) -> CardInfo {
    CardInfo {
        brand,
        fingerprint: "fp_1".into(),
    }
}

fn rules(redis: &RedisServer) -> CardRules {
    CardRules::new(
        flint_shared::redis_target::RedisTarget::Standalone(redis.url()),
        "charges",
    )
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_ms(NOW.unix_ms() + ms)
}

#[tokio::test]
async fn a_never_block_is_not_weakened_by_a_later_temporary_one() {
    let redis = RedisServer::start();
    let rules = rules(&redis);
    let mc = card(CardBrand::Mastercard);
    let closed = decline("do_not_honor", Some("03"));
    let later = decline("insufficient_funds", Some("02"));
    // Two attempts on one card end out of order: the 03 first, then a 02.
    let first = rules
        .record(
            "acme",
            &mc,
            "osp_a:1",
            CardOutcome::Declined(&closed),
            at(0),
        )
        .await
        .unwrap();
    let second = rules
        .record("acme", &mc, "osp_b:1", CardOutcome::Declined(&later), at(1))
        .await
        .unwrap();
    let never = Block::Never {
        rule: NetworkRule::MastercardAdvice03,
    };
    assert_eq!(first, Some(never.clone()));
    assert_eq!(second, Some(never.clone()), "the card's block as it stands");
    let checked = rules
        .reserve("acme", &mc, "osp_c:1", at(2))
        .await
        .unwrap()
        .block();
    assert_eq!(checked, Some(never));
}

#[tokio::test]
async fn a_temporary_block_is_only_ever_extended() {
    let redis = RedisServer::start();
    let rules = rules(&redis);
    let mc = card(CardBrand::Mastercard);
    let try_later = decline("insufficient_funds", Some("02"));
    let rate_limited = decline("card_decline_rate_limit_exceeded", None);
    // 72 hours from the first decline, then a 24-hour rule an hour later: 72 hours stand.
    rules
        .record(
            "acme",
            &mc,
            "osp_a:1",
            CardOutcome::Declined(&try_later),
            at(0),
        )
        .await
        .unwrap();
    let block = rules
        .record(
            "acme",
            &mc,
            "osp_b:1",
            CardOutcome::Declined(&rate_limited),
            at(3_600_000),
        )
        .await
        .unwrap();
    assert_eq!(
        block,
        Some(Block::Until {
            at: at(72 * 3_600_000),
            rule: NetworkRule::MastercardAdvice02
        })
    );
    // A later 02 extends it.
    let block = rules
        .record(
            "acme",
            &mc,
            "osp_c:1",
            CardOutcome::Declined(&try_later),
            at(7_200_000),
        )
        .await
        .unwrap();
    assert_eq!(
        block,
        Some(Block::Until {
            at: at(74 * 3_600_000),
            rule: NetworkRule::MastercardAdvice02
        })
    );
}

#[tokio::test]
async fn visas_twenty_reattempts_admit_one_of_two_racing_for_the_last_place() {
    let redis = RedisServer::start();
    let rules = rules(&redis);
    let visa = card(CardBrand::Visa);
    let soft = decline("insufficient_funds", None);
    for i in 0..19 {
        let attempt = format!("osp_{i}:1");
        assert_eq!(
            rules
                .reserve("acme", &visa, &attempt, at(i))
                .await
                .unwrap()
                .block(),
            None
        );
        rules
            .record("acme", &visa, &attempt, CardOutcome::Declined(&soft), at(i))
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(
        rules.reserve("acme", &visa, "osp_x:1", at(100)),
        rules.reserve("acme", &visa, "osp_y:1", at(100))
    );
    let (a, b) = (a.unwrap().block(), b.unwrap().block());
    assert_eq!(
        [&a, &b].iter().filter(|r| r.is_none()).count(),
        1,
        "{a:?} {b:?}"
    );
    let blocked = a.or(b).unwrap();
    assert_eq!(blocked.rule(), &NetworkRule::Visa20In30Days);
    // The winner asking again is still admitted (counted once).
    let winner = if rules
        .reserve("acme", &visa, "osp_x:1", at(101))
        .await
        .unwrap()
        .block()
        .is_none()
    {
        "osp_x:1"
    } else {
        "osp_y:1"
    };
    assert_eq!(
        rules
            .reserve("acme", &visa, winner, at(101))
            .await
            .unwrap()
            .block(),
        None
    );
    // It charged: its place is free again, and the next reattempt may go.
    rules
        .record("acme", &visa, winner, CardOutcome::Charged, at(102))
        .await
        .unwrap();
    assert_eq!(
        rules
            .reserve("acme", &visa, "osp_z:1", at(103))
            .await
            .unwrap()
            .block(),
        None
    );
    // It declined instead: the twentieth decline, and the card waits for the window.
    rules
        .record(
            "acme",
            &visa,
            "osp_z:1",
            CardOutcome::Declined(&soft),
            at(104),
        )
        .await
        .unwrap();
    let block = rules
        .reserve("acme", &visa, "osp_w:1", at(105))
        .await
        .unwrap()
        .block();
    assert_eq!(
        block,
        Some(Block::Until {
            at: at(30 * 24 * 3_600_000),
            rule: NetworkRule::Visa20In30Days
        })
    );
}

#[tokio::test]
async fn a_visa_card_without_recent_declines_takes_any_number_of_attempts() {
    let redis = RedisServer::start();
    let rules = rules(&redis);
    let visa = card(CardBrand::Visa);
    // Twenty payments of one customer on one card, say: none of them is a reattempt, and
    // none has a place to give back.
    for i in 0..50 {
        let attempt = format!("osp_{i}:1");
        assert_eq!(
            rules.reserve("acme", &visa, &attempt, at(0)).await.unwrap(),
            Reservation::Free
        );
    }
}
