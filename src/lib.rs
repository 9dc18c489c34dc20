//! The `flint` command: one binary with a subcommand per role.
//!
//! `main.rs` only parses arguments and calls [`run`]; every subcommand lives in
//! [`commands`], and the long-running ones call the same library entry points (`build`,
//! `bind`, `run`) that the tests use.

pub mod cli;
pub mod commands;

pub use cli::Cli;

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    commands::dispatch(cli).await
}
