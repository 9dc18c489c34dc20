//! The metadata Flint puts on a payment's PaymentIntent, beside the caller's: Flint's payment
//! id (how a lost answer is reconciled: the intent is found by it), why and by whom the charge
//! was made (the audit trail on the processor's side) and the caller's order context.
//!
//! Stripe allows 50 keys. The caller's keys are checked against what Flint adds when the
//! payment is created ([`reserved_key`], [`flint_metadata`]), never at charge time.

use std::collections::BTreeMap;

use crate::payment::Purpose;
use crate::payment::request::{Context, InitiatedBy};

/// Flint's own keys all start with this; callers may not use it.
pub const FLINT_PREFIX: &str = "flint_";
/// The key the payment id is written under (reconciliation lists intents by it).
pub const PAYMENT_ID_KEY: &str = "flint_payment_id";
/// The caller's context, under the names a dashboard reader expects.
pub const CONTEXT_KEYS: [&str; 3] = ["order_id", "subscription_id", "invoice_id"];
/// Stripe's limit on a value, in characters.
const MAX_VALUE_CHARS: usize = 500;

/// Whether a caller's metadata key is one Flint sets itself (refused at create).
pub fn reserved_key(key: &str) -> bool {
    key.starts_with(FLINT_PREFIX) || CONTEXT_KEYS.contains(&key)
}

/// The keys Flint adds for a payment: its id, purpose, who initiated it (and an operator's
/// reason), and the context ids it has.
pub fn flint_metadata(
    payment_id: &str,
    purpose: Purpose,
    initiated_by: &InitiatedBy,
    context: &Context,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(PAYMENT_ID_KEY.to_owned(), payment_id.to_owned());
    m.insert("flint_purpose".to_owned(), purpose.as_str().to_owned());
    let (actor, reason) = match initiated_by {
        InitiatedBy::Service { id } => (format!("service:{id}"), None),
        InitiatedBy::Operator { id, reason } => (format!("operator:{id}"), reason.as_ref()),
    };
    m.insert("flint_initiated_by".to_owned(), truncated(&actor));
    if let Some(reason) = reason {
        m.insert("flint_reason".to_owned(), truncated(reason));
    }
    for (key, value) in CONTEXT_KEYS.iter().zip([
        &context.order_id,
        &context.subscription_id,
        &context.invoice_id,
    ]) {
        if let Some(v) = value {
            m.insert((*key).to_owned(), v.clone());
        }
    }
    m
}

/// The caller's metadata with Flint's added (Flint's win; a collision is refused at create).
pub fn intent_metadata(
    flint: BTreeMap<String, String>,
    caller: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut m = caller.clone();
    m.extend(flint);
    m
}

/// At most Stripe's value length, cut on a character boundary.
fn truncated(text: &str) -> String {
    text.chars().take(MAX_VALUE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flint_adds_its_id_the_audit_trail_and_the_context() {
        let m = flint_metadata(
            "osp_1",
            Purpose::Support,
            &InitiatedBy::Operator {
                id: "alice".into(),
                reason: Some("é".repeat(600)),
            },
            &Context {
                order_id: Some("o_1".into()),
                subscription_id: None,
                invoice_id: Some("in_1".into()),
            },
        );
        assert_eq!(m["flint_payment_id"], "osp_1");
        assert_eq!(m["flint_purpose"], "support");
        assert_eq!(m["flint_initiated_by"], "operator:alice");
        assert_eq!(m["flint_reason"].chars().count(), 500);
        assert_eq!(m["order_id"], "o_1");
        assert_eq!(m["invoice_id"], "in_1");
        assert!(!m.contains_key("subscription_id"));
        assert!(m.keys().all(|k| reserved_key(k)));
        assert!(!reserved_key("plan"));
    }
}
