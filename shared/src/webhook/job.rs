//! The webhook queue's jobs. Defined once, here, and encoded only by [`WebhookJob::payload`]
//! (serde), so the payment scripts that push them push exactly what the workers decode.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, WebhookEndpointId};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookJob {
    /// Pushed with the transition that wrote the event (job id: the event id): becomes one
    /// [`WebhookJob::Deliver`] per endpoint of the tenant that wants the event.
    Dispatch {
        event: EventId,
        /// When it was queued: a dispatch that keeps failing gives up (dead letter) after
        /// `[webhooks] retry_for_secs`, like a delivery.
        at: Timestamp,
    },
    /// Sends the event to one endpoint until it answers 2xx, or the delivery has been retried
    /// for `[webhooks] retry_for_secs` since `since` (job id: `<event>:<endpoint>`).
    Deliver {
        event: EventId,
        endpoint: WebhookEndpointId,
        since: Timestamp,
    },
}

impl WebhookJob {
    /// The job as the queue stores it.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a webhook job always serializes")
    }

    /// The queue job id of the delivery of `event` to `endpoint`: one live delivery each.
    pub fn delivery_id(event: &EventId, endpoint: &WebhookEndpointId) -> String {
        format!("{event}:{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_jobs_round_trip_through_their_payload() {
        let jobs = [
            WebhookJob::Dispatch {
                event: EventId::generate(),
                at: Timestamp::from_unix_ms(1_800_000_000_000),
            },
            WebhookJob::Deliver {
                event: EventId::generate(),
                endpoint: WebhookEndpointId::generate(),
                since: Timestamp::from_unix_ms(1_800_000_000_000),
            },
        ];
        for job in jobs {
            let back: WebhookJob = serde_json::from_slice(&job.payload()).unwrap();
            assert_eq!(back, job);
        }
        assert!(serde_json::from_slice::<WebhookJob>(b"").is_err());
        assert!(
            serde_json::from_slice::<WebhookJob>(
                br#"{"job":"dispatch","event":"osp_x","at":"2026-01-01T00:00:00Z"}"#
            )
            .is_err()
        );
    }
}
