//! One module per subcommand.

mod bench_api;
mod bench_cost;
mod bench_e2e;
mod bench_import;
mod bench_queue;
mod bench_sandbox;
mod config;
mod dev;
mod enqueuer;
mod local_redis;
mod queue_worker;
mod redis_child;
mod sandbox;
mod worker;

use anyhow::Context;
use flint_shared::config::{Config, Sources};

use crate::cli::{BenchCommand, Cli, Command, ConfigCommand};

/// Loads the layered configuration for this invocation.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Config::load(&Sources::from_process(cli.config.clone())).context("cannot start")
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Dev(args) => dev::run(load_config(&cli)?, args).await,
        Command::Sandbox(args) => sandbox::run(load_config(&cli)?, args).await,
        Command::Enqueuer(args) => enqueuer::run(load_config(&cli)?, args).await,
        Command::Worker(args) => worker::run(load_config(&cli)?, args).await,
        Command::Payments(args) => Ok(crate::client::payments(&args.api, &args.command).await?),
        Command::Events(args) => Ok(crate::client::events(&args.api, &args.command).await?),
        Command::Webhooks(args) => Ok(crate::client::webhooks(&args.api, &args.command).await?),
        Command::Import(args) => Ok(crate::client::import(args).await?),
        Command::Dead(args) => {
            let config =
                load_config(&cli).map_err(|e| crate::client::Failure::usage(format!("{e:#}")))?;
            Ok(crate::client::dead(&config, args.json, &args.command).await?)
        }
        Command::Config(ConfigCommand::Check) => config::check(&cli),
        Command::Config(ConfigCommand::Partitions { json }) => config::partitions(&cli, *json),
        Command::Bench(BenchCommand::Sandbox(args)) => {
            bench_sandbox::run(load_config(&cli)?, args).await
        }
        Command::Bench(BenchCommand::Queue(args)) => bench_queue::run(args).await,
        Command::Bench(BenchCommand::Api(args)) => bench_api::run(args).await,
        Command::Bench(BenchCommand::E2e(args)) => bench_e2e::run(args).await,
        Command::Bench(BenchCommand::Import(args)) => bench_import::run(args).await,
        Command::Bench(BenchCommand::Cost(args)) => bench_cost::run(args).await,
        Command::Bench(BenchCommand::QueueWorker(args)) => queue_worker::run(args).await,
    }
}

/// Completes on SIGINT or SIGTERM, so that every long-running command stops the same way.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
