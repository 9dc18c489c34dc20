//! A thin Stripe client: form encoding, a pinned `Stripe-Version`, timeouts, `Request-Id`
//! captured, and one function ([`classify`]) that maps every status and error body to a
//! [`ProcessorError`]. Transient failures are retried here with the same idempotency key
//! (exponential backoff with full jitter, bounded) unless Stripe answers
//! `Stripe-Should-Retry: false`, which wins on every status, as in Stripe's own clients; what
//! is still transient after that is returned for the caller to reconcile.
//!
//! - `wire`: Stripe's answers read into the processor types, and [`classify`];
//! - `metadata`: the keys Flint adds to a PaymentIntent, and the ones callers may not use.
//!
//! Every id that goes into a URL path is percent-encoded as one path segment, whatever was
//! validated before: an id is data, never part of the route.
//!
//! Hand-written rather than async-stripe: about six endpoints are needed, idempotency keys must
//! be ours, and the generated crate is ~14 MB of code.

pub mod metadata;
mod wire;

use std::time::Duration;

use backon::BackoffBuilder;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use serde_json::Value;

pub use wire::classify;

use super::{CardInfo, Intent, IntentRequest, Processor, ProcessorError, SavedCard};
use crate::config::Secret;
use crate::telemetry::catalogue;
use crate::time::Timestamp;
use wire::{StatusClass, card_info, id_of, intent, text, transport};

/// Characters left as they are in a path segment: RFC 3986 unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `id` as one URL path segment.
fn segment(id: &str) -> String {
    // "." and ".." are dot-segments that a URL parser resolves away even when encoded this
    // way; nothing Stripe issues looks like that, so they are sent fully escaped.
    if id == "." || id == ".." {
        return id.replace('.', "%2E");
    }
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// Exponential backoff with full jitter: each wait is drawn uniformly from zero to the
/// exponential schedule's delay. (backon's own jitter adds a random part on top of the delay,
/// so its waits lie between one and two delays, which is not full jitter.)
fn full_jitter(schedule: impl Iterator<Item = Duration>) -> impl Iterator<Item = Duration> {
    schedule.map(|delay| delay.mul_f64(rand::rng().random::<f64>()))
}

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
    async fn call(&self, request: Request<'_>) -> Result<Value, ProcessorError> {
        let endpoint = request.endpoint;
        let mut backoff = full_jitter(
            backon::ExponentialBuilder::default()
                .with_min_delay(self.config.min_backoff)
                .with_max_delay(self.config.max_backoff)
                .with_max_times(self.config.max_retries)
                .build(),
        );
        let mut sent = false;
        loop {
            let (result, should_retry) = self.call_once(&request, sent).await;
            sent = true;
            match result {
                Err(ProcessorError::Transient { ref reason, .. })
                    if should_retry != Some(false) =>
                {
                    match backoff.next() {
                        Some(wait) => {
                            metrics::counter!(catalogue::PROCESSOR_RETRIES.name, "endpoint" => endpoint)
                                .increment(1);
                            tracing::warn!(endpoint, reason = %reason, retry_in_ms = wait.as_millis() as u64, "processor request failed; retrying with the same key");
                            tokio::time::sleep(wait).await;
                        }
                        None => return result,
                    }
                }
                other => return other,
            }
        }
    }

    /// Walks a Stripe list (newest first, 100 a page) until `visit` finds something in a page
    /// or the list ends: `Ok(None)` only when the whole list was seen. After 20 pages (2,000
    /// items, far beyond any real customer's cards or intents) with more to come it cannot say
    /// "not there", so the answer is an error that leaves the outcome unknown.
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
            let page = self.call(Request::read(endpoint, path, &f)).await?;
            let data = page["data"].as_array().map_or(&[][..], Vec::as_slice);
            if let Some(found) = visit(data) {
                return Ok(Some(found));
            }
            if page["has_more"] != Value::Bool(true) {
                return Ok(None);
            }
            starting_after = data.last().and_then(|v| text(&v["id"]));
        }
        Err(ProcessorError::Transient {
            reason: format!(
                "{path} lists more than 2,000 entries; the one looked for may be further"
            ),
            outcome_unknown: true,
            request_id: None,
        })
    }

    async fn call_once(
        &self,
        request: &Request<'_>,
        sent_before: bool,
    ) -> (Result<Value, ProcessorError>, Option<bool>) {
        let Request {
            endpoint,
            ref method,
            path,
            form,
            key,
            send_until,
        } = *request;
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        if send_until.is_some_and(|until| Timestamp::now() >= until) {
            // Past the attempt's time to send (this worker was slow, or stalled): the worker
            // that continues the attempt relies on nothing more being sent now.
            return (
                Err(ProcessorError::Transient {
                    reason: "the attempt's time to send ran out".into(),
                    outcome_unknown: sent_before,
                    request_id: None,
                }),
                Some(false),
            );
        }
        // From the request leaving to its whole answer read; the rate limit's wait is not in it.
        let started = std::time::Instant::now();
        let answered = |class: StatusClass| {
            metrics::histogram!(catalogue::PROCESSOR_REQUEST_DURATION.name, "endpoint" => endpoint)
                .record(started.elapsed().as_secs_f64());
            class.count(endpoint);
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
            Err(e) => {
                StatusClass::Network.count(endpoint);
                return (Err(transport(&e)), None);
            }
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
            .and_then(|v| match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            });
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => {
                StatusClass::Network.count(endpoint);
                return (Err(transport(&e)), should_retry);
            }
        };
        answered(StatusClass::of(status));
        if (200..300).contains(&status) {
            (Ok(body), should_retry)
        } else {
            (
                Err(classify(status, should_retry, request_id, &body)),
                should_retry,
            )
        }
    }
}

/// The operations Flint sends to Stripe: the `endpoint` label of the processor metrics.
mod endpoint {
    pub const RETRIEVE_CUSTOMER: &str = "retrieve_customer";
    pub const CREATE_INTENT: &str = "create_intent";
    pub const CONFIRM_INTENT: &str = "confirm_intent";
    pub const LIST_PAYMENT_METHODS: &str = "list_payment_methods";
    pub const RETRIEVE_PAYMENT_METHOD: &str = "retrieve_payment_method";
    pub const RETRIEVE_INTENT: &str = "retrieve_intent";
    pub const LIST_INTENTS: &str = "list_intents";

    pub const ALL: [&str; 7] = [
        RETRIEVE_CUSTOMER,
        CREATE_INTENT,
        CONFIRM_INTENT,
        LIST_PAYMENT_METHODS,
        RETRIEVE_PAYMENT_METHOD,
        RETRIEVE_INTENT,
        LIST_INTENTS,
    ];
}

/// Sets the processor's request counters to zero for every endpoint and answer class, so that
/// error and 429 ratios have data before the first failure.
pub fn zero_metrics() {
    for endpoint in endpoint::ALL {
        catalogue::zero(catalogue::PROCESSOR_RETRIES, &[("endpoint", endpoint)]);
        for class in StatusClass::ALL {
            catalogue::zero(
                catalogue::PROCESSOR_REQUESTS,
                &[("endpoint", endpoint), ("status_class", class.as_str())],
            );
        }
    }
}

/// One request to Stripe, as the retry loop sends it again.
#[derive(Debug)]
struct Request<'a> {
    /// The operation, for metrics (a closed set, never an id).
    endpoint: &'static str,
    method: reqwest::Method,
    path: &'a str,
    form: &'a [(String, String)],
    key: Option<&'a str>,
    /// Nothing is sent after this time (charging requests).
    send_until: Option<Timestamp>,
}

impl<'a> Request<'a> {
    fn read(endpoint: &'static str, path: &'a str, form: &'a [(String, String)]) -> Request<'a> {
        Request {
            endpoint,
            method: reqwest::Method::GET,
            path,
            form,
            key: None,
            send_until: None,
        }
    }

    fn charge(
        endpoint: &'static str,
        path: &'a str,
        form: &'a [(String, String)],
        key: &'a str,
        send_until: Timestamp,
    ) -> Request<'a> {
        Request {
            endpoint,
            method: reqwest::Method::POST,
            path,
            form,
            key: Some(key),
            send_until: Some(send_until),
        }
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Processor for StripeClient {
    async fn default_payment_method(
        &self,
        customer: &str,
    ) -> Result<Option<String>, ProcessorError> {
        let v = self
            .call(Request::read(
                endpoint::RETRIEVE_CUSTOMER,
                &format!("/v1/customers/{}", segment(customer)),
                &[],
            ))
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
        send_until: Timestamp,
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
        let flint = metadata::flint_metadata(
            request.payment_id.as_str(),
            request.purpose,
            &request.initiated_by,
            &request.context,
        );
        for (k, v) in metadata::intent_metadata(flint, request.metadata.entries()) {
            f.push((format!("metadata[{k}]"), v));
        }
        if let Some(pm) = &request.confirm_with {
            f.push(("payment_method".into(), pm.clone()));
            f.push(("confirm".into(), "true".into()));
            f.push(("off_session".into(), "true".into()));
        }
        let v = self
            .call(Request::charge(
                endpoint::CREATE_INTENT,
                "/v1/payment_intents",
                &f,
                idempotency_key,
                send_until,
            ))
            .await?;
        Ok(intent(&v))
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
        send_until: Timestamp,
    ) -> Result<Intent, ProcessorError> {
        let f = form(&[("payment_method", payment_method), ("off_session", "true")]);
        let v = self
            .call(Request::charge(
                endpoint::CONFIRM_INTENT,
                &format!("/v1/payment_intents/{}/confirm", segment(intent_id)),
                &f,
                idempotency_key,
                send_until,
            ))
            .await?;
        Ok(intent(&v))
    }

    async fn saved_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        let mut cards = Vec::new();
        self.walk_list(
            endpoint::LIST_PAYMENT_METHODS,
            &format!("/v1/customers/{}/payment_methods", segment(customer)),
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
            .call(Request::read(
                endpoint::RETRIEVE_PAYMENT_METHOD,
                &format!("/v1/payment_methods/{}", segment(payment_method)),
                &[],
            ))
            .await?;
        Ok(card_info(&v, payment_method))
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, ProcessorError> {
        let v = self
            .call(Request::read(
                endpoint::RETRIEVE_INTENT,
                &format!("/v1/payment_intents/{}", segment(intent_id)),
                &[],
            ))
            .await?;
        Ok(intent(&v))
    }

    async fn find_intent(
        &self,
        customer: &str,
        payment_id: &str,
        created_since: Timestamp,
    ) -> Result<Option<Intent>, ProcessorError> {
        // The customer's intents since the payment was created, newest first, until the
        // payment's own is found.
        let since = created_since.unix_ms().div_euclid(1000).to_string();
        self.walk_list(
            endpoint::LIST_INTENTS,
            "/v1/payment_intents",
            &[("customer", customer), ("created[gte]", &since)],
            |page| {
                page.iter().map(intent).find(|i| {
                    i.metadata.get(metadata::PAYMENT_ID_KEY).map(String::as_str) == Some(payment_id)
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sent_as_one_path_segment() {
        assert_eq!(segment("cus_Abc123"), "cus_Abc123");
        assert_eq!(
            segment("cus_1/../../v1/charges"),
            "cus_1%2F..%2F..%2Fv1%2Fcharges"
        );
        assert_eq!(segment("pm_1?expand=x#y"), "pm_1%3Fexpand%3Dx%23y");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("é\n"), "%C3%A9%0A");
    }

    #[test]
    fn full_jitter_waits_between_zero_and_the_schedules_delay() {
        let schedule = [Duration::from_millis(200), Duration::from_secs(5)];
        let mut below_half = 0;
        for _ in 0..1_000 {
            for (wait, delay) in full_jitter(schedule.into_iter()).zip(schedule) {
                assert!(wait <= delay, "{wait:?} > {delay:?}");
                if wait < delay / 2 {
                    below_half += 1;
                }
            }
        }
        // Uniform over [0, delay]: about half the waits fall below half the delay.
        assert!((800..1_200).contains(&below_half), "{below_half}");
    }
}
