//! Stripe's idempotency layer, as Stripe documents it, per account.
//!
//! A POST with an `Idempotency-Key` first claims the key. While it runs, the same key gets 409
//! `idempotency_key_in_use`. Once execution has begun its response is saved, whatever it is
//! (200, 402, even 500), and replayed to every later request with the same key and the same
//! endpoint and parameters, with `Idempotent-Replayed: true`; different parameters get 400
//! `idempotency_error`. Requests that fail before execution (validation, rate limits, faults
//! injected before commit) release the key unsaved. Saved results expire after the retention.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use sha2::{Digest, Sha256};

/// A response as it was first answered, for replays.
#[derive(Debug, Clone)]
pub struct SavedResponse {
    pub status: StatusCode,
    pub body: Bytes,
    pub should_retry: Option<bool>,
}

#[derive(Debug)]
enum State {
    InFlight,
    Done(SavedResponse),
}

#[derive(Debug)]
struct Entry {
    fingerprint: [u8; 32],
    state: State,
    created: Instant,
}

#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: HashMap<String, Entry>,
    last_prune: Option<Instant>,
}

/// What a request with a key may do.
#[derive(Debug)]
pub enum Claim {
    /// The key is now this request's; it must end with [`IdempotencyStore::complete`] or
    /// [`IdempotencyStore::release`].
    Claimed,
    Replay(SavedResponse),
    Mismatch,
    InFlight,
}

/// The fingerprint of a request: endpoint and canonical parameters.
pub fn fingerprint(method: &str, path: &str, canonical_params: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical_params.as_bytes());
    h.finalize().into()
}

impl IdempotencyStore {
    pub fn claim(
        &mut self,
        key: &str,
        fingerprint: [u8; 32],
        retention: Duration,
        now: Instant,
    ) -> Claim {
        self.prune(retention, now);
        if let Some(entry) = self.entries.get(key) {
            let expired = now.duration_since(entry.created) >= retention;
            if !expired {
                if entry.fingerprint != fingerprint {
                    return Claim::Mismatch;
                }
                return match &entry.state {
                    State::InFlight => Claim::InFlight,
                    State::Done(saved) => Claim::Replay(saved.clone()),
                };
            }
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                state: State::InFlight,
                created: now,
            },
        );
        Claim::Claimed
    }

    pub fn complete(&mut self, key: &str, response: SavedResponse) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.state = State::Done(response);
        }
    }

    pub fn release(&mut self, key: &str) {
        if matches!(
            self.entries.get(key),
            Some(Entry {
                state: State::InFlight,
                ..
            })
        ) {
            self.entries.remove(key);
        }
    }

    /// Forgets every finished key, as Stripe does once its retention (about 24 hours) has passed.
    /// Keys of requests still running stay.
    pub fn forget_finished(&mut self) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| matches!(e.state, State::InFlight));
        before - self.entries.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops expired results, at most once per tenth of the retention, so memory stays bounded
    /// by the request rate times the retention.
    fn prune(&mut self, retention: Duration, now: Instant) {
        let due = self
            .last_prune
            .is_none_or(|last| now.duration_since(last) >= retention / 10);
        if due {
            self.entries.retain(|_, e| {
                matches!(e.state, State::InFlight) || now.duration_since(e.created) < retention
            });
            self.last_prune = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(status: u16) -> SavedResponse {
        SavedResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from_static(b"{}"),
            should_retry: None,
        }
    }

    #[test]
    fn a_claimed_key_is_in_flight_then_replays_its_result() {
        let mut store = IdempotencyStore::default();
        let (t0, day) = (Instant::now(), Duration::from_secs(86_400));
        let fp = fingerprint("POST", "/v1/x", "a=1");
        assert!(matches!(store.claim("k", fp, day, t0), Claim::Claimed));
        assert!(matches!(store.claim("k", fp, day, t0), Claim::InFlight));
        store.complete("k", saved(402));
        match store.claim("k", fp, day, t0) {
            Claim::Replay(r) => assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.claim("k", fingerprint("POST", "/v1/x", "a=2"), day, t0),
            Claim::Mismatch
        ));
        assert!(matches!(
            store.claim("k", fingerprint("POST", "/v1/y", "a=1"), day, t0),
            Claim::Mismatch
        ));
    }

    #[test]
    fn released_keys_can_be_claimed_again_and_expired_ones_are_new_requests() {
        let mut store = IdempotencyStore::default();
        let (t0, ttl) = (Instant::now(), Duration::from_secs(10));
        let fp = fingerprint("POST", "/v1/x", "");
        assert!(matches!(store.claim("k", fp, ttl, t0), Claim::Claimed));
        store.release("k");
        assert!(matches!(store.claim("k", fp, ttl, t0), Claim::Claimed));
        store.complete("k", saved(200));
        let later = t0 + Duration::from_secs(11);
        assert!(matches!(
            store.claim("k", fingerprint("POST", "/v1/x", "other"), ttl, later),
            Claim::Claimed
        ));
    }

    #[test]
    fn expired_results_are_pruned() {
        let mut store = IdempotencyStore::default();
        let (t0, ttl) = (Instant::now(), Duration::from_secs(10));
        for i in 0..100 {
            let key = format!("k{i}");
            assert!(matches!(
                store.claim(&key, [0; 32], ttl, t0),
                Claim::Claimed
            ));
            store.complete(&key, saved(200));
        }
        assert_eq!(store.len(), 100);
        let _ = store.claim("fresh", [0; 32], ttl, t0 + Duration::from_secs(20));
        assert_eq!(store.len(), 1);
    }
}
