//! After a hard decline, when the payment allows it: the customer's next saved card to try.

use flint_shared::payment::Payment;
use flint_shared::payment::record::MAX_CARD_SWITCHES;
use flint_shared::processor::{CardInfo, Processor};

use super::Pipeline;

impl<P: Processor> Pipeline<P> {
    /// A card saved on the customer, newest first, that this payment has not tried and whose
    /// card (fingerprint) it has not tried either: a second copy of a lost card is the same lost
    /// card. None when there is none, when the payment switched cards too often already, or
    /// when the processor cannot list them now (the payment then fails as it would without
    /// fallback).
    pub(super) async fn other_card(
        &self,
        processor: &P,
        tenant: &str,
        payment: &Payment,
        tried: &str,
        card: Option<&CardInfo>,
    ) -> Option<String> {
        if payment.card_switches() >= MAX_CARD_SWITCHES {
            tracing::info!(payment_id = %payment.id, "no fallback: the payment switched cards {MAX_CARD_SWITCHES} times already");
            return None;
        }
        let saved = match processor.saved_cards(&payment.customer).await {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(payment_id = %payment.id, error = %e, "cannot list the customer's saved cards; no fallback");
                return None;
            }
        };
        let mut tried_ids: Vec<&str> = payment
            .attempts
            .iter()
            .filter_map(|a| a.payment_method.as_deref())
            .collect();
        tried_ids.push(tried);
        let mut tried_prints: Vec<String> = tried_ids
            .iter()
            .filter_map(|id| self.cards.get(&(tenant.to_owned(), (*id).to_owned())))
            .map(|c| c.fingerprint)
            .collect();
        tried_prints.extend(card.map(|c| c.fingerprint.clone()));
        for s in &saved {
            self.cards
                .insert((tenant.to_owned(), s.id.clone()), s.card.clone());
        }
        saved
            .into_iter()
            .find(|s| {
                !tried_ids.contains(&s.id.as_str()) && !tried_prints.contains(&s.card.fingerprint)
            })
            .map(|s| s.id)
    }
}
