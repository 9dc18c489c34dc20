//! `[queue]`: the charge queue the enqueuer pushes to and the workers serve, and how many
//! partitions it (with the payments it carries) is spread over. One section, read by both.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::partition::MAX_PARTITIONS;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// The charge queue's name: the hash tag of its keys (`flint:{charges}:…`) when there is
    /// one partition, and part of every partition's tag when there are more.
    pub name: String,
    /// How many partitions (hash tags) the charge path is spread over, 1–64. Every payment,
    /// its idempotency key, indexes, events and jobs live in one partition, so each script
    /// touches one slot; on a Redis Cluster the partitions' slots sit on different primaries.
    /// Fixed for the life of the data: Flint refuses to start when Redis holds payments
    /// written with another count.
    pub partitions: u16,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            name: "charges".to_owned(),
            partitions: 1,
        }
    }
}

/// Names a queue may not take: in a partition's slot its keys are `flint:{<tag>}:<name>:…`,
/// beside the payment store's (`flint:{<tag>}:pay:…`, `…:idx:…`) and a queue's own.
pub(super) const RESERVED_NAMES: &[&str] = &[
    "pay",
    "idem",
    "idx",
    "live",
    "expiring",
    "evt",
    "evx",
    "whe",
    "ack",
    "sweeper",
    "partitions",
    "stream",
    "ids",
    "delayed",
    "delayed_data",
    "dead",
];

impl QueueConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !super::enqueuer::valid_name(&self.name) {
            return Err(ConfigError::invalid(
                "queue.name",
                "must be 1–64 characters of a-z, 0-9, _ or -",
            ));
        }
        if RESERVED_NAMES.contains(&self.name.as_str()) {
            return Err(ConfigError::invalid(
                "queue.name",
                format!("`{}` names keys of Flint's own; choose another", self.name),
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(ConfigError::invalid(
                "queue.partitions",
                format!("must be between 1 and {MAX_PARTITIONS}"),
            ));
        }
        Ok(())
    }
}
