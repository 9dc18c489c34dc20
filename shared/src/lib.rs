//! `flint-shared`: what every Flint process agrees on.
//!
//! - [`ids`]: prefixed, unguessable identifiers (`osp_…`, `evt_…`).
//! - [`money`]: integer minor-unit amounts with ISO 4217 currency rules and Stripe's limits.
//! - [`metadata`]: key/value metadata with Stripe's limits.
//! - [`payment`]: the off-session payment: request validation, stored record, states, events.
//! - [`processor`]: the processor trait, the Stripe client and its error mapping.
//! - [`config`]: the layered configuration (defaults → files → environment) and its secrets.
//! - [`telemetry`]: log setup shared by every binary.
//! - [`webhook`]: webhook endpoints, delivery jobs, and Standard Webhooks signatures.
//!
//! Invalid values are typed errors that name the offending field, so the HTTP edge can answer a
//! precise 400 and the CLI a precise message without re-deriving what went wrong.

pub(crate) mod codes;
pub mod config;
pub mod ids;
pub mod metadata;
pub mod money;
pub mod partition;
pub mod payment;
pub mod processor;
pub mod redis_settings;
pub mod redis_target;
pub mod telemetry;
pub mod time;
pub mod webhook;
