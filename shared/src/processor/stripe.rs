//! A thin Stripe client: form encoding, a pinned `Stripe-Version`, timeouts, `Request-Id`
//! captured, and one function ([`classify`]) that maps every status and error body to a
//! [`ProcessorError`]. Transient failures are retried here with the same idempotency key
//! (exponential backoff with full jitter, bounded); what is still transient after that is
//! returned for the caller to reconcile.
//!
//! Hand-written rather than async-stripe: about six endpoints are needed, idempotency keys must
//! be ours, and the generated crate is ~14 MB of code (stripe-subset.md §8).

use std::collections::BTreeMap;
use std::time::Duration;

use backon::BackoffBuilder;
use serde_json::Value;

use super::{
    CardInfo, Decline, Intent, IntentRequest, IntentStatus, Processor, ProcessorError, SavedCard,
};
use crate::config::Secret;

/// How to reach Stripe (or the sandbox).
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or the sandbox's base URL.
    pub api_base: String,
    pub secret_key: Secret,
    pub stripe_version: String,
    /// Per request, connect included.
    pub timeout: Duration,
    /// Extra tries of a transient failure, with the same idempotency key.
    pub max_retries: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl StripeConfig {
    pub fn new(api_base: impl Into<String>, secret_key: Secret) -> StripeConfig {
        StripeConfig {
            api_base: api_base.into(),
            secret_key,
            stripe_version: "2024-06-20".to_owned(),
            timeout: Duration::from_secs(30),
            max_retries: 3,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    config: StripeConfig,
    limiter: Option<std::sync::Arc<super::limit::RateLimiter>>,
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> StripeClient {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        StripeClient {
            http,
            config,
            limiter: None,
        }
    }

    /// Every request, retries included, waits for its turn under `limiter`.
    pub fn with_rate_limit(mut self, limiter: super::limit::RateLimiter) -> StripeClient {
        self.limiter = Some(std::sync::Arc::new(limiter));
        self
    }

    /// Sends one request, retrying transient failures with the same key.
    /// `endpoint` names the operation for metrics (a closed set, never an id).
    async fn call(
        &self,
        endpoint: &'static str,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        key: Option<&str>,
    ) -> Result<Value, ProcessorError> {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_jitter()
            .with_max_times(self.config.max_retries)
            .build();
        loop {
            let result = self
                .call_once(endpoint, method.clone(), path, form, key)
                .await;
            let status_class = match &result {
                Ok(_) => "2xx",
                Err(ProcessorError::Transient {
                    request_id: None, ..
                }) => "network",
                Err(ProcessorError::Transient { .. }) => "5xx_or_429",
                Err(
                    ProcessorError::Declined(_)
                    | ProcessorError::NeedsCustomer(_)
                    | ProcessorError::Rejected { .. }
                    | ProcessorError::Misconfigured { .. },
                ) => "4xx",
            };
            metrics::counter!("flint_processor_requests_total", "endpoint" => endpoint, "status_class" => status_class).increment(1);
            match result {
                Err(ProcessorError::Transient { ref reason, .. }) => match backoff.next() {
                    Some(wait) => {
                        metrics::counter!("flint_processor_retries_total", "endpoint" => endpoint)
                            .increment(1);
                        tracing::warn!(path, reason = %reason, retry_in_ms = wait.as_millis() as u64, "processor request failed; retrying with the same key");
                        tokio::time::sleep(wait).await;
                    }
                    None => return result,
                },
                other => return other,
            }
        }
    }

    /// Walks a Stripe list (newest first, 100 a page) until `visit` finds something in a page
    /// or the list ends; 20 pages at most, far beyond any real customer's cards or intents.
    async fn walk_list<T>(
        &self,
        endpoint: &'static str,
        path: &str,
        filter: &[(&str, &str)],
        mut visit: impl FnMut(&[Value]) -> Option<T>,
    ) -> Result<Option<T>, ProcessorError> {
        let mut starting_after: Option<String> = None;
        for _ in 0..20 {
            let mut f = form(filter);
            f.push(("limit".into(), "100".into()));
            if let Some(after) = &starting_after {
                f.push(("starting_after".into(), after.clone()));
            }
            let page = self
                .call(endpoint, reqwest::Method::GET, path, &f, None)
                .await?;
            let data = page["data"].as_array().map_or(&[][..], Vec::as_slice);
            if let Some(found) = visit(data) {
                return Ok(Some(found));
            }
            if page["has_more"] != Value::Bool(true) {
                break;
            }
            starting_after = data.last().and_then(|v| text(&v["id"]));
        }
        Ok(None)
    }

    async fn call_once(
        &self,
        endpoint: &'static str,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        key: Option<&str>,
    ) -> Result<Value, ProcessorError> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        // From the request leaving to its whole answer read; the rate limit's wait is not in it.
        let started = std::time::Instant::now();
        let answered = || {
            metrics::histogram!("flint_processor_request_duration_seconds", "endpoint" => endpoint)
                .record(started.elapsed().as_secs_f64());
        };
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.config.secret_key.expose())
            .header("Stripe-Version", &self.config.stripe_version);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request = if method == reqwest::Method::GET {
            request.query(form)
        } else {
            request.form(form)
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(transport(&e)),
        };
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let should_retry = response
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true");
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => return Err(transport(&e)),
        };
        answered();
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(classify(status, should_retry, request_id, &body))
        }
    }
}

/// A failure to get any answer. Before the request left (connect), nothing happened; after,
/// the outcome is unknown.
fn transport(e: &reqwest::Error) -> ProcessorError {
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

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn decline(error: &Value, request_id: Option<String>) -> Decline {
    Decline {
        code: text(&error["code"]).unwrap_or_else(|| "card_declined".to_owned()),
        decline_code: text(&error["decline_code"]),
        advice_code: text(&error["advice_code"]),
        network_advice_code: text(&error["network_advice_code"]),
        message: text(&error["message"]).unwrap_or_default(),
        charge: text(&error["charge"]),
        intent_id: text(&error["payment_intent"]["id"]),
        request_id,
    }
}

/// Every HTTP status and error body, mapped to what the caller should do next.
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
    match status {
        402 => {
            let d = decline(error, request_id);
            match d.code.as_str() {
                "authentication_required" | "expired_card" => ProcessorError::NeedsCustomer(d),
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

fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

fn intent(v: &Value) -> Intent {
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

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Brand and fingerprint of a PaymentMethod object (its id stands in for a missing fingerprint).
fn card_info(pm: &Value, id: &str) -> CardInfo {
    CardInfo {
        brand: text(&pm["card"]["brand"]).unwrap_or_else(|| "unknown".to_owned()),
        fingerprint: text(&pm["card"]["fingerprint"]).unwrap_or_else(|| id.to_owned()),
    }
}

impl Processor for StripeClient {
    async fn default_payment_method(
        &self,
        customer: &str,
    ) -> Result<Option<String>, ProcessorError> {
        let v = self
            .call(
                "retrieve_customer",
                reqwest::Method::GET,
                &format!("/v1/customers/{customer}"),
                &[],
                None,
            )
            .await?;
        if v["deleted"] == Value::Bool(true) {
            return Ok(None);
        }
        Ok(id_of(&v["invoice_settings"]["default_payment_method"]))
    }

    async fn create_intent(
        &self,
        request: &IntentRequest,
        idempotency_key: &str,
    ) -> Result<Intent, ProcessorError> {
        let amount = request.amount_minor.to_string();
        let mut f = form(&[
            ("amount", &amount),
            ("currency", &request.currency),
            ("customer", &request.customer),
        ]);
        f.push(("payment_method_types[]".into(), "card".into()));
        if let Some(d) = &request.description {
            f.push(("description".into(), d.clone()));
        }
        if let Some(s) = &request.statement_descriptor_suffix {
            f.push(("statement_descriptor_suffix".into(), s.clone()));
        }
        for (k, v) in &request.metadata {
            f.push((format!("metadata[{k}]"), v.clone()));
        }
        if let Some(pm) = &request.confirm_with {
            f.push(("payment_method".into(), pm.clone()));
            f.push(("confirm".into(), "true".into()));
            f.push(("off_session".into(), "true".into()));
        }
        let v = self
            .call(
                "create_intent",
                reqwest::Method::POST,
                "/v1/payment_intents",
                &f,
                Some(idempotency_key),
            )
            .await?;
        Ok(intent(&v))
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProcessorError> {
        let f = form(&[("payment_method", payment_method), ("off_session", "true")]);
        let v = self
            .call(
                "confirm_intent",
                reqwest::Method::POST,
                &format!("/v1/payment_intents/{intent_id}/confirm"),
                &f,
                Some(idempotency_key),
            )
            .await?;
        Ok(intent(&v))
    }

    async fn saved_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        let mut cards = Vec::new();
        self.walk_list(
            "list_payment_methods",
            &format!("/v1/customers/{customer}/payment_methods"),
            &[("type", "card")],
            |page| {
                cards.extend(page.iter().filter_map(|pm| {
                    let id = text(&pm["id"])?;
                    Some(SavedCard {
                        card: card_info(pm, &id),
                        id,
                    })
                }));
                None::<()>
            },
        )
        .await?;
        Ok(cards)
    }

    async fn card(&self, payment_method: &str) -> Result<CardInfo, ProcessorError> {
        let v = self
            .call(
                "retrieve_payment_method",
                reqwest::Method::GET,
                &format!("/v1/payment_methods/{payment_method}"),
                &[],
                None,
            )
            .await?;
        Ok(card_info(&v, payment_method))
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, ProcessorError> {
        let v = self
            .call(
                "retrieve_intent",
                reqwest::Method::GET,
                &format!("/v1/payment_intents/{intent_id}"),
                &[],
                None,
            )
            .await?;
        Ok(intent(&v))
    }

    async fn find_intent(
        &self,
        customer: &str,
        payment_id: &str,
    ) -> Result<Option<Intent>, ProcessorError> {
        // A customer's intents, newest first, until the payment's own is found.
        self.walk_list(
            "list_intents",
            "/v1/payment_intents",
            &[("customer", customer)],
            |page| {
                page.iter().map(intent).find(|i| {
                    i.metadata.get("flint_payment_id").map(String::as_str) == Some(payment_id)
                })
            },
        )
        .await
    }
}

/// Metadata for the payment's PaymentIntent: the caller's, plus Flint's id and the context,
/// so the processor's records reconcile with Flint's.
pub fn intent_metadata(
    payment_id: &str,
    context: &[(&str, Option<&String>)],
    caller: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut m = caller.clone();
    m.insert("flint_payment_id".to_owned(), payment_id.to_owned());
    for (key, value) in context {
        if let Some(v) = value {
            m.insert((*key).to_owned(), (*v).clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_status_and_body_maps_to_what_to_do_next() {
        let card = |code: &str, decline: &str| json!({"error": {"type": "card_error", "code": code, "decline_code": decline, "message": "m"}});
        assert!(
            matches!(classify(402, Some(false), None, &card("card_declined", "insufficient_funds")), ProcessorError::Declined(d) if d.decline_code.as_deref() == Some("insufficient_funds"))
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
        assert!(matches!(
            classify(409, Some(true), None, &json!({})),
            ProcessorError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        assert!(matches!(
            classify(429, None, None, &json!({})),
            ProcessorError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        assert!(matches!(
            classify(500, Some(false), None, &json!({})),
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
        assert!(matches!(
            classify(503, None, None, &json!({})),
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
        let bad = json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": "amount", "message": "m"}});
        assert!(
            matches!(classify(400, Some(false), None, &bad), ProcessorError::Rejected { status: 400, ref param, .. } if param.as_deref() == Some("amount"))
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
        assert!(matches!(
            classify(400, None, None, &reused),
            ProcessorError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
    }
}
