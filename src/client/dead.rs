//! `flint dead …`: the dead letters of the charge and webhook queues, read from Redis with the
//! configuration's `[redis] url` (an operator's command, like `sidekiqmon`).

use flint_queue::{DeadLetter, Queue, QueueConfig, Replayed};
use flint_shared::config::Config;
use flint_shared::partition::Partitions;
use flint_shared::payment::store::Store;
use serde_json::{Value, json};
use std::time::Duration;

use super::api::{Exit, Failure};
use super::args::{DeadCommand, DeadQueue};

/// The queue's partitions (one unless `[queue] partitions` says more), in partition order.
async fn queues(config: &Config, which: DeadQueue) -> Result<Vec<Queue>, Failure> {
    let partitions = Partitions::new(&config.queue.name, config.queue.partitions);
    // Read with another count, the dead letters would be looked for where they are not.
    let store = Store::new(
        config.redis.target(),
        &config.queue.name,
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .with_partitions(config.queue.partitions);
    let recorded = store.recorded_partitions().await.map_err(unreachable)?;
    if let Some(recorded) = recorded
        && usize::from(recorded) != partitions.count()
    {
        return Err(Failure::usage(format!(
            "redis holds payments spread over {recorded} partitions but [queue] partitions = {}: use the configuration the workers run with",
            partitions.count()
        )));
    }
    let name = match which {
        DeadQueue::Charges => &config.queue.name,
        DeadQueue::Webhooks => &config.webhooks.queue,
    };
    let mut queues = Vec::with_capacity(partitions.count());
    for (p, tag) in (0u16..).zip(partitions.tags()) {
        let queue_config = QueueConfig::new(name).in_partition(p, tag.clone());
        queues.push(
            Queue::connect_to(&config.redis.target(), queue_config)
                .await
                .map_err(|e| Failure::new(Exit::Unreachable, format!("cannot reach redis: {e}")))?,
        );
    }
    Ok(queues)
}

/// The partition holding dead letter `id`: `partition` when given, else the one partition
/// whose dead letters have it (ids are stream entry ids, unique within a partition only).
async fn find(
    queues: &[Queue],
    partition: Option<u16>,
    id: &str,
) -> Result<Option<(usize, DeadLetter)>, Failure> {
    let candidates: Vec<usize> = match partition {
        Some(p) if usize::from(p) < queues.len() => vec![usize::from(p)],
        Some(p) => {
            return Err(Failure::usage(format!(
                "--partition {p} does not exist: [queue] partitions = {}, so 0 to {}",
                queues.len(),
                queues.len() - 1
            )));
        }
        None => (0..queues.len()).collect(),
    };
    let mut found = Vec::new();
    for p in candidates {
        if let Some(d) = queues[p].dead_letter(id).await.map_err(unreachable)? {
            found.push((p, d));
        }
    }
    if found.len() > 1 {
        let list: Vec<String> = found.iter().map(|(p, _)| p.to_string()).collect();
        return Err(Failure::usage(format!(
            "dead letter {id} is in partitions {}: say which with --partition",
            list.join(", ")
        )));
    }
    Ok(found.pop())
}

fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Unreachable, format!("redis: {e}"))
}

/// A dead letter's id is its stream entry id: `<ms>-<seq>`.
fn check_id(id: &str) -> Result<(), Failure> {
    let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok();
    let valid = id
        .split_once('-')
        .is_some_and(|(ms, seq)| number(ms) && number(seq));
    if valid {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{id:?} is not a dead letter id (they look like 1764300000000-0; see flint dead list)"
        )))
    }
}

fn as_json(partition: usize, d: &DeadLetter) -> Value {
    let payload: Value = serde_json::from_slice(&d.payload)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&d.payload)));
    json!({
        "id": d.dead_letter_id,
        "partition": partition,
        "job_id": d.job_id,
        "reason": d.reason,
        "dead_at_ms": d.dead_at_ms,
        "job": payload,
    })
}

pub async fn run(config: &Config, json_out: bool, command: &DeadCommand) -> Result<(), Failure> {
    match command {
        DeadCommand::List {
            queue: which,
            limit,
        } => {
            let queues = queues(config, *which).await?;
            // Each partition's newest, merged newest first.
            let mut dead = Vec::new();
            for (p, q) in queues.iter().enumerate() {
                for d in q.dead_letters(*limit).await.map_err(unreachable)? {
                    dead.push((p, d));
                }
            }
            dead.sort_by_key(|(_, d)| std::cmp::Reverse(d.dead_at_ms));
            dead.truncate(*limit);
            let partitioned = queues.len() > 1;
            if json_out {
                let all: Vec<Value> = dead.iter().map(|(p, d)| as_json(*p, d)).collect();
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else if dead.is_empty() {
                println!("no dead letters");
            } else {
                for (p, d) in &dead {
                    let partition = if partitioned {
                        format!("  partition {p}")
                    } else {
                        String::new()
                    };
                    println!(
                        "{}  {}  {}{partition}",
                        d.dead_letter_id, d.job_id, d.reason
                    );
                }
            }
        }
        DeadCommand::Show {
            queue: which,
            partition,
            id,
        } => {
            check_id(id)?;
            let queues = queues(config, *which).await?;
            let (p, d) = find(&queues, *partition, id)
                .await?
                .ok_or_else(|| Failure::new(Exit::Rejected, format!("no dead letter {id}")))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&as_json(p, &d)).unwrap_or_default()
            );
        }
        DeadCommand::Replay {
            queue: which,
            partition,
            id,
        } => {
            check_id(id)?;
            let queues = queues(config, *which).await?;
            let Some((p, _)) = find(&queues, *partition, id).await? else {
                return Err(Failure::new(
                    Exit::Rejected,
                    format!("no dead letter {id} (replayed already, or never there)"),
                ));
            };
            match queues[p]
                .replay_dead_letter(id)
                .await
                .map_err(unreachable)?
            {
                Replayed::Replayed => println!("{id} replayed: its job runs again"),
                Replayed::LiveDuplicate => println!(
                    "{id} not replayed: its job is live already (replayed before, or pushed again)"
                ),
                Replayed::NotFound => {
                    return Err(Failure::new(
                        Exit::Rejected,
                        format!("no dead letter {id} (replayed already, or never there)"),
                    ));
                }
            }
        }
    }
    Ok(())
}
