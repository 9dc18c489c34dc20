//! Partitions of the charge path: `[queue] partitions = N` spreads payments over N Redis hash
//! tags, so that on a Redis Cluster their work and memory land on different primaries while
//! every script still touches one slot.
//!
//! Everything one payment needs lives in its partition: its record, its idempotency key, its
//! index entries and events, its charge job and its events' webhook jobs. A payment's
//! partition follows from its idempotency key (the create script must claim the key and write
//! the payment in one slot), and its id is drawn so that it hashes to the same partition
//! ([`Partitions::payment_id_for`]), so that anything holding only the id finds it.
//!
//! Tags: with one partition the tag is the queue's name (`charges`), the layout Flint always
//! had. With more, partition `p`'s tag is the first of `charges.p`, `charges.p.1`,
//! `charges.p.2`, … whose slot lies in the middle half of the `p`-th of N equal ranges of the
//! 16384 slots. `redis-cli --cluster create` gives each of M primaries an equal range, so with
//! N a multiple of M the partitions are spread evenly over the primaries (one each when N = M).
//! A cluster resharded by hand keeps slots wherever it put them.

use sha2::{Digest, Sha256};

use crate::ids::PaymentId;

/// The most partitions `[queue] partitions` may ask for.
pub const MAX_PARTITIONS: u16 = 64;

/// Redis Cluster's slot count.
const SLOTS: u32 = 16_384;

/// The partitions of one charge queue: their tags, and which one a payment belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    queue: String,
    tags: Vec<String>,
}

impl Partitions {
    /// `count` partitions of `queue` (at least one).
    pub fn new(queue: &str, count: u16) -> Partitions {
        let count = count.clamp(1, MAX_PARTITIONS);
        let tags = if count == 1 {
            vec![queue.to_owned()]
        } else {
            (0..count).map(|p| tag(queue, p, count)).collect()
        };
        Partitions {
            queue: queue.to_owned(),
            tags,
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub fn count(&self) -> usize {
        self.tags.len()
    }

    /// Partition `p`'s hash tag (the text between the braces of its keys).
    pub fn tag(&self, p: usize) -> &str {
        &self.tags[p]
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Whether this is the single-partition layout (keys `flint:{<queue>}:…`).
    pub fn is_single(&self) -> bool {
        self.tags.len() == 1
    }

    /// The partition of the payment `id`.
    pub fn of_payment(&self, id: &str) -> usize {
        self.bucket(&[id.as_bytes()])
    }

    /// The partition of a tenant's idempotency key: where a create under it is written.
    pub fn of_idempotency_key(&self, tenant: &str, key: &str) -> usize {
        self.bucket(&[b"idem\0", tenant.as_bytes(), b"\0", key.as_bytes()])
    }

    /// A fresh payment id in the partition of the tenant's idempotency key. Ids are drawn
    /// until one hashes there: N draws on average, each a few hundred nanoseconds.
    pub fn payment_id_for(&self, tenant: &str, idempotency_key: &str) -> PaymentId {
        let home = self.of_idempotency_key(tenant, idempotency_key);
        loop {
            let id = PaymentId::generate();
            if self.of_payment(id.as_str()) == home {
                return id;
            }
        }
    }

    fn bucket(&self, parts: &[&[u8]]) -> usize {
        if self.tags.len() == 1 {
            return 0;
        }
        let mut hash = Sha256::new();
        for part in parts {
            hash.update(part);
        }
        let digest = hash.finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        // The remainder is below the partition count (at most 64), so it fits.
        usize::try_from(u64::from_be_bytes(head) % self.tags.len() as u64).unwrap_or(0)
    }
}

/// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key when
/// it has none, modulo 16384.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    // 16384 divides 65536, so the remainder is the low 14 bits.
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16_384
}

/// Partition `p` of `count`'s tag: the first candidate whose slot is in the middle half of the
/// partition's range.
fn tag(queue: &str, p: u16, count: u16) -> String {
    let (p, count) = (u32::from(p), u32::from(count));
    let (low, high) = (p * SLOTS / count, (p + 1) * SLOTS / count);
    let quarter = (high - low) / 4;
    let (from, to) = (low + quarter, high - quarter);
    (0u32..)
        .map(|k| {
            if k == 0 {
                format!("{queue}.{p}")
            } else {
                format!("{queue}.{p}.{k}")
            }
        })
        .find(|candidate| (from..to).contains(&u32::from(key_slot(&format!("{{{candidate}}}")))))
        .expect("some suffix hashes into any range of at least one slot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_redis_cluster_specification() {
        // Examples from the Redis Cluster specification and CLUSTER KEYSLOT.
        for (key, slot) in [
            ("123456789", 0x31C3),
            ("somekey", 11_058),
            ("foo", 12_182),
            ("{user1000}.following", key_slot("user1000")),
            ("foo{}{bar}", key_slot("foo{}{bar}")),
            ("{}bar", key_slot("{}bar")),
        ] {
            assert_eq!(key_slot(key), slot, "{key}");
        }
        assert_eq!(
            key_slot("{user1000}.following"),
            key_slot("{user1000}.followers")
        );
        // An empty tag hashes the whole key.
        assert_ne!(key_slot("{}a"), key_slot("{}b"));
    }

    #[test]
    fn one_partition_keeps_the_queue_name_as_its_tag() {
        let one = Partitions::new("charges", 1);
        assert_eq!(one.tags(), ["charges"]);
        assert!(one.is_single());
        assert_eq!(one.of_payment("osp_anything"), 0);
        assert_eq!(one.of_idempotency_key("acme", "k"), 0);
    }

    #[test]
    fn partition_tags_spread_over_equal_slot_ranges() {
        for count in [2u16, 3, 4, 6, 16, 64] {
            let parts = Partitions::new("charges", count);
            assert_eq!(parts.count(), usize::from(count));
            for (p, tag) in parts.tags().iter().enumerate() {
                let slot = u32::from(key_slot(&format!("{{{tag}}}")));
                let share = SLOTS / u32::from(count);
                let p = u32::try_from(p).unwrap();
                assert!(
                    slot >= p * share && slot < (p + 1) * share + 1,
                    "{count} partitions: {tag} in slot {slot}"
                );
                assert!(tag.starts_with(&format!("charges.{p}")), "{tag}");
            }
        }
        // Deterministic: every process computes the same tags.
        assert_eq!(Partitions::new("charges", 3), Partitions::new("charges", 3));
    }

    #[test]
    fn three_partitions_land_on_the_three_ranges_redis_cli_assigns() {
        // redis-cli --cluster create with three primaries: 0-5460, 5461-10922, 10923-16383.
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        let parts = Partitions::new("charges", 3);
        for (tag, (low, high)) in parts.tags().iter().zip(ranges) {
            let slot = key_slot(&format!("{{{tag}}}"));
            assert!((low..=high).contains(&slot), "{tag}: slot {slot}");
        }
    }

    #[test]
    fn payment_ids_are_drawn_into_the_partition_of_their_idempotency_key() {
        let parts = Partitions::new("charges", 4);
        let mut seen = [0u32; 4];
        for i in 0..400 {
            let key = format!("key-{i}");
            let home = parts.of_idempotency_key("acme", &key);
            let id = parts.payment_id_for("acme", &key);
            assert_eq!(parts.of_payment(id.as_str()), home);
            seen[home] += 1;
        }
        // Keys spread over every partition (400 keys, 4 partitions: far from 0 each).
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // The tenant is part of the key's partition.
        let differs = (0..64)
            .filter(|i| {
                let key = format!("k{i}");
                parts.of_idempotency_key("acme", &key) != parts.of_idempotency_key("globex", &key)
            })
            .count();
        assert!(differs > 0);
    }
}
