//! `flint sandbox`: the Stripe sandbox as a standalone server.

use anyhow::Context;
use flint_sandbox::Sandbox;
use flint_shared::config::Config;

use crate::cli::SandboxArgs;

pub async fn run(mut config: Config, args: &SandboxArgs) -> anyhow::Result<()> {
    flint_shared::telemetry::init(&config.log);
    if let Some(listen) = args.listen {
        config.sandbox.listen = listen;
    }
    let listen = config.sandbox.listen;
    let sandbox = Sandbox::bind(config.sandbox)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // One line on stdout that scripts (and `flint dev`) can read; the rest goes to the log.
    println!("flint sandbox listening on {}", sandbox.base_url());
    sandbox.run(super::shutdown_signal()).await;
    Ok(())
}
