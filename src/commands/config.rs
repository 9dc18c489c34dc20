//! `flint config check` and `flint config partitions`.

use std::io::Write;

use flint_queue::keys::Keys;
use flint_shared::partition::{Partitions, key_slot};

use crate::cli::Cli;

pub fn check(cli: &Cli) -> anyhow::Result<()> {
    let config = super::load_config(cli)?;
    print!("{}", config.to_redacted_toml());
    eprintln!("configuration OK");
    Ok(())
}

/// Each partition's tag, slot and streams, from the configuration alone.
pub fn partitions(cli: &Cli, json: bool) -> anyhow::Result<()> {
    let config = super::load_config(cli)?;
    let partitions = Partitions::new(&config.queue.name, config.queue.partitions);
    let rows: Vec<serde_json::Value> = partitions
        .tags()
        .iter()
        .enumerate()
        .map(|(p, tag)| {
            serde_json::json!({
                "partition": p,
                "tag": tag,
                "slot": key_slot(&format!("{{{tag}}}")),
                "charge_stream": Keys::of_partition(tag, &config.queue.name).stream,
                "webhook_stream": Keys::in_slot(tag, &config.webhooks.queue).stream,
            })
        })
        .collect();
    // Written through a handle, so that a closed pipe (`| head`) is an error, not a panic.
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        writeln!(
            out,
            "partition  slot   tag           charge stream / webhook stream"
        )?;
        for row in &rows {
            writeln!(
                out,
                "{:<9}  {:<5}  {:<12}  {}  {}",
                row["partition"].to_string(),
                row["slot"].to_string(),
                row["tag"].as_str().unwrap_or_default(),
                row["charge_stream"].as_str().unwrap_or_default(),
                row["webhook_stream"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
