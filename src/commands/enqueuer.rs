//! `flint enqueuer`: the HTTP API.

use anyhow::{Context, bail};
use flint_enqueuer::Application;
use flint_shared::config::Config;

use crate::cli::EnqueuerArgs;

pub async fn run(mut config: Config, args: &EnqueuerArgs) -> anyhow::Result<()> {
    flint_shared::telemetry::init(&config.log);
    if let Some(listen) = args.listen {
        config.enqueuer.listen = listen;
    }
    if config.tenants.is_empty() {
        bail!("no [[tenants]] configured: nobody could call the API (see config/base.toml)");
    }
    let listen = config.enqueuer.listen;
    let app = Application::build(&config)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("flint enqueuer listening on http://{}", app.local_addr());
    app.run(super::shutdown_signal()).await?;
    Ok(())
}
