//! The `flint` command: one binary with a subcommand per role.
//!
//! `main.rs` only parses arguments and calls [`run`]; every subcommand lives in
//! [`commands`], and the long-running ones call the same library entry points (`build`,
//! `bind`, `run`) that the tests use. [`client`] is `flint` as a client of the API.

pub mod cli;
pub mod client;
pub mod commands;

pub use cli::Cli;

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    commands::dispatch(cli).await
}

/// The process exit code for a failure: a client command's documented code, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<client::Failure>()
        .map_or(1, |f| f.exit as u8)
}
