//! The create request, exactly as callers send it (unknown fields refused), and its
//! validation into a [`NewPayment`]. Each error names the field the way the API reports it
//! (`amount.value`, `metadata[key]`, `initiated_by.reason`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Purpose;
use crate::metadata::Metadata;
use crate::money::{Currency, Money};

/// The most a single text field may hold (ids from the caller's systems).
const MAX_REF_CHARS: usize = 255;
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// How far ahead `charge_at` may be.
const MAX_SCHEDULE_AHEAD_SECS: i64 = 366 * 24 * 60 * 60;
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
    /// Unix milliseconds of the first attempt.
    pub charge_at_ms: Option<i64>,
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

fn optional_reference(param: &str, value: Option<&String>) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |v| reference(param, v))
}

impl CreatePaymentRequest {
    /// Checks every field; `now_ms` is the current time for `charge_at` bounds.
    pub fn validate(self, now_ms: i64) -> Result<NewPayment, ValidationError> {
        reference("customer", &self.customer)?;
        optional_reference("payment_method", self.payment_method.as_ref())?;
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
        let metadata = Metadata::new(self.metadata).map_err(|e| ValidationError {
            code: "parameter_invalid",
            param: e.param(),
            message: e.to_string(),
        })?;
        let charge_at_ms = match &self.charge_at {
            None => None,
            Some(text) => {
                let at = time::OffsetDateTime::parse(
                    text,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| {
                    invalid(
                        "charge_at",
                        "must be an RFC 3339 time such as 2026-12-01T09:00:00Z",
                    )
                })?;
                let at_ms =
                    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
                if at_ms < now_ms - 60_000 {
                    return Err(invalid("charge_at", "must not be in the past"));
                }
                if at_ms > now_ms + MAX_SCHEDULE_AHEAD_SECS * 1000 {
                    return Err(invalid("charge_at", "must be at most a year ahead"));
                }
                Some(at_ms)
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
            charge_at_ms,
            retry_policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

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
        assert_eq!(p.charge_at_ms, None);
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
        let in_a_day = time::OffsetDateTime::from_unix_timestamp(NOW / 1000 + 86_400).unwrap();
        r.charge_at = Some(
            in_a_day
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        );
        assert_eq!(
            r.validate(NOW).unwrap().charge_at_ms,
            Some(NOW + 86_400_000)
        );
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
        r.customer = " ".into();
        assert_eq!(err(r).code, "parameter_missing");
        let mut r = base();
        r.context.order_id = Some("x".repeat(256));
        assert_eq!(err(r).param, "context.order_id");
    }
}
