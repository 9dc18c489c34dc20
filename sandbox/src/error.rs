//! Stripe's error object and the HTTP status that goes with it.
//!
//! Every failure the sandbox answers is an [`ApiError`], rendered as
//! `{"error": {"type", "code", "message", "param", …}}` exactly as Stripe writes it, together
//! with the `Stripe-Should-Retry` advice Stripe sends for that class of error.

use http::StatusCode;
use serde_json::{Map, Value, json};

/// Stripe's `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Api,
    Card,
    Idempotency,
    InvalidRequest,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::Api => "api_error",
            ErrorType::Card => "card_error",
            ErrorType::Idempotency => "idempotency_error",
            ErrorType::InvalidRequest => "invalid_request_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: String,
    pub param: Option<String>,
    /// Further fields of the error object (`payment_intent`, `charge`, `payment_method`, …),
    /// boxed because most errors have none and errors travel in every `Result`.
    pub extra: Option<Box<Map<String, Value>>>,
    /// `Stripe-Should-Retry`, when Stripe would send it.
    pub should_retry: Option<bool>,
    /// `Stripe-Rate-Limited-Reason` on 429s.
    pub rate_limited_reason: Option<RateLimitedReason>,
}

/// Values of `Stripe-Rate-Limited-Reason` the sandbox sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitedReason {
    GlobalRate,
    ResourceSpecific,
}

impl RateLimitedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitedReason::GlobalRate => "global-rate",
            RateLimitedReason::ResourceSpecific => "resource-specific",
        }
    }
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: ErrorType,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        // Stripe: false on request and card errors (a retry has no other effect); absent
        // elsewhere unless a constructor says otherwise.
        let should_retry = match status.as_u16() {
            400 | 402 | 404 => Some(false),
            _ => None,
        };
        ApiError {
            status,
            kind,
            code: code.map(str::to_owned),
            decline_code: None,
            message: message.into(),
            param: None,
            extra: None,
            should_retry,
            rate_limited_reason: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_extra(mut self, key: &str, value: Value) -> Self {
        self.extra
            .get_or_insert_with(Box::default)
            .insert(key.to_owned(), value);
        self
    }

    /// 400 `invalid_request_error` about one parameter.
    pub fn invalid_param(
        param: impl Into<String>,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequest,
            code,
            message,
        )
        .with_param(param)
    }

    /// 400 `invalid_request_error` with no single parameter at fault.
    pub fn invalid_request(code: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequest,
            code,
            message,
        )
    }

    pub fn missing(param: &str) -> Self {
        ApiError::invalid_param(
            param,
            Some("parameter_missing"),
            format!("Missing required param: {param}."),
        )
    }

    pub fn unknown_param(param: &str) -> Self {
        ApiError::invalid_param(
            param,
            Some("parameter_unknown"),
            format!("Received unknown parameter: {param}"),
        )
    }

    /// 404 for an id in the URL.
    pub fn no_such(object: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            Some("resource_missing"),
            format!("No such {object}: '{id}'"),
        )
        .with_param("id")
    }

    /// 400 for an id given as a parameter that names nothing.
    pub fn no_such_param(object: &str, id: &str, param: &str) -> Self {
        ApiError::invalid_param(
            param,
            Some("resource_missing"),
            format!("No such {object}: '{id}'"),
        )
    }

    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            None,
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::InvalidRequest,
            None,
            message,
        )
    }

    pub fn rate_limited() -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::InvalidRequest,
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        );
        e.rate_limited_reason = Some(RateLimitedReason::GlobalRate);
        e
    }

    pub fn lock_timeout() -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::InvalidRequest,
            Some("lock_timeout"),
            "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.",
        );
        e.should_retry = Some(true);
        e.rate_limited_reason = Some(RateLimitedReason::ResourceSpecific);
        e
    }

    /// An injected 5xx. Stripe marks a 500 as not worth retrying with the same key (the saved
    /// result would be replayed); gateway errors carry no advice.
    pub fn server_error(status: StatusCode) -> Self {
        let mut e = ApiError::new(
            status,
            ErrorType::Api,
            None,
            "An unknown error occurred while processing your request. Please retry, or contact support if the problem persists.",
        );
        e.should_retry = (status == StatusCode::INTERNAL_SERVER_ERROR).then_some(false);
        e
    }

    pub fn idempotency_mismatch(key: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::Idempotency,
            None,
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
        )
    }

    pub fn idempotency_key_in_use() -> Self {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            ErrorType::InvalidRequest,
            Some("idempotency_key_in_use"),
            "There is currently another in-progress request using this Stripe token (that probably means you clicked twice). Please try again in a few seconds.",
        );
        e.should_retry = Some(true);
        e
    }

    /// 402 `card_error` for a declined or failed charge.
    pub fn card_error(code: &str, decline_code: Option<&str>, message: &str) -> Self {
        let mut e = ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorType::Card,
            Some(code),
            message,
        );
        e.decline_code = decline_code.map(str::to_owned);
        e
    }

    /// The error object alone (what `last_payment_error` holds).
    pub fn object(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("type".into(), json!(self.kind.as_str()));
        if let Some(code) = &self.code {
            obj.insert("code".into(), json!(code));
            obj.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        if let Some(decline) = &self.decline_code {
            obj.insert("decline_code".into(), json!(decline));
        }
        obj.insert("message".into(), json!(self.message));
        if let Some(param) = &self.param {
            obj.insert("param".into(), json!(param));
        }
        for (k, v) in self.extra.iter().flat_map(|extra| extra.iter()) {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    /// The whole response body: `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.object() })
    }
}
