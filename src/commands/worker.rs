//! `flint worker`: a charge worker process.

use anyhow::bail;
use flint_shared::config::Config;
use flint_worker::WorkerApp;

use crate::cli::WorkerArgs;

pub async fn run(mut config: Config, args: &WorkerArgs) -> anyhow::Result<()> {
    flint_shared::telemetry::init(&config.log);
    if let Some(listen) = args.listen {
        config.worker.listen = listen;
    }
    if config.tenants.is_empty() {
        bail!("no [[tenants]] configured: there is no processor account to charge with");
    }
    let app = WorkerApp::build(&config).await?;
    println!(
        "flint worker serving health and metrics on http://{}",
        app.local_addr()
    );
    app.run(super::shutdown_signal()).await
}
