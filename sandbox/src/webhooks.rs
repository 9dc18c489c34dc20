//! Stripe-style webhook delivery of the sandbox's events to `[sandbox] webhook_urls`.
//!
//! Each event is POSTed as JSON with `Stripe-Signature: t=…,v1=hex(HMAC-SHA256(secret,
//! "t.body"))`, as Stripe documents it. Like Stripe's test mode, a non-2xx answer or a network
//! error is retried, three tries in all, with growing pauses; delivery is at least once and
//! unordered across events.

use std::time::Duration;

use flint_shared::config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::account::now_unix;
use crate::objects::Event;

const TRIES: u32 = 3;

#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: Option<mpsc::UnboundedSender<Event>>,
}

/// `t=…,v1=…` for `body` signed at `timestamp`.
pub fn signature_header(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

impl Webhooks {
    /// Starts the delivery task when there are endpoints; without any, events are dropped.
    pub fn start(urls: Vec<String>, secret: Secret) -> Self {
        if urls.is_empty() {
            return Webhooks { tx: None };
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                for url in &urls {
                    tokio::spawn(deliver(
                        client.clone(),
                        url.clone(),
                        secret.clone(),
                        event.clone(),
                    ));
                }
            }
        });
        Webhooks { tx: Some(tx) }
    }

    pub fn send(&self, events: Vec<Event>) {
        if let Some(tx) = &self.tx {
            for event in events {
                let _ = tx.send(event);
            }
        }
    }
}

async fn deliver(client: reqwest::Client, url: String, secret: Secret, event: Event) {
    let (id, kind, body) = (&event.id, event.kind, &*event.body);
    for attempt in 1..=TRIES {
        let signature = signature_header(secret.expose(), now_unix(), body);
        let result = client
            .post(&url)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(event_id = %id, event_type = kind, status = r.status().as_u16(), attempt, "sandbox webhook refused")
            }
            Err(e) => {
                tracing::warn!(event_id = %id, event_type = kind, error = %e, attempt, "sandbox webhook failed")
            }
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt * attempt))).await;
        }
    }
    tracing::error!(event_id = %id, event_type = kind, tries = TRIES, "sandbox webhook given up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_stripes_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
