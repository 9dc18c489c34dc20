//! What a handler can learn about the delivery of its job.

use std::convert::Infallible;

use apalis_core::task::Task;
use apalis_core::task::from_request::FromRequest;

/// How many deliveries of this job in a row ended with their lease running out (the worker
/// crashed, was killed, or stalled past the lease) before this one. A handler takes it as an
/// argument; past [`crate::QueueConfig::max_lost_leases`] the queue dead-letters the job
/// instead of delivering it, so a handler that sees the maximum is on its last delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostLeases(pub u32);

impl<Args: Sync> FromRequest<Task<Args>> for LostLeases {
    type Error = Infallible;

    async fn from_request(task: &Task<Args>) -> Result<LostLeases, Infallible> {
        Ok(task.data().get::<LostLeases>().copied().unwrap_or_default())
    }
}
