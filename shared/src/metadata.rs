//! Caller metadata with Stripe's limits: at most 50 keys, keys up to 40 characters, values up
//! to 500 characters. Flint forwards metadata to the processor, so it must never hold more than
//! the processor accepts, and it must be refused at the edge rather than at charge time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MAX_KEYS: usize = 50;
pub const MAX_KEY_CHARS: usize = 40;
pub const MAX_VALUE_CHARS: usize = 500;

/// Why metadata is refused. [`MetadataError::param`] names the offending field the way Stripe
/// does (`metadata` or `metadata[key]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata can have at most {MAX_KEYS} keys, got {0}")]
    TooManyKeys(usize),
    #[error("metadata keys must not be empty")]
    EmptyKey,
    #[error("metadata key `{0}` is longer than {MAX_KEY_CHARS} characters")]
    KeyTooLong(String),
    #[error("metadata key `{0}` must not contain `[` or `]`")]
    KeyHasBrackets(String),
    #[error("metadata value for `{0}` is longer than {MAX_VALUE_CHARS} characters")]
    ValueTooLong(String),
}

impl MetadataError {
    pub fn param(&self) -> String {
        match self {
            MetadataError::TooManyKeys(_) | MetadataError::EmptyKey => "metadata".to_owned(),
            MetadataError::KeyTooLong(k)
            | MetadataError::KeyHasBrackets(k)
            | MetadataError::ValueTooLong(k) => format!("metadata[{k}]"),
        }
    }
}

/// Validated metadata, ordered by key so that its serialization is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, MetadataError> {
        if entries.len() > MAX_KEYS {
            return Err(MetadataError::TooManyKeys(entries.len()));
        }
        for (key, value) in &entries {
            if key.is_empty() {
                return Err(MetadataError::EmptyKey);
            }
            if key.chars().count() > MAX_KEY_CHARS {
                return Err(MetadataError::KeyTooLong(key.clone()));
            }
            if key.contains(['[', ']']) {
                return Err(MetadataError::KeyHasBrackets(key.clone()));
            }
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(MetadataError::ValueTooLong(key.clone()));
            }
        }
        Ok(Metadata(entries))
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = MetadataError;
    fn try_from(entries: BTreeMap<String, String>) -> Result<Self, MetadataError> {
        Metadata::new(entries)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(m: Metadata) -> Self {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Result<Metadata, MetadataError> {
        Metadata::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn metadata_within_limits_is_accepted() {
        let k40 = "k".repeat(40);
        let v500 = "v".repeat(500);
        assert!(meta(&[("order", "1234"), (&k40, &v500)]).is_ok());
        let fifty: BTreeMap<_, _> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(Metadata::new(fifty).is_ok());
    }

    #[test]
    fn each_limit_names_the_offending_field() {
        let fifty_one: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        let err = Metadata::new(fifty_one).unwrap_err();
        assert_eq!(err, MetadataError::TooManyKeys(51));
        assert_eq!(err.param(), "metadata");

        let k41 = "k".repeat(41);
        let err = meta(&[(&k41, "v")]).unwrap_err();
        assert_eq!(err.param(), format!("metadata[{k41}]"));

        let err = meta(&[("note", &"v".repeat(501))]).unwrap_err();
        assert_eq!(err, MetadataError::ValueTooLong("note".into()));
        assert_eq!(err.param(), "metadata[note]");

        assert_eq!(meta(&[("", "v")]).unwrap_err(), MetadataError::EmptyKey);
        assert!(matches!(
            meta(&[("a[b]", "v")]).unwrap_err(),
            MetadataError::KeyHasBrackets(_)
        ));
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(meta(&[("k", &"é".repeat(500))]).is_ok());
        assert!(meta(&[("k", &"é".repeat(501))]).is_err());
    }
}
