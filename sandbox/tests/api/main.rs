//! The sandbox over HTTP, checked against Stripe's documented behaviour
//! (as Stripe documents it). One test binary, one module per concern.

mod auth;
mod customers;
mod faults;
mod garbage;
mod idempotency;
mod payment_intents;
mod payment_methods;
mod validation;
mod webhooks;
