//! Payments end to end: the enqueuer API → Redis → a charge worker → the sandbox, all real.

mod bounded;
mod cards;
mod growth;
mod harness;
mod network;
mod paths;
mod pipelines;
mod receiver;
mod replicas;
mod scenarios;
mod sweeper;
mod webhooks;
