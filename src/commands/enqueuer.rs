//! `flint enqueuer`: the HTTP API.

use anyhow::{Context, bail};
use flint_enqueuer::Application;
use flint_shared::config::Config;
use flint_shared::payment::store::StoreError;
use flint_shared::redis_settings::{CheckError, check_at_start};

use crate::cli::EnqueuerArgs;

pub async fn run(mut config: Config, args: &EnqueuerArgs) -> anyhow::Result<()> {
    flint_shared::telemetry::init(&config.log);
    if let Some(listen) = args.listen {
        config.enqueuer.listen = listen;
    }
    if config.tenants.is_empty() {
        bail!("no [[tenants]] configured: nobody could call the API (see config/base.toml)");
    }
    match check_at_start(&config.redis.target(), config.redis.allow_eviction).await {
        Ok(()) => {}
        Err(CheckError::Unsafe(reason)) => bail!("refusing to start: {reason}"),
        // The API starts while Redis is down (and answers 503); /readyz checks the settings
        // once Redis answers, so no traffic is routed to an unsafe Redis.
        Err(e @ CheckError::Unreachable(_)) => {
            tracing::warn!(error = %e, "Redis's settings could not be checked at start; /readyz checks them");
        }
    }
    // A payment written under another partition count would be where no worker looks; the
    // store refuses every command on a mismatch, and the enqueuer refuses to start on one.
    match flint_worker::store(&config)?.verify_partitions().await {
        Ok(()) => {}
        Err(e @ StoreError::PartitionsChanged { .. }) => bail!("refusing to start: {e}"),
        Err(e) => {
            tracing::warn!(error = %e, "the partition count could not be checked at start; every request checks it first");
        }
    }
    let listen = config.enqueuer.listen;
    let app = Application::build(&config)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("flint enqueuer listening on http://{}", app.local_addr());
    app.run(super::shutdown_signal()).await?;
    Ok(())
}
