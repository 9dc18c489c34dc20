//! Signing and verifying deliveries as the Standard Webhooks specification defines them, so a
//! receiver can verify with the official `standardwebhooks` libraries, or with [`verify`].
//!
//! A secret is `whsec_` and the base64 of its key bytes. A delivery carries `webhook-id` (the
//! event id, the same on every retry, so receivers can deduplicate), `webhook-timestamp` (Unix
//! seconds when it was sent) and `webhook-signature`: space-separated `v1,<base64 of
//! HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per live secret (two while a rotated
//! secret's overlap lasts).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a delivery's timestamp may be from the receiver's clock by default (the
/// specification's recommendation).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A fresh secret: 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
        .filter(|k| !k.is_empty())
}

fn mac(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header for a delivery, signed with each of `secrets` (a secret that
/// is not a valid `whsec_` key is skipped).
pub fn signature<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .filter_map(key_of)
        .map(|key| {
            let tag = mac(&key, id, timestamp, body).finalize().into_bytes();
            format!("v1,{}", STANDARD.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the secret is not a whsec_ key")]
    BadSecret,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is too far from now (replayed, or a clock is off)")]
    Stale,
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// Verifies a delivery received at `now` (Unix seconds) against `secret`: the timestamp must
/// be within `tolerance_secs` of `now`, and one of the header's `v1` signatures must match
/// (compared in constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let key = key_of(secret).ok_or(VerifyError::BadSecret)?;
    let ts: u64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if ts.abs_diff(now) > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| mac(&key, id, ts, body).verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification's reference implementations.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_as_the_specifications_example() {
        assert_eq!(signature([SECRET], ID, TIMESTAMP, BODY), EXPECTED);
    }

    #[test]
    fn verifies_within_the_tolerance_and_refuses_anything_else() {
        let ts = TIMESTAMP.to_string();
        let ok = |sig: &str, now: u64| verify(SECRET, ID, &ts, sig, BODY, now, 300);
        assert_eq!(ok(EXPECTED, TIMESTAMP), Ok(()));
        assert_eq!(ok(EXPECTED, TIMESTAMP + 300), Ok(()));
        assert_eq!(ok(EXPECTED, TIMESTAMP + 301), Err(VerifyError::Stale));
        assert_eq!(ok(EXPECTED, TIMESTAMP - 301), Err(VerifyError::Stale));
        // One of several signatures is enough (a rotation's overlap).
        let other = signature([generate_secret().as_str()], ID, TIMESTAMP, BODY);
        assert_eq!(ok(&format!("{other} {EXPECTED}"), TIMESTAMP), Ok(()));
        assert_eq!(ok(&other, TIMESTAMP), Err(VerifyError::NoMatch));
        assert_eq!(ok("v2,abc", TIMESTAMP), Err(VerifyError::NoMatch));
        let tampered = verify(SECRET, ID, &ts, EXPECTED, b"{}", TIMESTAMP, 300);
        assert_eq!(tampered, Err(VerifyError::NoMatch));
        let bad = verify(SECRET, ID, "soon", EXPECTED, BODY, TIMESTAMP, 300);
        assert_eq!(bad, Err(VerifyError::BadTimestamp));
        assert_eq!(
            verify("whsec_", ID, &ts, EXPECTED, BODY, TIMESTAMP, 300),
            Err(VerifyError::BadSecret)
        );
    }

    #[test]
    fn two_secrets_sign_twice() {
        let (a, b) = (generate_secret(), generate_secret());
        let header = signature([a.as_str(), b.as_str()], ID, TIMESTAMP, BODY);
        assert_eq!(header.split(' ').count(), 2);
        let ts = TIMESTAMP.to_string();
        for secret in [&a, &b] {
            assert_eq!(
                verify(secret, ID, &ts, &header, BODY, TIMESTAMP, 300),
                Ok(())
            );
        }
    }
}
