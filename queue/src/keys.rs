//! The Redis key scheme of one queue. Every key carries the same hash tag, `{<queue>}`, so a
//! Redis Cluster keeps a queue's keys in one slot and each Lua script touches one slot only.
//! A queue may also live in another's slot (`flint:{<slot>}:<queue>:…`): a script that writes
//! data of the slot's queue can then push to it in the same atomic step (a payment's
//! transition and the job that delivers its events).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `flint:{q}:stream` | stream, group `workers` | ready and leased jobs: fields `id`, `p` (payload), `n` (deliveries in a row whose lease ran out, when any) |
//! | `flint:{q}:ids` | hash | job id → `1` for every live job (ready, leased or delayed): push dedup; `again` when something changed for a live job after it may have looked, so it runs once more, at once, when acknowledged |
//! | `flint:{q}:delayed` | sorted set | job id → due time (ms) |
//! | `flint:{q}:delayed_data` | hash | job id → payload of a delayed job |
//! | `flint:{q}:dead` | stream (capped) | dead letters: `id`, `p`, `reason`, `at` |
//!
//! A finished job leaves nothing: its stream entry is deleted and its id removed from `ids`.
//! The layout is written only by the Lua in [`crate::lua`].

/// The consumer group all workers of a queue read through.
pub const GROUP: &str = "workers";

#[derive(Debug, Clone)]
pub struct Keys {
    pub stream: String,
    pub ids: String,
    pub delayed: String,
    pub delayed_data: String,
    pub dead: String,
}

impl Keys {
    pub fn new(queue: &str) -> Keys {
        Keys::with_prefix(format!("flint:{{{queue}}}"))
    }

    /// The keys of `queue` in the partition tagged `tag`: its own keys when the tag is the
    /// queue's name (a queue of one partition), else [`Keys::in_slot`].
    pub fn of_partition(tag: &str, queue: &str) -> Keys {
        if tag == queue {
            Keys::new(queue)
        } else {
            Keys::in_slot(tag, queue)
        }
    }

    /// The keys of `queue` in the hash slot of the queue named `slot`.
    pub fn in_slot(slot: &str, queue: &str) -> Keys {
        Keys::with_prefix(format!("flint:{{{slot}}}:{queue}"))
    }

    fn with_prefix(prefix: String) -> Keys {
        let key = |suffix: &str| format!("{prefix}:{suffix}");
        Keys {
            stream: key("stream"),
            ids: key("ids"),
            delayed: key("delayed"),
            delayed_data: key("delayed_data"),
            dead: key("dead"),
        }
    }

    /// The keys of the job operations in [`crate::lua::LIBRARY`], in the order `fq_queue`
    /// expects them: a script that moves jobs passes these as four consecutive `KEYS`.
    pub fn job_keys(&self) -> [&str; 4] {
        [&self.stream, &self.ids, &self.delayed, &self.delayed_data]
    }

    /// All keys, in the order the scripts expect them.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.stream,
            &self.ids,
            &self.delayed,
            &self.delayed_data,
            &self.dead,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_queue_shares_one_hash_tag() {
        let keys = Keys::new("charges");
        for key in keys.all() {
            assert!(key.starts_with("flint:{charges}:"), "{key}");
        }
    }

    #[test]
    fn a_partition_tagged_with_the_queue_name_is_the_queue_itself() {
        assert_eq!(
            Keys::of_partition("charges", "charges").all(),
            Keys::new("charges").all()
        );
        for key in Keys::of_partition("charges.1.4", "charges").all() {
            assert!(key.starts_with("flint:{charges.1.4}:charges:"), "{key}");
        }
    }

    #[test]
    fn a_queue_in_another_queues_slot_shares_its_hash_tag_and_none_of_its_keys() {
        let own = Keys::new("charges");
        let guest = Keys::in_slot("charges", "webhooks");
        for key in guest.all() {
            assert!(key.starts_with("flint:{charges}:webhooks:"), "{key}");
            assert!(!own.all().contains(&key), "{key}");
        }
    }
}
