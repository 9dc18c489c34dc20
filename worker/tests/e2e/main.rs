//! Payments end to end: the enqueuer API → Redis → a charge worker → the sandbox, all real.

mod cards;
mod harness;
mod network;
mod paths;
mod pipelines;
mod scenarios;
