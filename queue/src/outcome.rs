//! What a handler decides about its job. The backend never retries on its own schedule or
//! count: a job runs again only when its handler says when.

use std::time::{SystemTime, UNIX_EPOCH};

use apalis_core::error::BoxDynError;
use apalis_core::task::into_response::IntoResponse;

use crate::store::RawOutcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; nothing of the job remains in Redis.
    Complete,
    /// Run again, not before this time (the job keeps its id, so pushes stay deduplicated).
    RetryAt(SystemTime),
    /// Must not run again: kept in the bounded dead-letter store with the reason.
    DeadLetter(String),
}

impl IntoResponse for Outcome {
    type Output = Outcome;

    fn into_response(self) -> Result<Outcome, BoxDynError> {
        Ok(self)
    }
}

/// Handler responses the backend understands. `()` means complete.
pub trait JobResponse {
    fn outcome(&self) -> Outcome;
}

impl JobResponse for Outcome {
    fn outcome(&self) -> Outcome {
        self.clone()
    }
}

impl JobResponse for () {
    fn outcome(&self) -> Outcome {
        Outcome::Complete
    }
}

impl From<Outcome> for RawOutcome {
    fn from(o: Outcome) -> RawOutcome {
        match o {
            Outcome::Complete => RawOutcome::Complete,
            Outcome::RetryAt(at) => RawOutcome::RetryAtMs(
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            ),
            Outcome::DeadLetter(reason) => RawOutcome::Dead(reason),
        }
    }
}
