//! Telling callers how their payments ended: the endpoints tenants register, the jobs that
//! deliver events to them, and the signatures receivers check (Standard Webhooks).
//!
//! - [`endpoint`]: an endpoint, its secrets, and what the API accepts for one;
//! - [`job`]: the webhook queue's jobs (dispatch an event, deliver it to one endpoint);
//! - [`sign`]: signing a delivery, and [`sign::verify`] for receivers written in Rust.

pub mod endpoint;
pub mod job;
pub mod sign;
