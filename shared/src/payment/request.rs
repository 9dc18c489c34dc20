//! The create request, exactly as callers send it (unknown fields refused), and its
//! validation into a [`NewPayment`]. Each error names the field the way the API reports it
//! (`amount.value`, `metadata[key]`, `initiated_by.reason`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Purpose;
use crate::metadata::{MAX_KEYS, Metadata};
use crate::money::{Currency, Money};
use crate::processor::stripe::metadata::{flint_metadata, reserved_key};
use crate::time::Timestamp;

/// The most a single text field may hold (ids from the caller's systems).
const MAX_REF_CHARS: usize = 255;
/// The most a processor id (`cus_…`, `pm_…`) may hold.
const MAX_PROCESSOR_ID_CHARS: usize = 255;
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// How far ahead `charge_at` may be.
const MAX_SCHEDULE_AHEAD_SECS: u64 = 366 * 24 * 60 * 60;
/// Attempts and window the default retry policy allows.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_WINDOW_HOURS: u32 = 14 * 24;
const MAX_ATTEMPTS_LIMIT: u32 = 15;
const MAX_WINDOW_HOURS: u32 = 30 * 24;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Integer amount in the currency's smallest unit (2000 = 20.00 USD, ¥2000).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 999_999_999_999_i64)
    )]
    pub value: i64,
    /// ISO 4217 code, any case.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z]{3}$"))]
    pub currency: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<String>,
}

/// Who asked for the charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InitiatedBy {
    /// Another service of the platform (billing, dunning, …).
    Service { id: String },
    /// A person (support, ops); `reason` is required for `support` payments.
    Operator {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetryStrategy {
    /// Soft declines are retried on a schedule within the window.
    Scheduled,
    /// One attempt only.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub strategy: RetryStrategy,
    /// Attempts in all, the first included (1–15; default 4).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Hours after creation (or `charge_at`) during which retries may happen (1–720; default 336).
    #[serde(default = "default_window_hours")]
    pub window_hours: u32,
    /// After a hard decline, try each other card saved on the customer once (skipping cards
    /// with the fingerprint of one already tried), before failing. Default false.
    #[serde(default)]
    pub fallback_to_other_cards: bool,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_window_hours() -> u32 {
    DEFAULT_WINDOW_HOURS
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            strategy: RetryStrategy::Scheduled,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            window_hours: DEFAULT_WINDOW_HOURS,
            fallback_to_other_cards: false,
        }
    }
}

/// `POST /v1/off_session_payments` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    /// The processor's customer id (`cus_…`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub customer: String,
    /// The saved payment method to charge; the customer's default at attempt time when absent.
    #[serde(default)]
    pub payment_method: Option<String>,
    pub amount: AmountRequest,
    pub purpose: Purpose,
    #[serde(default)]
    pub context: Context,
    pub initiated_by: InitiatedBy,
    #[serde(default)]
    pub description: Option<String>,
    /// Card statement suffix: 1–22 characters, at least one letter, none of `<>\'"*`.
    #[serde(default)]
    pub statement_descriptor_suffix: Option<String>,
    /// Up to 50 keys of at most 40 characters, values of at most 500.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// RFC 3339 time of the first attempt; now when absent. At most a year ahead.
    #[serde(default)]
    pub charge_at: Option<String>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub customer: String,
    pub payment_method: Option<String>,
    pub amount: Money,
    pub purpose: Purpose,
    pub context: Context,
    pub initiated_by: InitiatedBy,
    pub description: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub metadata: Metadata,
    /// When the first attempt is due (now when `None`).
    pub charge_at: Option<Timestamp>,
    pub retry_policy: RetryPolicy,
}

/// A request field that is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ValidationError {
    /// Machine-readable: `parameter_missing`, `parameter_invalid`, `amount_too_small`, …
    pub code: &'static str,
    pub param: String,
    pub message: String,
}

fn invalid(param: &str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        code: "parameter_invalid",
        param: param.to_owned(),
        message: message.into(),
    }
}

fn reference(param: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError {
            code: "parameter_missing",
            param: param.to_owned(),
            message: format!("{param} must not be empty"),
        });
    }
    if value.chars().count() > MAX_REF_CHARS || value.chars().any(char::is_control) {
        return Err(invalid(
            param,
            format!("{param} must be at most {MAX_REF_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// Who asked for a change of a payment (cancel, resume, retry now), and why: what the change's
/// event records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<InitiatedBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Actor {
    /// Checks who and why: an operator must give a reason (as `reason`, or in
    /// `initiated_by.reason`); ids and reasons are printable and bounded. The reason ends up in
    /// `reason` alone.
    pub fn validate(
        initiated_by: Option<InitiatedBy>,
        reason: Option<String>,
    ) -> Result<Actor, ValidationError> {
        let reason = reason.filter(|r| !r.trim().is_empty());
        if let Some(r) = &reason {
            bounded_text("reason", r)?;
        }
        let (initiated_by, reason) = match initiated_by {
            None => (None, reason),
            Some(InitiatedBy::Service { id }) => {
                reference("initiated_by.id", &id)?;
                (Some(InitiatedBy::Service { id }), reason)
            }
            Some(InitiatedBy::Operator { id, reason: own }) => {
                reference("initiated_by.id", &id)?;
                let own = own.filter(|r| !r.trim().is_empty());
                if let Some(r) = &own {
                    bounded_text("initiated_by.reason", r)?;
                }
                let Some(reason) = reason.or(own) else {
                    return Err(ValidationError {
                        code: "parameter_missing",
                        param: "reason".into(),
                        message: "an operator's change needs a reason".into(),
                    });
                };
                (
                    Some(InitiatedBy::Operator { id, reason: None }),
                    Some(reason),
                )
            }
        };
        Ok(Actor {
            initiated_by,
            reason,
        })
    }
}

fn bounded_text(param: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS || value.chars().any(char::is_control) {
        return Err(invalid(
            param,
            format!("{param} must be at most {MAX_DESCRIPTION_CHARS} printable characters"),
        ));
    }
    Ok(())
}

fn optional_reference(param: &str, value: Option<&String>) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |v| reference(param, v))
}

/// A processor's id (`cus_…`, `pm_…`): letters, digits and `_`, at most 255. Ids go into the
/// processor's URL paths and into Redis key names, so nothing else is accepted.
pub fn processor_id(param: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError {
            code: "parameter_missing",
            param: param.to_owned(),
            message: format!("{param} must not be empty"),
        });
    }
    if value.len() > MAX_PROCESSOR_ID_CHARS
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(
            param,
            format!(
                "{param} must be a processor id: letters, digits and _, at most {MAX_PROCESSOR_ID_CHARS} characters"
            ),
        ));
    }
    Ok(())
}

impl CreatePaymentRequest {
    /// Checks every field; `now` is the current time for `charge_at` bounds.
    pub fn validate(self, now: Timestamp) -> Result<NewPayment, ValidationError> {
        processor_id("customer", &self.customer)?;
        if let Some(pm) = &self.payment_method {
            processor_id("payment_method", pm)?;
        }
        let currency = Currency::parse(&self.amount.currency).map_err(|e| ValidationError {
            code: "invalid_currency",
            param: "amount.currency".into(),
            message: e.to_string(),
        })?;
        let amount = Money::new(self.amount.value, currency).map_err(|e| ValidationError {
            code: e.code(),
            param: "amount.value".into(),
            message: e.to_string(),
        })?;
        optional_reference("context.order_id", self.context.order_id.as_ref())?;
        optional_reference(
            "context.subscription_id",
            self.context.subscription_id.as_ref(),
        )?;
        optional_reference("context.invoice_id", self.context.invoice_id.as_ref())?;
        match &self.initiated_by {
            InitiatedBy::Service { id } => reference("initiated_by.id", id)?,
            InitiatedBy::Operator { id, reason } => {
                reference("initiated_by.id", id)?;
                if let Some(reason) = reason
                    && reason.chars().count() > MAX_DESCRIPTION_CHARS
                {
                    return Err(invalid(
                        "initiated_by.reason",
                        format!("at most {MAX_DESCRIPTION_CHARS} characters"),
                    ));
                }
            }
        }
        if self.purpose == Purpose::Support {
            match &self.initiated_by {
                InitiatedBy::Operator {
                    reason: Some(r), ..
                } if !r.trim().is_empty() => {}
                InitiatedBy::Operator { .. } => {
                    return Err(ValidationError {
                        code: "parameter_missing",
                        param: "initiated_by.reason".into(),
                        message: "support payments need the operator's reason".into(),
                    });
                }
                InitiatedBy::Service { .. } => {
                    return Err(invalid(
                        "initiated_by.type",
                        "support payments must be initiated by an operator",
                    ));
                }
            }
        }
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(invalid(
                "description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if let Some(s) = &self.statement_descriptor_suffix {
            let ok = (1..=22).contains(&s.chars().count())
                && s.chars().any(|c| c.is_ascii_alphabetic())
                && !s.contains(['<', '>', '\\', '\'', '"', '*']);
            if !ok {
                return Err(invalid(
                    "statement_descriptor_suffix",
                    "1–22 characters with at least one letter and none of < > \\ ' \" *",
                ));
            }
        }
        let metadata = self.checked_metadata()?;
        let charge_at = match &self.charge_at {
            None => None,
            Some(text) => {
                let at = Timestamp::parse_rfc3339(text).ok_or_else(|| {
                    invalid(
                        "charge_at",
                        "must be an RFC 3339 time such as 2026-12-01T09:00:00Z",
                    )
                })?;
                if at < now.minus(std::time::Duration::from_secs(60)) {
                    return Err(invalid("charge_at", "must not be in the past"));
                }
                if at > now.plus(std::time::Duration::from_secs(MAX_SCHEDULE_AHEAD_SECS)) {
                    return Err(invalid("charge_at", "must be at most a year ahead"));
                }
                Some(at)
            }
        };
        let retry_policy = self.retry_policy.unwrap_or_default();
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&retry_policy.max_attempts) {
            return Err(invalid(
                "retry_policy.max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        if !(1..=MAX_WINDOW_HOURS).contains(&retry_policy.window_hours) {
            return Err(invalid(
                "retry_policy.window_hours",
                format!("must be between 1 and {MAX_WINDOW_HOURS}"),
            ));
        }
        Ok(NewPayment {
            customer: self.customer,
            payment_method: self.payment_method,
            amount,
            purpose: self.purpose,
            context: self.context,
            initiated_by: self.initiated_by,
            description: self.description,
            statement_descriptor_suffix: self.statement_descriptor_suffix,
            metadata,
            charge_at,
            retry_policy,
        })
    }

    /// The caller's metadata within Stripe's limits, none of its keys one that Flint sets, and
    /// room left for Flint's own keys of this payment (the processor's limit is on the sum).
    fn checked_metadata(&self) -> Result<Metadata, ValidationError> {
        let metadata = Metadata::new(self.metadata.clone()).map_err(|e| ValidationError {
            code: "parameter_invalid",
            param: e.param(),
            message: e.to_string(),
        })?;
        if let Some(key) = metadata.entries().keys().find(|k| reserved_key(k)) {
            return Err(invalid(
                &format!("metadata[{key}]"),
                format!(
                    "`{key}` is set by Flint (keys starting with `flint_`, and order_id, subscription_id and invoice_id from `context`); use another key"
                ),
            ));
        }
        // Only the number of Flint's keys matters here, not the payment id in one of them.
        let flint = flint_metadata("osp_", self.purpose, &self.initiated_by, &self.context).len();
        let room = MAX_KEYS.saturating_sub(flint);
        if metadata.entries().len() > room {
            return Err(invalid(
                "metadata",
                format!(
                    "metadata can have at most {room} keys for this payment: the processor allows {MAX_KEYS} and Flint adds {flint} of its own (its payment id, purpose, initiator and context)"
                ),
            ));
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_actor_says_who_and_an_operator_says_why() {
        let operator = |reason: Option<&str>| InitiatedBy::Operator {
            id: "ann".into(),
            reason: reason.map(str::to_owned),
        };
        let ok = |by: Option<InitiatedBy>, reason: Option<&str>| {
            Actor::validate(by, reason.map(str::to_owned))
        };
        // Nobody named: fine, with or without a reason.
        assert_eq!(ok(None, None), Ok(Actor::default()));
        // An operator's reason may come either way; it ends up in `reason`.
        for (own, top) in [
            (Some("asked"), None),
            (None, Some("asked")),
            (Some("x"), Some("asked")),
        ] {
            let actor = ok(Some(operator(own)), top).unwrap();
            assert_eq!(actor.reason.as_deref(), Some("asked"));
            assert_eq!(actor.initiated_by, Some(operator(None)));
        }
        for (by, reason, param) in [
            (Some(operator(None)), None, "reason"),
            (Some(operator(Some("  "))), Some(" "), "reason"),
            (
                Some(InitiatedBy::Service { id: String::new() }),
                None,
                "initiated_by.id",
            ),
            (None, Some("a\u{1b}b"), "reason"),
        ] {
            assert_eq!(ok(by, reason).unwrap_err().param, param);
        }
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(ok(None, Some(&long)).unwrap_err().param, "reason");
    }

    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

    fn base() -> CreatePaymentRequest {
        serde_json::from_value(serde_json::json!({
            "customer": "cus_1",
            "amount": {"value": 2000, "currency": "USD"},
            "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "billing"}
        }))
        .unwrap()
    }

    fn err(req: CreatePaymentRequest) -> ValidationError {
        req.validate(NOW).unwrap_err()
    }

    #[test]
    fn a_minimal_request_takes_the_defaults() {
        let p = base().validate(NOW).unwrap();
        assert_eq!(p.amount.currency().code(), "usd");
        assert_eq!(p.retry_policy, RetryPolicy::default());
        assert_eq!(p.charge_at, None);
    }

    #[test]
    fn unknown_fields_and_wrong_types_do_not_parse() {
        let unknown = serde_json::json!({"customer": "c", "amount": {"value": 1, "currency": "usd"}, "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "b"}, "colour": "red"});
        assert!(serde_json::from_value::<CreatePaymentRequest>(unknown).is_err());
        let wrong = serde_json::json!({"customer": "c", "amount": {"value": "1", "currency": "usd"}, "purpose": "subscription",
            "initiated_by": {"type": "service", "id": "b"}});
        assert!(serde_json::from_value::<CreatePaymentRequest>(wrong).is_err());
    }

    #[test]
    fn amounts_follow_the_shared_money_rules() {
        let mut r = base();
        r.amount.value = 10;
        assert_eq!(
            (err(r.clone()).code, err(r).param.as_str()),
            ("amount_too_small", "amount.value")
        );
        let mut r = base();
        r.amount.currency = "xyz".into();
        assert_eq!(err(r).param, "amount.currency");
    }

    #[test]
    fn support_payments_need_an_operator_with_a_reason() {
        let mut r = base();
        r.purpose = Purpose::Support;
        assert_eq!(err(r.clone()).param, "initiated_by.type");
        r.initiated_by = InitiatedBy::Operator {
            id: "alice".into(),
            reason: None,
        };
        assert_eq!(err(r.clone()).param, "initiated_by.reason");
        r.initiated_by = InitiatedBy::Operator {
            id: "alice".into(),
            reason: Some("refund reversal".into()),
        };
        assert!(r.validate(NOW).is_ok());
    }

    #[test]
    fn charge_at_must_be_rfc3339_not_past_and_within_a_year() {
        let mut r = base();
        r.charge_at = Some("tomorrow".into());
        assert_eq!(err(r.clone()).param, "charge_at");
        r.charge_at = Some("2020-01-01T00:00:00Z".into());
        assert!(err(r.clone()).message.contains("past"));
        r.charge_at = Some("2099-01-01T00:00:00Z".into());
        assert!(err(r.clone()).message.contains("year"));
        let in_a_day = NOW.plus(std::time::Duration::from_secs(86_400));
        r.charge_at = Some(in_a_day.rfc3339());
        assert_eq!(r.validate(NOW).unwrap().charge_at, Some(in_a_day));
    }

    #[test]
    fn metadata_descriptor_and_policy_limits_name_their_field() {
        let mut r = base();
        r.metadata.insert("k".repeat(41), "v".into());
        assert!(err(r).param.starts_with("metadata["));
        let mut r = base();
        r.statement_descriptor_suffix = Some("12345".into());
        assert_eq!(err(r).param, "statement_descriptor_suffix");
        let mut r = base();
        r.retry_policy = Some(RetryPolicy {
            strategy: RetryStrategy::Scheduled,
            max_attempts: 0,
            window_hours: 24,
            fallback_to_other_cards: false,
        });
        assert_eq!(err(r).param, "retry_policy.max_attempts");
        let mut r = base();
        r.retry_policy = Some(RetryPolicy {
            strategy: RetryStrategy::None,
            max_attempts: 1,
            window_hours: 9999,
            fallback_to_other_cards: true,
        });
        assert_eq!(err(r).param, "retry_policy.window_hours");
        let mut r = base();
        r.customer = String::new();
        assert_eq!(err(r).code, "parameter_missing");
        let mut r = base();
        r.customer = " ".into();
        assert_eq!(err(r).code, "parameter_invalid");
        let mut r = base();
        r.context.order_id = Some("x".repeat(256));
        assert_eq!(err(r).param, "context.order_id");
    }

    #[test]
    fn processor_ids_are_letters_digits_and_underscores() {
        for (field, value, ok) in [
            ("customer", "cus_NffrFeUfNV2Hib", true),
            ("customer", "cus_1/../../v1/charges", false),
            ("customer", "cus 1", false),
            ("customer", "cus_é", false),
            ("payment_method", "pm_card_visa", true),
            ("payment_method", "pm_1?expand=x", false),
            ("payment_method", "pm_%2e%2e", false),
            ("payment_method", "", false),
        ] {
            let mut r = base();
            match field {
                "customer" => r.customer = value.into(),
                _ => r.payment_method = Some(value.into()),
            }
            match r.validate(NOW) {
                Ok(_) => assert!(ok, "{field}={value:?} accepted"),
                Err(e) => {
                    assert!(!ok, "{field}={value:?}: {e}");
                    assert_eq!(e.param, field);
                }
            }
        }
        let mut r = base();
        r.customer = "c".repeat(256);
        assert_eq!(err(r).param, "customer");
    }

    #[test]
    fn caller_metadata_leaves_room_for_flints_keys_and_may_not_use_them() {
        let mut r = base();
        r.context.subscription_id = Some("sub_1".into());
        r.context.invoice_id = Some("in_1".into());
        r.metadata = (0..46).map(|i| (format!("k{i}"), "v".into())).collect();
        // Flint adds its id, purpose, initiator and the subscription and invoice ids: 5 keys.
        let e = err(r.clone());
        assert_eq!(e.param, "metadata");
        assert!(e.message.contains("at most 45"), "{}", e.message);
        r.metadata.remove("k0");
        assert!(r.clone().validate(NOW).is_ok());
        for key in ["flint_payment_id", "flint_anything", "invoice_id"] {
            let mut r = base();
            r.metadata.insert(key.into(), "x".into());
            assert_eq!(err(r).param, format!("metadata[{key}]"));
        }
    }
}
