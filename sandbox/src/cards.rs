//! Stripe's test payment methods (`pm_card_*`, `tok_*`) and what each does off-session
//! (as Stripe's testing documentation lists them).
//!
//! The sandbox never holds a card number: a test card is its token name, a brand, the last four
//! digits Stripe shows for it, and a behaviour. The fingerprint is derived from the canonical
//! name, so it is stable for one test card across customers, attaches and accounts, as Stripe's
//! fingerprint is stable for one card number.

use sha2::{Digest, Sha256};

/// What confirming a charge on the card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The charge succeeds.
    Succeed,
    /// The issuer (or Radar, when `blocked`) declines: 402 `card_error`.
    Decline {
        code: &'static str,
        decline_code: Option<&'static str>,
        /// The card network's advice (`network_advice_code`): Mastercard's Merchant Advice Code.
        network_advice_code: Option<&'static str>,
        message: &'static str,
        blocked: bool,
    },
    /// 3-D Secure on every transaction: off-session 402 `authentication_required`, on-session
    /// 200 `requires_action`.
    AuthenticationRequired,
    /// Already set up for off-session use: succeeds off-session, needs 3-D Secure on-session.
    AuthenticationOnSessionOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    /// The canonical scenario name: `pm_card_{name}`, `tok_{name}`.
    pub name: &'static str,
    pub brand: &'static str,
    pub last4: &'static str,
    pub funding: &'static str,
    pub behaviour: Behaviour,
    /// Stripe lets this card attach even though every charge on it fails
    /// (`pm_card_chargeCustomerFail`); the other decline cards refuse to attach in strict mode.
    pub attaches_in_strict_mode: bool,
    pub risk_level: &'static str,
    /// `checks.cvc_check`, `address_postal_code_check`, `address_line1_check`.
    pub checks: [&'static str; 3],
}

const DECLINED: &str = "Your card was declined.";

const fn ok(
    name: &'static str,
    brand: &'static str,
    last4: &'static str,
    funding: &'static str,
) -> TestCard {
    TestCard {
        name,
        brand,
        last4,
        funding,
        behaviour: Behaviour::Succeed,
        attaches_in_strict_mode: true,
        risk_level: "normal",
        checks: ["pass", "pass", "pass"],
    }
}

const fn decline(
    name: &'static str,
    last4: &'static str,
    code: &'static str,
    decline_code: Option<&'static str>,
    message: &'static str,
) -> TestCard {
    TestCard {
        behaviour: Behaviour::Decline {
            code,
            decline_code,
            network_advice_code: None,
            message,
            blocked: false,
        },
        attaches_in_strict_mode: false,
        ..ok(name, "visa", last4, "credit")
    }
}

const fn with(card: TestCard, behaviour: Behaviour) -> TestCard {
    TestCard {
        behaviour,
        attaches_in_strict_mode: true,
        ..card
    }
}

const fn blocked(name: &'static str, last4: &'static str, risk_level: &'static str) -> TestCard {
    TestCard {
        behaviour: Behaviour::Decline {
            code: "card_declined",
            decline_code: Some("fraudulent"),
            network_advice_code: None,
            message: DECLINED,
            blocked: true,
        },
        attaches_in_strict_mode: true,
        risk_level,
        ..ok(name, "visa", last4, "credit")
    }
}

const fn mastercard_advice(
    name: &'static str,
    last4: &'static str,
    decline_code: &'static str,
    advice: &'static str,
) -> TestCard {
    TestCard {
        brand: "mastercard",
        behaviour: Behaviour::Decline {
            code: "card_declined",
            decline_code: Some(decline_code),
            network_advice_code: Some(advice),
            message: DECLINED,
            blocked: false,
        },
        ..decline(name, last4, "card_declined", None, DECLINED)
    }
}

const fn checks(name: &'static str, last4: &'static str, checks: [&'static str; 3]) -> TestCard {
    TestCard {
        checks,
        ..ok(name, "visa", last4, "credit")
    }
}

/// Every test card the sandbox knows.
pub const CARDS: &[TestCard] = &[
    ok("visa", "visa", "4242", "credit"),
    ok("visa_debit", "visa", "5556", "debit"),
    ok("mastercard", "mastercard", "4444", "credit"),
    ok("mastercard_debit", "mastercard", "8210", "debit"),
    ok("mastercard_prepaid", "mastercard", "5100", "prepaid"),
    ok("amex", "amex", "0005", "credit"),
    ok("discover", "discover", "1117", "credit"),
    ok("diners", "diners", "0004", "credit"),
    ok("jcb", "jcb", "0505", "credit"),
    ok("unionpay", "unionpay", "0005", "credit"),
    ok("createDispute", "visa", "0259", "credit"),
    ok("bypassPending", "visa", "0077", "credit"),
    decline(
        "chargeDeclined",
        "0002",
        "card_declined",
        Some("generic_decline"),
        DECLINED,
    ),
    decline(
        "chargeDeclinedInsufficientFunds",
        "9995",
        "card_declined",
        Some("insufficient_funds"),
        "Your card has insufficient funds.",
    ),
    decline(
        "chargeDeclinedLostCard",
        "9987",
        "card_declined",
        Some("lost_card"),
        DECLINED,
    ),
    decline(
        "chargeDeclinedStolenCard",
        "9979",
        "card_declined",
        Some("stolen_card"),
        DECLINED,
    ),
    decline(
        "chargeDeclinedExpiredCard",
        "0069",
        "expired_card",
        None,
        "Your card has expired.",
    ),
    decline(
        "chargeDeclinedIncorrectCvc",
        "0127",
        "incorrect_cvc",
        None,
        "Your card's security code is incorrect.",
    ),
    decline(
        "chargeDeclinedProcessingError",
        "0119",
        "processing_error",
        None,
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    decline(
        "chargeDeclinedVelocityLimitExceeded",
        "6975",
        "card_declined",
        Some("card_velocity_exceeded"),
        DECLINED,
    ),
    TestCard {
        attaches_in_strict_mode: true,
        ..decline(
            "chargeCustomerFail",
            "0341",
            "card_declined",
            Some("generic_decline"),
            DECLINED,
        )
    },
    blocked("radarBlock", "0019", "highest"),
    blocked("chargeDeclinedFraudulent", "0019", "highest"),
    blocked("riskLevelHighest", "4954", "highest"),
    TestCard {
        risk_level: "elevated",
        ..ok("riskLevelElevated", "visa", "9235", "credit")
    },
    checks("cvcCheckFail", "0101", ["fail", "pass", "pass"]),
    checks("avsZipFail", "0036", ["pass", "fail", "pass"]),
    checks("avsLine1Fail", "0028", ["pass", "pass", "fail"]),
    with(
        ok("authenticationRequired", "visa", "3184", "credit"),
        Behaviour::AuthenticationRequired,
    ),
    with(
        ok("authenticationRequiredOnSetup", "visa", "3155", "credit"),
        Behaviour::AuthenticationRequired,
    ),
    with(
        ok(
            "authenticationRequiredSetupForOffSession",
            "visa",
            "0446",
            "credit",
        ),
        Behaviour::AuthenticationOnSessionOnly,
    ),
    with(
        ok(
            "authenticationRequiredChargeDeclinedInsufficientFunds",
            "visa",
            "3178",
            "credit",
        ),
        Behaviour::Decline {
            code: "card_declined",
            decline_code: Some("insufficient_funds"),
            network_advice_code: None,
            message: "Your card has insufficient funds.",
            blocked: false,
        },
    ),
    with(
        ok("threeDSecure2Required", "visa", "3220", "credit"),
        Behaviour::AuthenticationRequired,
    ),
    with(
        ok("threeDSecureRequired", "visa", "3063", "credit"),
        Behaviour::AuthenticationRequired,
    ),
    // Flint's extensions, not Stripe's test cards (Stripe has none for these): a Mastercard
    // decline with each Merchant Advice Code the network rules act on, and a card over
    // Stripe's decline rate limit. They are named `flint_…` so they cannot be mistaken for
    // Stripe's; sent to Stripe they are simply unknown.
    mastercard_advice(
        "flint_mastercardAdviceTryLater",
        "0202",
        "do_not_honor",
        "02",
    ),
    mastercard_advice(
        "flint_mastercardAdviceAccountClosed",
        "0303",
        "do_not_honor",
        "03",
    ),
    mastercard_advice(
        "flint_mastercardAdviceStopRecurring",
        "0021",
        "do_not_honor",
        "21",
    ),
    decline(
        "flint_declineRateLimitExceeded",
        "0424",
        "card_decline_rate_limit_exceeded",
        None,
        "This card has been declined too many times. You can try to charge this card again after 24 hours. We suggest reaching out to your customer to make sure they have entered all of their information correctly and that there are no issues with their card.",
    ),
];

/// Brand prefixes Stripe accepts in front of a scenario (`pm_card_visa_chargeDeclined`).
const BRAND_PREFIXES: &[&str] = &["visa_", "mastercard_", "amex_"];

/// Finds the card behind `pm_card_…` or `tok_…`, accepting brand-prefixed aliases.
pub fn lookup(token: &str) -> Option<&'static TestCard> {
    let name = token
        .strip_prefix("pm_card_")
        .or_else(|| token.strip_prefix("tok_"))?;
    by_name(name).or_else(|| {
        BRAND_PREFIXES.iter().find_map(|prefix| {
            let rest = name.strip_prefix(prefix)?;
            by_name(rest).filter(|card| prefix.trim_end_matches('_') == card.brand)
        })
    })
}

fn by_name(name: &str) -> Option<&'static TestCard> {
    CARDS.iter().find(|c| c.name == name)
}

impl TestCard {
    /// Stable per card, like Stripe's per-card-number fingerprint. Aliases of one card (for
    /// example `radarBlock` and `chargeDeclinedFraudulent`, the same number) share it.
    pub fn fingerprint(&self) -> String {
        let canonical = match self.name {
            "chargeDeclinedFraudulent" => "radarBlock",
            other => other,
        };
        let digest = Sha256::digest(format!("flint-sandbox-card:{canonical}"));
        let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        digest
            .iter()
            .take(16)
            .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_brand_prefixed_aliases_resolve_to_one_card() {
        let a = lookup("pm_card_chargeDeclined").unwrap();
        let b = lookup("pm_card_visa_chargeDeclined").unwrap();
        let c = lookup("tok_chargeDeclined").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(
            lookup("pm_card_mastercard_chargeDeclined").is_none(),
            "the decline cards are Visa"
        );
        assert!(lookup("pm_card_nope").is_none());
        assert!(lookup("pm_1234").is_none());
    }

    #[test]
    fn fingerprints_are_stable_per_card_and_distinct_across_cards() {
        let visa = lookup("pm_card_visa").unwrap();
        assert_eq!(
            visa.fingerprint(),
            lookup("tok_visa").unwrap().fingerprint()
        );
        assert_eq!(visa.fingerprint().len(), 16);
        assert_eq!(
            lookup("pm_card_radarBlock").unwrap().fingerprint(),
            lookup("pm_card_chargeDeclinedFraudulent")
                .unwrap()
                .fingerprint()
        );
        let mut prints: Vec<_> = CARDS
            .iter()
            .filter(|c| c.name != "chargeDeclinedFraudulent")
            .map(|c| c.fingerprint())
            .collect();
        prints.sort();
        prints.dedup();
        assert_eq!(prints.len(), CARDS.len() - 1);
    }
}
