//! The enqueuer over HTTP against a real redis-server: one test binary, `spawn_app()` per test.

mod helpers;

mod auth;
mod create;
mod errors;
mod events;
mod lifecycle;
mod list;
mod operations;
mod replicas;
mod scenarios;
mod webhooks;
