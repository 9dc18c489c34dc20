//! Delivering events to the endpoints tenants registered (Standard Webhooks), on their own
//! queue so they never slow charges.
//!
//! An event's dispatch job is pushed by the script that wrote the event (so no event is lost
//! whatever crashes after); [`Webhooks::dispatch`] turns it into one delivery job per endpoint
//! that wants the event (an idempotent push: a dispatch run twice does not double a live
//! delivery), and [`Webhooks::deliver`] POSTs the event, signed, until the endpoint answers
//! 2xx or the delivery has been retried for `[webhooks] retry_for_secs` ([`retry`]); then it is
//! dead-lettered with the last answer. Delivery is at least once: receivers deduplicate by
//! `webhook-id`, which is the event id.

mod resolve;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::Data;
use flint_queue::{LostLeases, NewJob, Outcome, Queue};
use flint_shared::config::WebhooksConfig;
use flint_shared::ids::{EventId, WebhookEndpointId};
use flint_shared::payment::store::Store;
use flint_shared::telemetry::catalogue;
use flint_shared::time::Timestamp;
use flint_shared::webhook::job::WebhookJob;
use flint_shared::webhook::sign;
use retry::{Next, RetryPolicy};

/// How a delivery went, for `flint_webhook_deliveries_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Delivered,
    Retried,
    DeadLettered,
    /// The endpoint was deleted or disabled, or the event forgotten: nothing to send.
    Dropped,
}

impl Delivery {
    const ALL: [Delivery; 4] = [
        Delivery::Delivered,
        Delivery::Retried,
        Delivery::DeadLettered,
        Delivery::Dropped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retried => "retried",
            Delivery::DeadLettered => "dead_lettered",
            Delivery::Dropped => "dropped",
        }
    }

    fn count(self) {
        metrics::counter!(catalogue::WEBHOOK_DELIVERIES.name, "outcome" => self.as_str())
            .increment(1);
    }
}

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Status(u16),
    TimedOut,
    Unreachable(String),
}

impl Answer {
    fn delivered(&self) -> bool {
        matches!(self, Answer::Status(s) if (200..300).contains(s))
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "HTTP {s}"),
            Answer::TimedOut => write!(f, "timed out"),
            Answer::Unreachable(e) => write!(f, "unreachable: {e}"),
        }
    }
}

/// The webhook workers' shared state.
#[derive(Debug)]
pub struct Webhooks {
    /// Shared by every partition's deliveries.
    store: Arc<Store>,
    queue: Queue,
    http: reqwest::Client,
    policy: RetryPolicy,
    allow_private: bool,
}

impl Webhooks {
    pub fn new(
        store: Arc<Store>,
        queue: Queue,
        config: &WebhooksConfig,
    ) -> Result<Webhooks, reqwest::Error> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // A redirect is an answer like any other non-2xx: the endpoint's URL is what the
            // tenant registered, and nothing is sent anywhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Flint-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_networks {
            // Every connection goes straight to an address this resolver checked: through a
            // proxy (HTTP_PROXY, HTTPS_PROXY) the proxy would resolve the name instead.
            http = http
                .no_proxy()
                .dns_resolver(std::sync::Arc::new(resolve::PublicOnly));
        }
        Ok(Webhooks {
            store,
            queue,
            http: http.build()?,
            allow_private: config.allow_private_networks,
            policy: RetryPolicy {
                first: Duration::from_millis(config.first_retry_delay_ms),
                max: Duration::from_secs(config.max_retry_delay_secs),
                retry_for: Duration::from_secs(config.retry_for_secs),
            },
        })
    }

    pub async fn run(&self, job: &WebhookJob) -> Outcome {
        match job {
            WebhookJob::Dispatch { event, at } => self.dispatch(event, *at).await,
            WebhookJob::Deliver {
                event,
                endpoint,
                since,
            } => self.deliver(event, endpoint, *since).await,
        }
    }

    /// One delivery job per endpoint of the event's tenant that wants it.
    async fn dispatch(&self, event: &EventId, at: Timestamp) -> Outcome {
        let found = match self.store.event_any(event.as_str()).await {
            Ok(found) => found,
            Err(e) => return self.again_soon(event, at, &e),
        };
        let Some((ev, _)) = found else {
            tracing::info!(event_id = %event, "event forgotten before its dispatch");
            return Outcome::Complete;
        };
        let endpoints = match self.store.endpoints(&ev.tenant).await {
            Ok(endpoints) => endpoints,
            Err(e) => return self.again_soon(event, at, &e),
        };
        let now = Timestamp::now();
        let jobs: Vec<_> = endpoints
            .iter()
            .filter(|e| e.endpoint.wants(ev.kind))
            .map(|e| {
                let id = WebhookJob::delivery_id(event, &e.endpoint.id);
                NewJob::new(WebhookJob::Deliver {
                    event: event.clone(),
                    endpoint: e.endpoint.id.clone(),
                    since: now,
                })
                .with_id(id)
            })
            .collect();
        if jobs.is_empty() {
            return Outcome::Complete;
        }
        match self.queue.push_batch(jobs).await {
            Ok(_) => Outcome::Complete,
            Err(e) => self.again_soon(event, at, &e),
        }
    }

    async fn deliver(
        &self,
        event: &EventId,
        endpoint_id: &WebhookEndpointId,
        since: Timestamp,
    ) -> Outcome {
        let found = match self.store.event_any(event.as_str()).await {
            Ok(found) => found,
            Err(e) => return self.failed(event, endpoint_id, since, &e.to_string()),
        };
        let Some((ev, body)) = found else {
            Delivery::Dropped.count();
            return Outcome::Complete;
        };
        let endpoint = match self.store.endpoint(&ev.tenant, endpoint_id.as_str()).await {
            Ok(endpoint) => endpoint.map(|read| read.endpoint),
            Err(e) => return self.failed(event, endpoint_id, since, &e.to_string()),
        };
        let Some(endpoint) = endpoint.filter(|e| !e.endpoint.disabled) else {
            tracing::info!(event_id = %event, endpoint_id = %endpoint_id, "endpoint deleted or disabled: delivery dropped");
            Delivery::Dropped.count();
            return Outcome::Complete;
        };
        if !self.allow_private && !public_host(&endpoint.endpoint.url) {
            // Registered while private networks were allowed: nothing is sent there now.
            return self.failed(
                event,
                endpoint_id,
                since,
                "the endpoint's address is not public",
            );
        }
        let now = Timestamp::now();
        let timestamp = u64::try_from(now.unix_ms() / 1000).unwrap_or(0);
        let signature = sign::signature(
            endpoint.live_secrets(now),
            event.as_str(),
            timestamp,
            body.as_bytes(),
        );
        let started = Instant::now();
        let sent = self
            .http
            .post(&endpoint.endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", event.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        metrics::histogram!(catalogue::WEBHOOK_DELIVERY_DURATION.name)
            .record(started.elapsed().as_secs_f64());
        let answer = match sent {
            Ok(response) => Answer::Status(response.status().as_u16()),
            Err(e) if e.is_timeout() => Answer::TimedOut,
            // Without the URL: a tenant's URL may carry a token in its query.
            Err(e) => Answer::Unreachable(e.without_url().to_string()),
        };
        if answer.delivered() {
            Delivery::Delivered.count();
            tracing::debug!(event_id = %event, endpoint_id = %endpoint_id, "delivered");
            return Outcome::Complete;
        }
        self.failed(event, endpoint_id, since, &answer.to_string())
    }

    /// A try failed with `last`: again later, or a dead letter once the delivery's time is up.
    fn failed(
        &self,
        event: &EventId,
        endpoint: &WebhookEndpointId,
        since: Timestamp,
        last: &str,
    ) -> Outcome {
        let now = Timestamp::now();
        match retry::next(&self.policy, since, now, rand::random::<f64>()) {
            Next::RetryAt(at) => {
                Delivery::Retried.count();
                tracing::warn!(event_id = %event, endpoint_id = %endpoint, answer = %last, retry_at = %at, "webhook delivery failed; will retry");
                Outcome::RetryAt(at.system_time())
            }
            Next::GiveUp => {
                Delivery::DeadLettered.count();
                let reason = format!(
                    "endpoint {endpoint} did not accept event {event} within {} s; last answer: {last}",
                    self.policy.retry_for.as_secs()
                );
                tracing::error!(event_id = %event, endpoint_id = %endpoint, answer = %last, "webhook delivery dead-lettered");
                Outcome::DeadLetter(reason)
            }
        }
    }
}

/// Whether a URL's host may be sent to when private networks are not allowed (a name is
/// checked again when it is resolved).
fn public_host(url: &str) -> bool {
    match reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => flint_shared::webhook::endpoint::public_address(ip.into()),
        Some(url::Host::Ipv6(ip)) => flint_shared::webhook::endpoint::public_address(ip.into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name != "localhost" && !name.ends_with(".localhost")
        }
        None => false,
    }
}

impl Webhooks {
    /// A dispatch that could not read or push (Redis failing, a record it cannot read): it
    /// runs again in 5 s, and gives up with a dead letter once `retry_for` has passed since it
    /// was queued.
    fn again_soon(&self, event: &EventId, at: Timestamp, e: &dyn std::fmt::Display) -> Outcome {
        let spent = Timestamp::now().unix_ms() - at.unix_ms();
        if spent > i64::try_from(self.policy.retry_for.as_millis()).unwrap_or(i64::MAX) {
            tracing::error!(event_id = %event, error = %e, "event dispatch dead-lettered");
            return Outcome::DeadLetter(format!("event {event} could not be dispatched: {e}"));
        }
        tracing::warn!(event_id = %event, error = %e, "event dispatch failed; will retry");
        Outcome::RetryAt(std::time::SystemTime::now() + Duration::from_secs(5))
    }
}

/// The apalis handler; each delivery is spawned so deliveries spread over the runtime's
/// threads (apalis drives every in-flight job inside one task).
pub async fn webhook_job(
    job: WebhookJob,
    _lost: LostLeases,
    hooks: Data<Arc<Webhooks>>,
) -> Outcome {
    let hooks = Arc::clone(&hooks);
    let run = tokio::spawn(async move { hooks.run(&job).await });
    run.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "webhook job panicked");
        Outcome::DeadLetter(format!("the delivery panicked: {e}"))
    })
}

/// Reads the webhook queue's depth every `every`: `flint_webhook_pending` (deliveries not yet
/// done: ready, leased or waiting to retry) and `flint_webhook_dead_letters`, besides the
/// queue's own gauges.
/// Sets the delivery counter to zero for every outcome.
pub fn zero_metrics() {
    for delivery in Delivery::ALL {
        catalogue::zero(
            catalogue::WEBHOOK_DELIVERIES,
            &[("outcome", delivery.as_str())],
        );
    }
}

pub fn spawn_reporter(queues: Vec<Queue>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            // Summed over the partitions' webhook queues; a partial sum is not reported.
            let (mut pending, mut dead, mut complete) = (0, 0, true);
            for queue in &queues {
                match queue.stats().await {
                    Ok(stats) => {
                        flint_queue::metrics::record(queue.config(), &stats);
                        pending += stats.ready + stats.leased + stats.delayed;
                        dead += stats.dead;
                    }
                    Err(e) => {
                        complete = false;
                        tracing::warn!(error = %e, "reading the webhook queue's depth failed");
                    }
                }
            }
            if complete {
                metrics::gauge!(catalogue::WEBHOOK_PENDING.name).set(pending as f64);
                metrics::gauge!(catalogue::WEBHOOK_DEAD_LETTERS.name).set(dead as f64);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2xx_is_a_delivery() {
        for (answer, delivered) in [
            (Answer::Status(200), true),
            (Answer::Status(204), true),
            (Answer::Status(299), true),
            (Answer::Status(301), false),
            (Answer::Status(410), false),
            (Answer::Status(500), false),
            (Answer::TimedOut, false),
            (Answer::Unreachable("connection refused".into()), false),
        ] {
            assert_eq!(answer.delivered(), delivered, "{answer}");
        }
    }
}
