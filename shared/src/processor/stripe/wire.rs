//! Stripe's wire format, read: every HTTP status and error body mapped to what the caller
//! should do next ([`classify`]), and the objects Flint reads (PaymentIntents, payment
//! methods) parsed into the processor types.

use serde_json::Value;

use crate::payment::decline::{AdviceCode, DeclineCode, NetworkAdviceCode};
use crate::processor::{CardBrand, CardInfo, Decline, Intent, IntentStatus, ProcessorError};

pub(super) fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// An expandable field: its id, whether it came as an id or as an object.
pub(super) fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

/// A failure to get any answer. Before the request left (connect), nothing happened; after,
/// the outcome is unknown.
pub(super) fn transport(e: &reqwest::Error) -> ProcessorError {
    ProcessorError::Transient {
        reason: if e.is_timeout() {
            "timeout".to_owned()
        } else {
            format!("network: {e}")
        },
        outcome_unknown: !e.is_connect(),
        request_id: None,
    }
}

fn decline(error: &Value, request_id: Option<String>) -> Decline {
    Decline {
        code: text(&error["code"]).map_or(DeclineCode::CardDeclined, |c| DeclineCode::parse(&c)),
        decline_code: text(&error["decline_code"]).map(|c| DeclineCode::parse(&c)),
        advice_code: text(&error["advice_code"]).map(|c| AdviceCode::parse(&c)),
        network_advice_code: text(&error["network_advice_code"])
            .map(|c| NetworkAdviceCode::parse(&c)),
        message: text(&error["message"]).unwrap_or_default(),
        charge: text(&error["charge"]),
        intent_id: text(&error["payment_intent"]["id"]),
        request_id,
    }
}

/// Every HTTP status and error body, mapped to what the caller should do next.
/// `Stripe-Should-Retry: true` makes any failure transient; whether the same request is sent
/// again at all is the client's decision, where `Stripe-Should-Retry: false` wins.
pub fn classify(
    status: u16,
    should_retry: Option<bool>,
    request_id: Option<String>,
    body: &Value,
) -> ProcessorError {
    let error = &body["error"];
    let code = text(&error["code"]).unwrap_or_default();
    let message = text(&error["message"]).unwrap_or_else(|| format!("HTTP {status}"));
    // The key was used before with other parameters (a payment method resolved differently
    // when a dead worker's attempt is continued): that first request reached the processor
    // and may have charged, so this is an unknown outcome to settle by reading the intent,
    // never a rejection.
    if text(&error["type"]).as_deref() == Some("idempotency_error") {
        return ProcessorError::Transient {
            reason: format!("{status} idempotency_error: {message}"),
            outcome_unknown: true,
            request_id,
        };
    }
    // The intent is not in the state this request expected: most likely an earlier request
    // whose answer was lost (or whose idempotency key the processor has since forgotten)
    // already confirmed it. What happened is read from the intent, never assumed.
    if code == "payment_intent_unexpected_state" {
        return ProcessorError::Transient {
            reason: format!("{status} {code}: {message}"),
            outcome_unknown: true,
            request_id,
        };
    }
    match status {
        402 => {
            let d = Box::new(decline(error, request_id));
            match d.code {
                DeclineCode::AuthenticationRequired | DeclineCode::ExpiredCard => {
                    ProcessorError::NeedsCustomer(d)
                }
                _ => ProcessorError::Declined(d),
            }
        }
        401 | 403 => ProcessorError::Misconfigured { status, message },
        // The same key is in flight, or rate limits/lock contention: the same request later
        // gives the real answer.
        409 | 429 => ProcessorError::Transient {
            reason: format!("{status} {code}"),
            outcome_unknown: false,
            request_id,
        },
        // A 5xx may have taken effect (and Stripe replays a saved 500 under the same key).
        500..=599 => ProcessorError::Transient {
            reason: format!("{status}"),
            outcome_unknown: true,
            request_id,
        },
        _ if should_retry == Some(true) => ProcessorError::Transient {
            reason: format!("{status} {code}"),
            outcome_unknown: false,
            request_id,
        },
        _ => ProcessorError::Rejected {
            status,
            code,
            message,
            param: text(&error["param"]),
            request_id,
        },
    }
}

pub(super) fn intent(v: &Value) -> Intent {
    let metadata = v["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Intent {
        id: text(&v["id"]).unwrap_or_default(),
        status: IntentStatus::parse(v["status"].as_str().unwrap_or("")),
        amount_minor: v["amount"].as_i64().unwrap_or(0),
        payment_method: id_of(&v["payment_method"]),
        latest_charge: id_of(&v["latest_charge"]),
        metadata,
        last_error: v["last_payment_error"]
            .is_object()
            .then(|| decline(&v["last_payment_error"], None)),
    }
}

/// Brand and fingerprint of a PaymentMethod object (its id stands in for a missing fingerprint).
pub(super) fn card_info(pm: &Value, id: &str) -> CardInfo {
    CardInfo {
        brand: CardBrand::parse(pm["card"]["brand"].as_str().unwrap_or("unknown")),
        fingerprint: text(&pm["card"]["fingerprint"]).unwrap_or_else(|| id.to_owned()),
    }
}

/// What kind of answer a processor request got: the `status_class` label of
/// `flint_processor_requests_total`, so that 429s (slow down) and 5xx or network failures
/// (the processor is unwell) can be watched apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusClass {
    Success,
    ClientError,
    TooManyRequests,
    ServerError,
    /// No answer: the connection failed or timed out.
    Network,
}

impl StatusClass {
    pub(super) const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::ClientError,
        StatusClass::TooManyRequests,
        StatusClass::ServerError,
        StatusClass::Network,
    ];

    pub(super) fn of(status: u16) -> StatusClass {
        match status {
            200..=299 => StatusClass::Success,
            429 => StatusClass::TooManyRequests,
            500.. => StatusClass::ServerError,
            // Stripe answers nothing else; anything unexpected is not a success.
            _ => StatusClass::ClientError,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::ClientError => "4xx",
            StatusClass::TooManyRequests => "429",
            StatusClass::ServerError => "5xx",
            StatusClass::Network => "network",
        }
    }

    pub(super) fn count(self, endpoint: &'static str) {
        metrics::counter!(crate::telemetry::catalogue::PROCESSOR_REQUESTS.name, "endpoint" => endpoint, "status_class" => self.as_str())
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_status_and_body_maps_to_what_to_do_next() {
        let card = |code: &str, decline: &str| json!({"error": {"type": "card_error", "code": code, "decline_code": decline, "message": "m"}});
        assert!(
            matches!(classify(402, None, None, &card("card_declined", "insufficient_funds")), ProcessorError::Declined(d) if d.decline_code == Some(DeclineCode::InsufficientFunds))
        );
        assert!(matches!(
            classify(
                402,
                None,
                None,
                &card("authentication_required", "authentication_required")
            ),
            ProcessorError::NeedsCustomer(_)
        ));
        assert!(matches!(
            classify(402, None, None, &card("expired_card", "")),
            ProcessorError::NeedsCustomer(_)
        ));
        assert!(matches!(
            classify(401, None, None, &json!({})),
            ProcessorError::Misconfigured { status: 401, .. }
        ));
        for status in [409, 429] {
            assert!(matches!(
                classify(status, None, None, &json!({})),
                ProcessorError::Transient {
                    outcome_unknown: false,
                    ..
                }
            ));
        }
        for status in [500, 503] {
            assert!(matches!(
                classify(status, None, None, &json!({})),
                ProcessorError::Transient {
                    outcome_unknown: true,
                    ..
                }
            ));
        }
        let bad = json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": "amount", "message": "m"}});
        assert!(
            matches!(classify(400, None, None, &bad), ProcessorError::Rejected { status: 400, ref param, .. } if param.as_deref() == Some("amount"))
        );
        assert!(matches!(
            classify(404, None, None, &bad),
            ProcessorError::Rejected { status: 404, .. }
        ));
        assert!(matches!(
            classify(400, Some(true), None, &bad),
            ProcessorError::Transient { .. }
        ));
        let reused = json!({"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}});
        let unexpected = json!({"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state", "message": "This PaymentIntent's payment_method could not be updated because it has a status of succeeded."}});
        for body in [reused, unexpected] {
            assert!(
                matches!(
                    classify(400, None, None, &body),
                    ProcessorError::Transient {
                        outcome_unknown: true,
                        ..
                    }
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn answers_are_classed_for_the_requests_metric() {
        for (status, class) in [
            (200, "2xx"),
            (201, "2xx"),
            (400, "4xx"),
            (402, "4xx"),
            (409, "4xx"),
            (302, "4xx"),
            (429, "429"),
            (500, "5xx"),
            (503, "5xx"),
        ] {
            assert_eq!(StatusClass::of(status).as_str(), class, "{status}");
        }
    }
}
