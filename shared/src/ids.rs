//! Prefixed, unguessable identifiers.
//!
//! Ids are what tenants hold on to and put in URLs, so they must not be enumerable: each carries
//! 24 base62 characters from a cryptographically secure generator (about 143 bits), after a
//! type prefix that makes a misplaced id obvious in logs (`osp_` for a payment, `evt_` for an
//! event), as Stripe's ids do. A payment's `created` event has its payment's 24 characters
//! ([`EventId::created_of`]): as unguessable, but not independent of the payment's id.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the random part of every id Flint mints.
pub const RANDOM_LEN: usize = 24;

/// `len` base62 characters from the thread-local CSPRNG (ChaCha-based `ThreadRng`).
pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected_prefix}`")]
    WrongPrefix { expected_prefix: &'static str },
    #[error("the id must have {RANDOM_LEN} base62 characters after its prefix")]
    Malformed,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, unguessable id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_token(RANDOM_LEN)))
            }

            /// Checks prefix, length and alphabet; nothing else about the id is trusted.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let rest = s
                    .strip_prefix($prefix)
                    .ok_or(IdError::WrongPrefix { expected_prefix: $prefix })?;
                if rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Malformed)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// An off-session payment (`osp_…`).
    PaymentId,
    "osp_"
);
prefixed_id!(
    /// A lifecycle event of a payment (`evt_…`).
    EventId,
    "evt_"
);
impl EventId {
    /// The id of payment `payment`'s `created` event: the payment's random part after this
    /// prefix. The store keeps an unchanged payment's `created` event nowhere but in the
    /// payment, and finds it through the payment its id names ([`EventId::named_payment`]).
    pub fn created_of(payment: &PaymentId) -> EventId {
        EventId(format!(
            "{}{}",
            Self::PREFIX,
            &payment.as_str()[PaymentId::PREFIX.len()..]
        ))
    }

    /// The payment whose `created` event this would be, were it one (only a `created` event's
    /// id names its own payment; any other names a payment that does not hold it).
    pub fn named_payment(&self) -> PaymentId {
        PaymentId(format!(
            "{}{}",
            PaymentId::PREFIX,
            &self.0[Self::PREFIX.len()..]
        ))
    }
}

prefixed_id!(
    /// A tenant's webhook endpoint (`we_…`).
    WebhookEndpointId,
    "we_"
);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = PaymentId::generate();
        assert!(id.as_str().starts_with("osp_"));
        assert_eq!(id.as_str().len(), 4 + RANDOM_LEN);
        assert_eq!(PaymentId::parse(id.as_str()).unwrap(), id);
        assert!(EventId::generate().as_str().starts_with("evt_"));
    }

    #[test]
    fn a_created_event_id_names_its_payment_and_parses() {
        let payment = PaymentId::generate();
        let created = EventId::created_of(&payment);
        assert_eq!(EventId::parse(created.as_str()).unwrap(), created);
        assert_eq!(created.named_payment(), payment);
        assert_eq!(&created.as_str()[4..], &payment.as_str()[4..]);
        let other = EventId::generate();
        assert_eq!(
            PaymentId::parse(other.named_payment().as_str()).unwrap(),
            other.named_payment()
        );
    }

    #[test]
    fn generated_ids_do_not_repeat() {
        let ids: HashSet<_> = (0..10_000).map(|_| PaymentId::generate()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn ids_of_another_kind_or_shape_are_rejected() {
        let evt = EventId::generate();
        assert_eq!(
            PaymentId::parse(evt.as_str()),
            Err(IdError::WrongPrefix {
                expected_prefix: "osp_"
            })
        );
        assert_eq!(PaymentId::parse("osp_short"), Err(IdError::Malformed));
        assert_eq!(
            PaymentId::parse("osp_../../../../etc/passwd/xxxxxx"),
            Err(IdError::Malformed)
        );
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        let ok: PaymentId =
            serde_json::from_str(&format!("\"{}\"", PaymentId::generate())).unwrap();
        assert!(ok.as_str().starts_with("osp_"));
        assert!(serde_json::from_str::<PaymentId>("\"evt_x\"").is_err());
    }
}
