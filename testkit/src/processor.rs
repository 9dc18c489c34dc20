//! A scripted [`Processor`]: each operation answers what the test queued for it, in order, and
//! may stop at a [`Gate`] first, so a test can hold one worker inside a processor call while
//! another one runs, and release it at the exact moment the interleaving needs. Every call is
//! recorded with its idempotency key.
//!
//! An operation with nothing queued answers a default when one makes sense (a card's details:
//! a Visa whose fingerprint is the payment method's id; no saved cards; no intent found) and
//! otherwise fails the test with the call it did not expect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flint_shared::processor::{
    CardBrand, CardInfo, Intent, IntentRequest, Processor, ProcessorError, SavedCard,
};
use flint_shared::time::Timestamp;
use tokio::sync::{Notify, Semaphore};

/// A point a scripted call stops at: the test learns it was reached and decides when it
/// goes on.
#[derive(Debug)]
pub struct Gate {
    reached: Notify,
    release: Semaphore,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            reached: Notify::new(),
            release: Semaphore::new(0),
        })
    }

    /// Waits until a call has reached the gate (at once if one already has); fails the test
    /// after 30 s, naming what it waited for, rather than hanging.
    pub async fn reached(&self) {
        if tokio::time::timeout(Duration::from_secs(30), self.reached.notified())
            .await
            .is_err()
        {
            panic!("no call reached the gate within 30 s");
        }
    }

    /// Lets one waiting (or future) call through.
    pub fn release(&self) {
        self.release.add_permits(1);
    }

    async fn pass(&self) {
        self.reached.notify_one();
        let permit = self.release.acquire().await.expect("gate open");
        permit.forget();
    }
}

/// A call the processor received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    /// The customer, payment method or intent the call was about.
    pub subject: String,
    pub idempotency_key: Option<String>,
    /// Whether a charging request was actually sent: one that reaches its gate after its
    /// `send_until` is refused by the client, as the real one refuses, and has no effect.
    pub sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    DefaultPaymentMethod,
    CreateIntent,
    ConfirmIntent,
    SavedCards,
    Card,
    RetrieveIntent,
    FindIntent,
}

struct Step<T> {
    answer: T,
    gate: Option<Arc<Gate>>,
}

type Queue<T> = VecDeque<Step<Result<T, ProcessorError>>>;

#[derive(Default)]
struct Script {
    default_payment_method: Queue<Option<String>>,
    create_intent: Queue<Intent>,
    confirm_intent: Queue<Intent>,
    saved_cards: Queue<Vec<SavedCard>>,
    card: Queue<CardInfo>,
    retrieve_intent: Queue<Intent>,
    find_intent: Queue<Option<Intent>>,
}

/// A processor whose answers a test scripts.
#[derive(Default, Clone)]
pub struct ScriptedProcessor {
    script: Arc<Mutex<Script>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// The brand of a card whose details were not scripted (Visa unless set).
    brand: Option<CardBrand>,
}

impl std::fmt::Debug for ScriptedProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedProcessor")
            .field("calls", &self.calls())
            .finish()
    }
}

macro_rules! scripted {
    ($answer:ident, $answer_at:ident, $field:ident, $t:ty) => {
        #[doc = concat!("Queues the next answer of `", stringify!($field), "`.")]
        pub fn $answer(&self, answer: Result<$t, ProcessorError>) -> &Self {
            self.script.lock().unwrap().$field.push_back(Step { answer, gate: None });
            self
        }

        #[doc = concat!("Queues the next answer of `", stringify!($field), "`, given only once `gate` is released.")]
        pub fn $answer_at(&self, gate: &Arc<Gate>, answer: Result<$t, ProcessorError>) -> &Self {
            self.script.lock().unwrap().$field.push_back(Step {
                answer,
                gate: Some(Arc::clone(gate)),
            });
            self
        }
    };
}

impl ScriptedProcessor {
    pub fn new() -> ScriptedProcessor {
        ScriptedProcessor::default()
    }

    /// Cards whose details are not scripted are of this brand.
    pub fn with_card_brand(mut self, brand: CardBrand) -> ScriptedProcessor {
        self.brand = Some(brand);
        self
    }

    scripted!(
        default_payment_method,
        default_payment_method_at,
        default_payment_method,
        Option<String>
    );
    scripted!(create_intent, create_intent_at, create_intent, Intent);
    scripted!(confirm_intent, confirm_intent_at, confirm_intent, Intent);
    scripted!(saved_cards, saved_cards_at, saved_cards, Vec<SavedCard>);
    scripted!(card, card_at, card, CardInfo);
    scripted!(retrieve_intent, retrieve_intent_at, retrieve_intent, Intent);
    scripted!(find_intent, find_intent_at, find_intent, Option<Intent>);

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls of one operation.
    pub fn calls_of(&self, op: Op) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op == op).collect()
    }

    fn record(&self, op: Op, subject: &str, key: Option<&str>) -> usize {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Call {
            op,
            subject: subject.to_owned(),
            idempotency_key: key.map(str::to_owned),
            sent: true,
        });
        calls.len() - 1
    }

    /// A charging request: answered as scripted, unless its gate opened after `send_until`,
    /// when, like the real client, it is not sent at all.
    async fn charge<T>(
        &self,
        call: usize,
        take: impl FnOnce(&mut Script) -> Option<Step<Result<T, ProcessorError>>>,
        what: String,
        send_until: Timestamp,
    ) -> Result<T, ProcessorError> {
        let step = take(&mut self.script.lock().unwrap());
        let Some(step) = step else {
            return unexpected(what);
        };
        if let Some(gate) = step.gate {
            gate.pass().await;
        }
        if Timestamp::now() >= send_until {
            self.calls.lock().unwrap()[call].sent = false;
            return Err(ProcessorError::Transient {
                reason: "the attempt's time to send ran out".into(),
                outcome_unknown: false,
                request_id: None,
            });
        }
        step.answer
    }

    async fn answer<T>(
        &self,
        take: impl FnOnce(&mut Script) -> Option<Step<Result<T, ProcessorError>>>,
        otherwise: impl FnOnce() -> Result<T, ProcessorError>,
    ) -> Result<T, ProcessorError> {
        let step = take(&mut self.script.lock().unwrap());
        match step {
            Some(step) => {
                if let Some(gate) = step.gate {
                    gate.pass().await;
                }
                step.answer
            }
            None => otherwise(),
        }
    }
}

fn unexpected<T>(what: String) -> Result<T, ProcessorError> {
    panic!("the scripted processor was not told how to answer {what}")
}

impl Processor for ScriptedProcessor {
    async fn default_payment_method(
        &self,
        customer: &str,
    ) -> Result<Option<String>, ProcessorError> {
        let _ = self.record(Op::DefaultPaymentMethod, customer, None);
        self.answer(
            |s| s.default_payment_method.pop_front(),
            || unexpected(format!("default_payment_method({customer})")),
        )
        .await
    }

    async fn create_intent(
        &self,
        request: &IntentRequest,
        idempotency_key: &str,
        send_until: Timestamp,
    ) -> Result<Intent, ProcessorError> {
        let call = self.record(Op::CreateIntent, &request.customer, Some(idempotency_key));
        self.charge(
            call,
            |s| s.create_intent.pop_front(),
            format!("create_intent({idempotency_key})"),
            send_until,
        )
        .await
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        _payment_method: &str,
        idempotency_key: &str,
        send_until: Timestamp,
    ) -> Result<Intent, ProcessorError> {
        let call = self.record(Op::ConfirmIntent, intent_id, Some(idempotency_key));
        self.charge(
            call,
            |s| s.confirm_intent.pop_front(),
            format!("confirm_intent({intent_id}, {idempotency_key})"),
            send_until,
        )
        .await
    }

    async fn saved_cards(&self, customer: &str) -> Result<Vec<SavedCard>, ProcessorError> {
        let _ = self.record(Op::SavedCards, customer, None);
        self.answer(|s| s.saved_cards.pop_front(), || Ok(Vec::new()))
            .await
    }

    async fn card(&self, payment_method: &str) -> Result<CardInfo, ProcessorError> {
        let _ = self.record(Op::Card, payment_method, None);
        let pm = payment_method.to_owned();
        let brand = self.brand.clone().unwrap_or(CardBrand::Visa);
        self.answer(
            |s| s.card.pop_front(),
            || {
                Ok(CardInfo {
                    brand,
                    fingerprint: pm,
                })
            },
        )
        .await
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, ProcessorError> {
        let _ = self.record(Op::RetrieveIntent, intent_id, None);
        self.answer(
            |s| s.retrieve_intent.pop_front(),
            || unexpected(format!("retrieve_intent({intent_id})")),
        )
        .await
    }

    async fn find_intent(
        &self,
        customer: &str,
        payment_id: &str,
        _created_since: Timestamp,
    ) -> Result<Option<Intent>, ProcessorError> {
        let _ = self.record(Op::FindIntent, payment_id, None);
        let _ = customer;
        self.answer(|s| s.find_intent.pop_front(), || Ok(None))
            .await
    }
}
