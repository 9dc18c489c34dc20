//! Which card an attempt charges: the attempt's recorded one, else the payment's, else the
//! customer's default, with its brand and fingerprint (cached per payment method).
//!
//! A new attempt at a payment without a card of its own finds the card before it starts
//! ([`Pipeline::prepare`]), so that the start records the card and its send window in the same
//! write: one write fewer before the charge. When no usable card is found, the attempt ends as
//! the lookup says without another one.

use flint_shared::payment::Payment;
use flint_shared::processor::{CardInfo, Processor, ProcessorError};

use super::Pipeline;
use super::ending::Ending;

/// A new attempt's card, as found before the attempt starts.
#[derive(Debug)]
pub(super) enum Prepared {
    /// The customer's default card; its details are looked up (and cached).
    Card(String),
    /// No card the attempt can use: how the attempt ends, and the card when one was found but
    /// could not be looked up.
    Ended(Box<Ending>, Option<String>),
}

/// The ending of an attempt whose payment has no card and whose customer has no default.
pub(super) fn no_default_method() -> Ending {
    Ending::NeedsCustomer("the customer has no default payment method".into(), None)
}

impl<P: Processor> Pipeline<P> {
    /// Finds the customer's default card for a new attempt at `p` (which has none of its own).
    pub(super) async fn prepare(&self, processor: &P, tenant: &str, p: &Payment) -> Prepared {
        let method = match processor.default_payment_method(&p.customer).await {
            Ok(Some(pm)) => pm,
            Ok(None) => return Prepared::Ended(Box::new(no_default_method()), None),
            Err(e) => return Prepared::Ended(Box::new(Ending::of_error(e)), None),
        };
        match self.card_of(processor, tenant, &method).await {
            Ok(_) => Prepared::Card(method),
            Err(e) => Prepared::Ended(Box::new(Ending::of_error(e)), Some(method)),
        }
    }

    /// The brand and fingerprint of `method`.
    pub(super) async fn card_of(
        &self,
        processor: &P,
        tenant: &str,
        method: &str,
    ) -> Result<CardInfo, ProcessorError> {
        // Concurrent attempts on one uncached method wait for a single lookup.
        self.cards
            .get_or_insert_async(
                &(tenant.to_owned(), method.to_owned()),
                processor.card(method),
            )
            .await
    }
}
