//! API keys, as Stripe reads them: `Authorization: Bearer sk_test_…`, or HTTP Basic with the key
//! as the user name. Each configured key is one account with its own data; keys are looked up
//! by their SHA-256 digest so the sandbox keeps no table of plaintext keys.

use std::sync::{Arc, Mutex};

use base64::Engine;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::App;
use crate::account::Account;
use crate::error::ApiError;

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Stripe's redacted form of a key: `sk_test_****abcd`.
fn redact(key: &str) -> String {
    let prefix: String = key.chars().take_while(|c| *c != '_').collect();
    let mode = if key.contains("_live_") {
        "_live_"
    } else if key.contains("_test_") {
        "_test_"
    } else {
        "_"
    };
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{prefix}{mode}****{tail}")
}

fn key_from(headers: &HeaderMap) -> Result<String, ApiError> {
    let no_key = || {
        ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    };
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(no_key)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Invalid Authorization header."))?;
    if let Some(key) = value.strip_prefix("Bearer ") {
        return Ok(key.trim().to_owned());
    }
    if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Invalid Authorization header: malformed Basic credentials.")
            })?;
        return Ok(decoded.split(':').next().unwrap_or("").to_owned());
    }
    Err(ApiError::unauthorized(
        "Invalid Authorization header. Use Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
    ))
}

/// The account of the request's key, with its index (for per-account rate limiting).
pub fn authenticate(
    app: &App,
    headers: &HeaderMap,
) -> Result<(usize, Arc<Mutex<Account>>), ApiError> {
    let key = key_from(headers)?;
    if key.is_empty() {
        return Err(ApiError::unauthorized("You did not provide an API key."));
    }
    if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        return Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}. The Flint sandbox accepts only test keys.",
            redact(&key)
        )));
    }
    app.accounts
        .get(&digest(&key))
        .map(|(i, a)| (*i, Arc::clone(a)))
        .ok_or_else(|| {
            ApiError::unauthorized(format!("Invalid API Key provided: {}", redact(&key)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_the_mode_and_last_four() {
        assert_eq!(redact("sk_test_abcdefgh1234"), "sk_test_****1234");
        assert_eq!(redact("sk_live_zzzz9876"), "sk_live_****9876");
        assert_eq!(redact("nonsense"), "nonsense_****ense");
    }
}
