//! Money: integer amounts in a currency's smallest unit, with the currency rules Stripe applies.
//!
//! Amounts are never floats. `amount_minor = 1000` is 10.00 USD, ¥1000, or 1.000 KWD. Which of
//! those it is depends on the currency's decimals; Stripe's documented rules
//! add per-currency minimums, an eight-digit maximum (twelve for IDR), a trailing zero for
//! three-decimal currencies and whole units (multiples of 100) for ISK and UGX. [`Money::new`]
//! checks all of them, so a `Money` value is always chargeable as far as Stripe's static rules go.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a currency writes its amounts in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrencyClass {
    /// Two decimals: 1000 means 10.00.
    TwoDecimal,
    /// No minor unit: 1000 means 1000 (JPY, KRW, …).
    ZeroDecimal,
    /// Three decimals, and Stripe requires the last digit to be 0: 5120 means 5.120.
    ThreeDecimal,
    /// Zero-decimal in practice but sent with two decimals, so the amount must be a multiple of
    /// 100 (ISK, UGX).
    WholeUnitsInTwoDecimals,
}

const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
    "xof", "xpf",
];
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];
const WHOLE_UNITS_IN_TWO_DECIMALS: &[&str] = &["isk", "ugx"];

/// Presentment currencies Stripe accepts for card payments (lowercase ISO 4217).
const SUPPORTED: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "szl", "thb", "tjs",
    "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd", "vuv",
    "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Stripe's minimum charge per currency, in minor units (Stripe's documented minimums, converted with
/// each currency's decimals). Currencies not listed here have a minimum that depends on
/// conversion into the settlement currency, which cannot be known offline; for them the only
/// static rule is a positive amount.
const MINIMUM_MINOR: &[(&str, i64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

/// The largest amount Stripe accepts: eight digits, twelve for IDR.
const MAX_MINOR_DEFAULT: i64 = 99_999_999;
const MAX_MINOR_IDR: i64 = 999_999_999_999;

/// Why an amount or currency cannot be charged. [`MoneyError::param`] names the field and
/// [`MoneyError::code`] gives Stripe's error code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be a three-letter ISO 4217 code, got `{0}`")]
    MalformedCurrency(String),
    #[error("currency `{0}` is not supported")]
    UnsupportedCurrency(String),
    #[error("amount must be a positive integer in the currency's smallest unit, got {0}")]
    NotPositive(i64),
    #[error("amount must be at least {minimum_minor} {currency} (minor units)")]
    TooSmall {
        minimum_minor: i64,
        currency: Currency,
    },
    #[error("amount must be at most {maximum_minor} {currency} (minor units)")]
    TooLarge {
        maximum_minor: i64,
        currency: Currency,
    },
    #[error("{currency} is a three-decimal currency: the amount's last digit must be 0")]
    ThreeDecimalNeedsTrailingZero { currency: Currency },
    #[error(
        "{currency} amounts are whole units sent with two decimals: the amount must be a multiple of 100"
    )]
    WholeUnitsOnly { currency: Currency },
}

impl MoneyError {
    /// The request field at fault: `currency` or `amount`.
    pub fn param(&self) -> &'static str {
        match self {
            MoneyError::MalformedCurrency(_) | MoneyError::UnsupportedCurrency(_) => "currency",
            MoneyError::NotPositive(_)
            | MoneyError::TooSmall { .. }
            | MoneyError::TooLarge { .. }
            | MoneyError::ThreeDecimalNeedsTrailingZero { .. }
            | MoneyError::WholeUnitsOnly { .. } => "amount",
        }
    }

    /// Stripe's `code` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::MalformedCurrency(_) | MoneyError::UnsupportedCurrency(_) => {
                "parameter_invalid_string"
            }
            MoneyError::NotPositive(_) => "parameter_invalid_integer",
            MoneyError::TooSmall { .. } => "amount_too_small",
            MoneyError::TooLarge { .. } => "amount_too_large",
            MoneyError::ThreeDecimalNeedsTrailingZero { .. }
            | MoneyError::WholeUnitsOnly { .. } => "invalid_amount",
        }
    }
}

/// A supported ISO 4217 currency, lowercase as Stripe writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(&'static str);

impl Currency {
    /// Accepts any letter case (`USD`, `usd`); the stored form is lowercase.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(MoneyError::MalformedCurrency(code.to_owned()));
        }
        let lower = code.to_ascii_lowercase();
        SUPPORTED
            .iter()
            .find(|c| **c == lower)
            .map(|c| Currency(c))
            .ok_or(MoneyError::UnsupportedCurrency(lower))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    pub fn class(self) -> CurrencyClass {
        if ZERO_DECIMAL.contains(&self.0) {
            CurrencyClass::ZeroDecimal
        } else if THREE_DECIMAL.contains(&self.0) {
            CurrencyClass::ThreeDecimal
        } else if WHOLE_UNITS_IN_TWO_DECIMALS.contains(&self.0) {
            CurrencyClass::WholeUnitsInTwoDecimals
        } else {
            CurrencyClass::TwoDecimal
        }
    }

    /// Stripe's static minimum in minor units (1 where only conversion could tell).
    pub fn minimum_minor(self) -> i64 {
        MINIMUM_MINOR
            .iter()
            .find(|(c, _)| *c == self.0)
            .map_or(1, |(_, min)| *min)
    }

    pub fn maximum_minor(self) -> i64 {
        if self.0 == "idr" {
            MAX_MINOR_IDR
        } else {
            MAX_MINOR_DEFAULT
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, MoneyError> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0.to_owned()
    }
}

/// An amount that passes every static rule for its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor <= 0 {
            return Err(MoneyError::NotPositive(amount_minor));
        }
        let maximum_minor = currency.maximum_minor();
        if amount_minor > maximum_minor {
            return Err(MoneyError::TooLarge {
                maximum_minor,
                currency,
            });
        }
        match currency.class() {
            CurrencyClass::ThreeDecimal if amount_minor % 10 != 0 => {
                return Err(MoneyError::ThreeDecimalNeedsTrailingZero { currency });
            }
            CurrencyClass::WholeUnitsInTwoDecimals if amount_minor % 100 != 0 => {
                return Err(MoneyError::WholeUnitsOnly { currency });
            }
            CurrencyClass::TwoDecimal
            | CurrencyClass::ZeroDecimal
            | CurrencyClass::ThreeDecimal
            | CurrencyClass::WholeUnitsInTwoDecimals => {}
        }
        let minimum_minor = currency.minimum_minor();
        if amount_minor < minimum_minor {
            return Err(MoneyError::TooSmall {
                minimum_minor,
                currency,
            });
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    pub fn amount_minor(self) -> i64 {
        self.amount_minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: i64, currency: &str) -> Result<Money, MoneyError> {
        Money::new(amount, Currency::parse(currency).unwrap())
    }

    #[test]
    fn currency_codes_are_case_insensitive_and_stored_lowercase() {
        assert_eq!(Currency::parse("USD").unwrap().code(), "usd");
        assert_eq!(Currency::parse("eur").unwrap().code(), "eur");
    }

    #[test]
    fn malformed_and_unsupported_currencies_name_the_currency_field() {
        for bad in ["", "us", "usdd", "u$d", "12a"] {
            let err = Currency::parse(bad).unwrap_err();
            assert_eq!(err, MoneyError::MalformedCurrency(bad.to_owned()));
            assert_eq!(err.param(), "currency");
        }
        let err = Currency::parse("xyz").unwrap_err();
        assert_eq!(err, MoneyError::UnsupportedCurrency("xyz".into()));
        assert_eq!(err.param(), "currency");
    }

    #[test]
    fn two_decimal_currencies_enforce_stripes_minimums() {
        assert_eq!(
            Currency::parse("usd").unwrap().class(),
            CurrencyClass::TwoDecimal
        );
        assert!(money(50, "usd").is_ok());
        let err = money(49, "usd").unwrap_err();
        assert_eq!(err.code(), "amount_too_small");
        assert_eq!(err.param(), "amount");
        assert!(money(30, "gbp").is_ok());
        assert!(money(29, "gbp").is_err());
        // HUF is two-decimal in the API: 175.00 HUF is 17500.
        assert!(money(17_500, "huf").is_ok());
        assert!(money(17_499, "huf").is_err());
        // No static minimum where only conversion could tell.
        assert!(money(1, "idr").is_ok());
    }

    #[test]
    fn zero_decimal_currencies_count_whole_units() {
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(jpy.class(), CurrencyClass::ZeroDecimal);
        assert_eq!(jpy.minimum_minor(), 50);
        assert!(money(50, "jpy").is_ok());
        assert!(money(49, "jpy").is_err());
        assert!(money(1, "krw").is_ok());
        assert!(money(7, "clp").is_ok());
    }

    #[test]
    fn three_decimal_currencies_need_a_trailing_zero() {
        assert_eq!(
            Currency::parse("kwd").unwrap().class(),
            CurrencyClass::ThreeDecimal
        );
        assert!(money(5120, "kwd").is_ok());
        let err = money(5124, "kwd").unwrap_err();
        assert!(matches!(
            err,
            MoneyError::ThreeDecimalNeedsTrailingZero { .. }
        ));
        assert_eq!(err.param(), "amount");
        assert!(money(10, "bhd").is_ok());
    }

    #[test]
    fn isk_and_ugx_amounts_are_whole_units() {
        for c in ["isk", "ugx"] {
            assert_eq!(
                Currency::parse(c).unwrap().class(),
                CurrencyClass::WholeUnitsInTwoDecimals
            );
            assert!(money(500, c).is_ok());
            assert!(matches!(
                money(550, c).unwrap_err(),
                MoneyError::WholeUnitsOnly { .. }
            ));
        }
    }

    #[test]
    fn amounts_are_positive_and_at_most_eight_digits_twelve_for_idr() {
        assert_eq!(money(0, "usd").unwrap_err(), MoneyError::NotPositive(0));
        assert_eq!(
            money(-5, "usd").unwrap_err().code(),
            "parameter_invalid_integer"
        );
        assert!(money(99_999_999, "usd").is_ok());
        assert_eq!(
            money(100_000_000, "usd").unwrap_err().code(),
            "amount_too_large"
        );
        assert!(money(999_999_999_999, "idr").is_ok());
        assert!(money(1_000_000_000_000, "idr").is_err());
    }
}
