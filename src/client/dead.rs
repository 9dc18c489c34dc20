//! `flint dead …`: the dead letters of the charge and webhook queues, read from Redis with the
//! configuration's `[redis] url` (an operator's command, like `sidekiqmon`).

use flint_queue::{DeadLetter, Queue, QueueConfig, Replayed};
use flint_shared::config::Config;
use serde_json::{Value, json};

use super::api::{Exit, Failure};
use super::args::{DeadCommand, DeadQueue};

async fn queue(config: &Config, which: DeadQueue) -> Result<Queue, Failure> {
    let queue_config = match which {
        DeadQueue::Charges => QueueConfig::new(&config.worker.queue),
        DeadQueue::Webhooks => {
            QueueConfig::new(&config.webhooks.queue).in_slot_of(&config.worker.queue)
        }
    };
    Queue::connect_to(&config.redis.target(), queue_config)
        .await
        .map_err(|e| Failure::new(Exit::Unreachable, format!("cannot reach redis: {e}")))
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

fn as_json(d: &DeadLetter) -> Value {
    let payload: Value = serde_json::from_slice(&d.payload)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&d.payload)));
    json!({
        "id": d.dead_letter_id,
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
            let q = queue(config, *which).await?;
            let dead = q.dead_letters(*limit).await.map_err(unreachable)?;
            if json_out {
                let all: Vec<Value> = dead.iter().map(as_json).collect();
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else if dead.is_empty() {
                println!("no dead letters");
            } else {
                for d in &dead {
                    println!("{}  {}  {}", d.dead_letter_id, d.job_id, d.reason);
                }
            }
        }
        DeadCommand::Show { queue: which, id } => {
            check_id(id)?;
            let q = queue(config, *which).await?;
            let d = q
                .dead_letter(id)
                .await
                .map_err(unreachable)?
                .ok_or_else(|| Failure::new(Exit::Rejected, format!("no dead letter {id}")))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&as_json(&d)).unwrap_or_default()
            );
        }
        DeadCommand::Replay { queue: which, id } => {
            check_id(id)?;
            let q = queue(config, *which).await?;
            match q.replay_dead_letter(id).await.map_err(unreachable)? {
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
