//! `flint config check`.

use crate::cli::Cli;

pub fn check(cli: &Cli) -> anyhow::Result<()> {
    let config = super::load_config(cli)?;
    print!("{}", config.to_redacted_toml());
    eprintln!("configuration OK");
    Ok(())
}
