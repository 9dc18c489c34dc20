//! What a processor's refusal says, as types: the decline codes, the processor's and the card
//! network's advice, and the class that decides what happens next (soft: retried on the
//! schedule; hard: never again on this card; needs the customer: paused).
//!
//! Codes are data that grows over time, so each code enum has an `Other(String)` for codes
//! Flint does not know yet; an unknown code is a soft decline (retried within the policy's cap)
//! rather than a crash. Every known code is classified in one `match` without a catch-all arm,
//! so adding a code means deciding its class.

use crate::codes::string_codes;

string_codes! {
    /// Stripe's card error `code` and `decline_code` values (one namespace: several codes,
    /// such as `expired_card`, appear as both).
    DeclineCode {
        CardDeclined => "card_declined",
        AuthenticationRequired => "authentication_required",
        ExpiredCard => "expired_card",
        IncorrectCvc => "incorrect_cvc",
        IncorrectNumber => "incorrect_number",
        ProcessingError => "processing_error",
        InsufficientFunds => "insufficient_funds",
        GenericDecline => "generic_decline",
        DoNotHonor => "do_not_honor",
        TryAgainLater => "try_again_later",
        IssuerNotAvailable => "issuer_not_available",
        CardVelocityExceeded => "card_velocity_exceeded",
        WithdrawalCountLimitExceeded => "withdrawal_count_limit_exceeded",
        CallIssuer => "call_issuer",
        ReenterTransaction => "reenter_transaction",
        /// Too many declines on this card recently: the network says wait 24 hours.
        CardDeclineRateLimitExceeded => "card_decline_rate_limit_exceeded",
        LostCard => "lost_card",
        StolenCard => "stolen_card",
        PickupCard => "pickup_card",
        InvalidAccount => "invalid_account",
        RestrictedCard => "restricted_card",
        TransactionNotAllowed => "transaction_not_allowed",
        RevocationOfAuthorization => "revocation_of_authorization",
        RevocationOfAllAuthorizations => "revocation_of_all_authorizations",
        Fraudulent => "fraudulent",
        HighestRiskLevel => "highest_risk_level",
        MerchantBlacklist => "merchant_blacklist",
        CardNotSupported => "card_not_supported",
        CurrencyNotSupported => "currency_not_supported",
        DoNotTryAgain => "do_not_try_again",
        SecurityViolation => "security_violation",
        StopPaymentOrder => "stop_payment_order",
    }
}

string_codes! {
    /// Stripe's `advice_code`: how the processor suggests proceeding.
    AdviceCode {
        TryAgainLater => "try_again_later",
        DoNotTryAgain => "do_not_try_again",
        ConfirmCardData => "confirm_card_data",
    }
}

string_codes! {
    /// The card network's advice (`network_advice_code`): Mastercard's Merchant Advice Codes.
    NetworkAdviceCode {
        /// 02: cannot approve now, try again later (processors say after 72 hours).
        TryLater => "02",
        /// 03: do not try again (account closed).
        DoNotTryAgain => "03",
        /// 21: the cardholder stopped recurring payments.
        StopRecurring => "21",
    }
}

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

impl DeclineCode {
    /// What this code alone says; `None` when it says nothing definite (the advice decides).
    pub fn class(&self) -> Option<DeclineClass> {
        use DeclineCode::*;
        match self {
            AuthenticationRequired | ExpiredCard | IncorrectCvc => {
                Some(DeclineClass::NeedsCustomer)
            }
            IncorrectNumber
            | LostCard
            | StolenCard
            | PickupCard
            | InvalidAccount
            | RestrictedCard
            | TransactionNotAllowed
            | RevocationOfAuthorization
            | RevocationOfAllAuthorizations
            | Fraudulent
            | HighestRiskLevel
            | MerchantBlacklist
            | CardNotSupported
            | CurrencyNotSupported
            | DoNotTryAgain
            | SecurityViolation
            | StopPaymentOrder => Some(DeclineClass::Hard),
            CardDeclined
            | ProcessingError
            | InsufficientFunds
            | GenericDecline
            | DoNotHonor
            | TryAgainLater
            | IssuerNotAvailable
            | CardVelocityExceeded
            | WithdrawalCountLimitExceeded
            | CallIssuer
            | ReenterTransaction
            | CardDeclineRateLimitExceeded
            | Other(_) => None,
        }
    }

    /// Visa's category 1 ("the issuer will never approve"): never reattempted on the card.
    pub fn is_visa_category_1(&self) -> bool {
        use DeclineCode::*;
        match self {
            LostCard
            | StolenCard
            | PickupCard
            | IncorrectNumber
            | InvalidAccount
            | RestrictedCard
            | TransactionNotAllowed
            | RevocationOfAuthorization
            | RevocationOfAllAuthorizations
            | StopPaymentOrder => true,
            CardDeclined
            | AuthenticationRequired
            | ExpiredCard
            | IncorrectCvc
            | ProcessingError
            | InsufficientFunds
            | GenericDecline
            | DoNotHonor
            | TryAgainLater
            | IssuerNotAvailable
            | CardVelocityExceeded
            | WithdrawalCountLimitExceeded
            | CallIssuer
            | ReenterTransaction
            | CardDeclineRateLimitExceeded
            | Fraudulent
            | HighestRiskLevel
            | MerchantBlacklist
            | CardNotSupported
            | CurrencyNotSupported
            | DoNotTryAgain
            | SecurityViolation
            | Other(_) => false,
        }
    }
}

/// A card's refusal, with the codes the retry rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    /// Stripe's `code` (`card_declined`, `expired_card`, `authentication_required`, …).
    pub code: DeclineCode,
    /// Stripe's `decline_code` (`insufficient_funds`, `lost_card`, …).
    pub decline_code: Option<DeclineCode>,
    pub advice_code: Option<AdviceCode>,
    pub network_advice_code: Option<NetworkAdviceCode>,
    pub message: String,
    /// The failed charge (`ch_…`), when the processor made one.
    pub charge: Option<String>,
    /// The PaymentIntent as the decline left it.
    pub intent_id: Option<String>,
    pub request_id: Option<String>,
}

impl Decline {
    /// The most specific code: the decline code when there is one, else the error code.
    pub fn reason(&self) -> &DeclineCode {
        self.decline_code.as_ref().unwrap_or(&self.code)
    }

    /// The class of this decline: the needs-customer codes first, then hard codes, then the
    /// advice of the processor and of the network; anything else is soft.
    pub fn class(&self) -> DeclineClass {
        let by_code = [Some(&self.code), self.decline_code.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(DeclineCode::class)
            .min_by_key(|class| match class {
                DeclineClass::NeedsCustomer => 0,
                DeclineClass::Hard => 1,
                DeclineClass::Soft => 2,
            });
        if let Some(class) = by_code {
            return class;
        }
        match &self.advice_code {
            Some(AdviceCode::DoNotTryAgain) => return DeclineClass::Hard,
            Some(AdviceCode::ConfirmCardData) => return DeclineClass::NeedsCustomer,
            Some(AdviceCode::TryAgainLater | AdviceCode::Other(_)) | None => {}
        }
        match &self.network_advice_code {
            Some(NetworkAdviceCode::DoNotTryAgain | NetworkAdviceCode::StopRecurring) => {
                DeclineClass::Hard
            }
            Some(NetworkAdviceCode::TryLater | NetworkAdviceCode::Other(_)) | None => {
                DeclineClass::Soft
            }
        }
    }

    /// `code (decline_code)`, for timelines and logs.
    pub fn summary(&self) -> String {
        match &self.decline_code {
            Some(d) => format!("{} ({d})", self.code),
            None => format!("{} (-)", self.code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn d(code: &str, decline_code: Option<&str>) -> Decline {
        Decline {
            code: DeclineCode::parse(code),
            decline_code: decline_code.map(DeclineCode::parse),
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
            ("card_declined", Some("expired_card"), NeedsCustomer),
            ("incorrect_cvc", None, NeedsCustomer),
            ("card_declined", Some("a_code_nobody_knows_yet"), Soft),
        ] {
            assert_eq!(d(code, decline).class(), class, "{code}/{decline:?}");
        }
    }

    #[test]
    fn advice_codes_override_a_soft_decline_code() {
        let mut x = d("card_declined", Some("insufficient_funds"));
        x.advice_code = Some(AdviceCode::DoNotTryAgain);
        assert_eq!(x.class(), DeclineClass::Hard);
        x.advice_code = Some(AdviceCode::ConfirmCardData);
        assert_eq!(x.class(), DeclineClass::NeedsCustomer);
        x.advice_code = None;
        x.network_advice_code = Some(NetworkAdviceCode::StopRecurring);
        assert_eq!(x.class(), DeclineClass::Hard);
        x.network_advice_code = Some(NetworkAdviceCode::TryLater);
        assert_eq!(x.class(), DeclineClass::Soft);
    }

    #[test]
    fn codes_round_trip_as_their_strings_and_unknown_ones_are_kept() {
        assert_eq!(DeclineCode::parse("lost_card"), DeclineCode::LostCard);
        assert_eq!(
            DeclineCode::parse("new_code"),
            DeclineCode::Other("new_code".into())
        );
        assert_eq!(
            serde_json::to_string(&DeclineCode::Other("new_code".into())).unwrap(),
            "\"new_code\""
        );
        assert_eq!(
            serde_json::from_str::<NetworkAdviceCode>("\"03\"").unwrap(),
            NetworkAdviceCode::DoNotTryAgain
        );
        assert_eq!(d("card_declined", None).summary(), "card_declined (-)");
    }
}
