//! The command line (clap). Help texts are written for someone who has never seen Flint.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Flint Off-Session: charge customers' saved payment methods later, exactly once.
///
/// Configuration is read from ./config/base.toml, then ./config/$FLINT_ENV.toml, then the file
/// given with --config, then FLINT__SECTION__KEY environment variables (for example
/// FLINT__REDIS__URL). FLINT_CONFIG_DIR points at another config directory.
#[derive(Debug, Parser)]
#[command(name = "flint", version, propagate_version = true)]
pub struct Cli {
    /// An extra TOML config file, applied after config/base.toml and config/$FLINT_ENV.toml and
    /// before FLINT__… environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local Stripe sandbox: a faithful in-memory imitation of the Stripe API subset
    /// Flint uses (customers, payment methods, PaymentIntents, test cards, idempotency), plus
    /// fault injection under /__sandbox. Point any Stripe client's API base at it and use the
    /// test key from [sandbox] api_keys (default sk_test_flint).
    Sandbox(SandboxArgs),

    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Measure performance. Each benchmark prints its figures next to a baseline measured in
    /// the same run, because absolute numbers on a shared machine mean little.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on, for example 127.0.0.1:12111 (port 0 picks a free port).
    /// Overrides [sandbox] listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then print the effective values as TOML with
    /// every secret replaced by "[redacted]". Exits non-zero, naming the bad key, when the
    /// configuration is invalid.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Throughput of the sandbox: PaymentIntents created and confirmed per second at a given
    /// concurrency, against the same server's health endpoint as the baseline.
    Sandbox(BenchSandboxArgs),
}

#[derive(Debug, clap::Args)]
pub struct BenchSandboxArgs {
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to run each scenario.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Benchmark a running sandbox at this base URL instead of starting one in-process.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    pub json: bool,
}
