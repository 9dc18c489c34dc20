//! `flint` as a client of the API, for support, ops and finance: payments, events, webhook
//! endpoints and bulk imports over HTTP (`--api-url`, `--api-key`), and the dead letters of the
//! queues straight from Redis (like `sidekiqmon`, it reads the configuration).
//!
//! Every command prints a human summary, or the API's JSON with `--json`. Failures are one
//! line naming the problem (the API's `param` when it names one) and a documented exit code
//! ([`Exit`]).

pub mod api;
pub mod args;
mod dead;
mod events;
mod import;
mod payments;
mod show;
mod webhooks;

pub use api::{Api, Exit, Failure};
pub use args::{ApiArgs, DeadCommand, EventsCommand, ImportArgs, PaymentsCommand, WebhooksCommand};

use flint_shared::config::Config;

pub async fn payments(api: &ApiArgs, command: &PaymentsCommand) -> Result<(), Failure> {
    payments::run(&Api::new(api)?, api.json, command).await
}

pub async fn events(api: &ApiArgs, command: &EventsCommand) -> Result<(), Failure> {
    events::run(&Api::new(api)?, api.json, command).await
}

pub async fn webhooks(api: &ApiArgs, command: &WebhooksCommand) -> Result<(), Failure> {
    webhooks::run(&Api::new(api)?, api.json, command).await
}

pub async fn import(args: &ImportArgs) -> Result<(), Failure> {
    import::run(&Api::new(&args.api)?, args).await
}

pub async fn dead(config: &Config, json: bool, command: &DeadCommand) -> Result<(), Failure> {
    dead::run(config, json, command).await
}
