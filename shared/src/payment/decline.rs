//! What a processor's answer means for the payment (reference: payments-domain.md §7, §6;
//! stripe-subset.md §3.4). One exhaustive `match` per decision; codes are data, so a new code
//! falls into `Soft` (retried within the policy's cap) rather than crashing anything.

use crate::processor::Decline;

/// The class of a decline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineClass {
    /// May succeed later: retried on the schedule within the policy.
    Soft,
    /// Never retried on this payment method.
    Hard,
    /// Needs the customer back on-session (authentication, new card details).
    NeedsCustomer,
}

impl DeclineClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineClass::Soft => "soft",
            DeclineClass::Hard => "hard",
            DeclineClass::NeedsCustomer => "needs_customer",
        }
    }
}

/// Issuer or network codes that must never be retried on the same card.
const HARD_DECLINE_CODES: &[&str] = &[
    "lost_card",
    "stolen_card",
    "pickup_card",
    "incorrect_number",
    "invalid_account",
    "restricted_card",
    "transaction_not_allowed",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "fraudulent",
    "highest_risk_level",
    "merchant_blacklist",
    "card_not_supported",
    "currency_not_supported",
    "do_not_try_again",
    "security_violation",
    "stop_payment_order",
];

/// `code` values that need the customer.
const NEEDS_CUSTOMER_CODES: &[&str] = &["authentication_required", "expired_card", "incorrect_cvc"];

pub fn classify(decline: &Decline) -> DeclineClass {
    if NEEDS_CUSTOMER_CODES.contains(&decline.code.as_str())
        || decline
            .decline_code
            .as_deref()
            .is_some_and(|c| NEEDS_CUSTOMER_CODES.contains(&c))
    {
        return DeclineClass::NeedsCustomer;
    }
    if decline.code == "incorrect_number"
        || decline
            .decline_code
            .as_deref()
            .is_some_and(|c| HARD_DECLINE_CODES.contains(&c))
    {
        return DeclineClass::Hard;
    }
    match decline.advice_code.as_deref() {
        Some("do_not_try_again") => DeclineClass::Hard,
        Some("confirm_card_data") => DeclineClass::NeedsCustomer,
        Some(_) | None => match decline.network_advice_code.as_deref() {
            // Mastercard merchant advice codes: 03 (account closed) and 21 (stop recurring).
            Some("03" | "21") => DeclineClass::Hard,
            Some(_) | None => DeclineClass::Soft,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: &str, decline_code: Option<&str>) -> Decline {
        Decline {
            code: code.into(),
            decline_code: decline_code.map(Into::into),
            advice_code: None,
            network_advice_code: None,
            message: String::new(),
            charge: None,
            intent_id: None,
            request_id: None,
        }
    }

    #[test]
    fn stripes_test_card_declines_fall_in_their_documented_class() {
        use DeclineClass::*;
        for (code, decline, class) in [
            ("card_declined", Some("insufficient_funds"), Soft),
            ("card_declined", Some("generic_decline"), Soft),
            ("card_declined", Some("card_velocity_exceeded"), Soft),
            ("processing_error", None, Soft),
            ("card_declined", Some("do_not_honor"), Soft),
            ("card_declined", Some("lost_card"), Hard),
            ("card_declined", Some("stolen_card"), Hard),
            ("card_declined", Some("fraudulent"), Hard),
            ("incorrect_number", None, Hard),
            (
                "authentication_required",
                Some("authentication_required"),
                NeedsCustomer,
            ),
            ("expired_card", None, NeedsCustomer),
            ("incorrect_cvc", None, NeedsCustomer),
            ("card_declined", Some("a_code_nobody_knows_yet"), Soft),
        ] {
            assert_eq!(classify(&d(code, decline)), class, "{code}/{decline:?}");
        }
    }

    #[test]
    fn advice_codes_override_a_soft_decline_code() {
        let mut x = d("card_declined", Some("insufficient_funds"));
        x.advice_code = Some("do_not_try_again".into());
        assert_eq!(classify(&x), DeclineClass::Hard);
        x.advice_code = Some("confirm_card_data".into());
        assert_eq!(classify(&x), DeclineClass::NeedsCustomer);
        x.advice_code = None;
        x.network_advice_code = Some("21".into());
        assert_eq!(classify(&x), DeclineClass::Hard);
        x.network_advice_code = Some("02".into());
        assert_eq!(classify(&x), DeclineClass::Soft);
    }
}
