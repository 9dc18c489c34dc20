//! The charge job: what the queue carries for a payment. Defined once, here, and encoded only by
//! [`ChargeJob::payload`] (serde), so the scripts that create and move payments push exactly
//! what the workers decode.

use serde::{Deserialize, Serialize};

use crate::ids::PaymentId;

/// One job per payment; its queue job id is the payment id, so pushes are idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeJob {
    pub payment_id: PaymentId,
}

impl ChargeJob {
    pub fn new(payment_id: PaymentId) -> ChargeJob {
        ChargeJob { payment_id }
    }

    /// The job id in the queue.
    pub fn job_id(&self) -> &str {
        self.payment_id.as_str()
    }

    /// The job as the queue stores it.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a charge job always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_job_round_trips_through_its_payload() {
        let job = ChargeJob::new(PaymentId::generate());
        let back: ChargeJob = serde_json::from_slice(&job.payload()).unwrap();
        assert_eq!(back, job);
        assert!(serde_json::from_slice::<ChargeJob>(b"").is_err());
        assert!(serde_json::from_slice::<ChargeJob>(br#"{"payment_id":"evt_x"}"#).is_err());
    }
}
