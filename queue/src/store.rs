//! The queue's Redis operations, one method per script or command, shared by the producer
//! ([`crate::Queue`]) and the worker backend.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::{Script, Value};

use crate::config::QueueConfig;
use crate::connection::RedisConnection;
use crate::keys::{GROUP, Keys};
use crate::{QueueError, lua};

/// A job as stored: its id and its encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJob {
    /// The stream entry that leases it (empty for jobs not read from the stream).
    pub entry_id: String,
    pub id: String,
    pub payload: Vec<u8>,
    /// Deliveries in a row before this one whose lease ran out.
    pub lost_leases: u32,
}

/// What a worker decided about one leased job.
#[derive(Debug, Clone)]
pub enum RawOutcome {
    Complete,
    RetryAtMs(u64),
    Dead(String),
}

#[derive(Debug)]
struct Scripts {
    push: Script,
    ack: Script,
    promote: Script,
    reclaim: Script,
    release: Script,
    replay: Script,
    stats: Script,
    prune: Script,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub config: QueueConfig,
    pub keys: Keys,
    scripts: std::sync::Arc<Scripts>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The depth of each state of a queue, read in one script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub ready: u64,
    pub leased: u64,
    pub delayed: u64,
    pub dead: u64,
    /// Age of the oldest job waiting to be fetched, in ms (0 when none waits).
    pub oldest_ready_age_ms: u64,
}

/// The depth of several queues (a queue's partitions) as one: counts add up, and the oldest
/// waiting job is the oldest of any.
impl std::iter::Sum for QueueStats {
    fn sum<I: Iterator<Item = QueueStats>>(stats: I) -> QueueStats {
        stats.fold(QueueStats::default(), |sum, s| QueueStats {
            ready: sum.ready + s.ready,
            leased: sum.leased + s.leased,
            delayed: sum.delayed + s.delayed,
            dead: sum.dead + s.dead,
            oldest_ready_age_ms: sum.oldest_ready_age_ms.max(s.oldest_ready_age_ms),
        })
    }
}

impl Store {
    pub fn new(config: QueueConfig) -> Store {
        let keys = config.keys();
        let scripts = Scripts {
            push: lua::script(include_str!("lua/push.lua")),
            ack: lua::script(include_str!("lua/ack.lua")),
            promote: lua::script(include_str!("lua/promote.lua")),
            reclaim: lua::script(include_str!("lua/reclaim.lua")),
            release: lua::script(include_str!("lua/release.lua")),
            replay: lua::script(include_str!("lua/replay.lua")),
            stats: Script::new(include_str!("lua/stats.lua")),
            prune: Script::new(include_str!("lua/prune.lua")),
        };
        Store {
            config,
            keys,
            scripts: std::sync::Arc::new(scripts),
        }
    }

    /// Creates the stream and its consumer group if missing (idempotent).
    pub async fn ensure_group(&self, conn: &mut RedisConnection) -> Result<(), QueueError> {
        let created: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Pushes `(id, due_ms, payload)` jobs; `true` for each that is new.
    pub async fn push(
        &self,
        conn: &mut RedisConnection,
        jobs: &[(String, u64, Vec<u8>)],
    ) -> Result<Vec<bool>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.push.prepare_invoke();
        for key in self.keys.job_keys() {
            invocation.key(key);
        }
        invocation.arg(now_ms());
        for (id, due_ms, payload) in jobs {
            invocation.arg(id).arg(*due_ms).arg(payload.as_slice());
        }
        let created: Vec<i64> = invocation.invoke_async(conn).await?;
        Ok(created.into_iter().map(|c| c == 1).collect())
    }

    /// Records outcomes; returns how many were applied (the rest were of entries this worker
    /// no longer holds).
    pub async fn ack(
        &self,
        conn: &mut RedisConnection,
        outcomes: &[(RawJob, RawOutcome)],
    ) -> Result<u64, QueueError> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.ack.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        invocation.arg(now_ms()).arg(self.config.dead_letters_max);
        for (job, outcome) in outcomes {
            invocation.arg(&job.entry_id).arg(&job.id);
            match outcome {
                RawOutcome::Complete => invocation.arg("c").arg(""),
                RawOutcome::RetryAtMs(at) => invocation.arg("r").arg(*at),
                RawOutcome::Dead(reason) => invocation.arg("x").arg(reason),
            };
            // Every outcome carries the payload: a job marked to run again is re-added with it
            // whatever it reported.
            invocation.arg(job.payload.as_slice());
        }
        Ok(invocation.invoke_async(conn).await?)
    }

    /// Moves due delayed jobs to ready; returns `(moved, next due time in ms)`.
    pub async fn promote(
        &self,
        conn: &mut RedisConnection,
    ) -> Result<(u64, Option<u64>), QueueError> {
        let mut invocation = self.scripts.promote.prepare_invoke();
        for key in self.keys.job_keys() {
            invocation.key(key);
        }
        let (moved, next): (u64, i64) = invocation
            .arg(now_ms())
            .arg(self.config.promote_batch)
            .invoke_async(conn)
            .await?;
        Ok((moved, u64::try_from(next).ok()))
    }

    /// Renews the leases of `entries` (this worker's); returns those it still holds. One
    /// `XCLAIM` to itself: an entry is only ever pending for the worker that read it (a lease
    /// that runs out is taken over by moving the job to a new entry, see [`Store::reclaim`]),
    /// so claiming cannot take an entry from another worker, and one that was moved away is
    /// no longer pending and is left out.
    pub async fn renew(
        &self,
        conn: &mut RedisConnection,
        consumer: &str,
        entries: &[String],
    ) -> Result<Vec<String>, QueueError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        Ok(redis::cmd("XCLAIM")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entries)
            .arg("JUSTID")
            .query_async(conn)
            .await?)
    }

    pub async fn release(
        &self,
        conn: &mut RedisConnection,
        consumer: &str,
        jobs: &[RawJob],
    ) -> Result<u64, QueueError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.release.prepare_invoke();
        for key in self.keys.job_keys() {
            invocation.key(key);
        }
        invocation.arg(consumer);
        for job in jobs {
            invocation
                .arg(&job.entry_id)
                .arg(&job.id)
                .arg(job.payload.as_slice())
                .arg(job.lost_leases);
        }
        Ok(invocation.invoke_async(conn).await?)
    }

    /// 1 replayed, 2 a live job has that id, 0 no such dead letter.
    pub async fn replay(
        &self,
        conn: &mut RedisConnection,
        dead_entry_id: &str,
    ) -> Result<i64, QueueError> {
        let mut invocation = self.scripts.replay.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        Ok(invocation
            .arg(dead_entry_id)
            .arg(now_ms())
            .invoke_async(conn)
            .await?)
    }

    pub async fn stats(&self, conn: &mut RedisConnection) -> Result<QueueStats, QueueError> {
        let mut invocation = self.scripts.stats.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        let (len, leased, delayed, dead, oldest, now): (u64, u64, u64, u64, String, u64) =
            invocation.invoke_async(conn).await?;
        let oldest_ready_age_ms = entry_ms(&oldest).map_or(0, |at| now.saturating_sub(at));
        Ok(QueueStats {
            ready: len.saturating_sub(leased),
            leased,
            delayed,
            dead,
            oldest_ready_age_ms,
        })
    }

    /// Removes consumers that hold nothing and have been idle longer than the configured limit.
    pub async fn prune_consumers(&self, conn: &mut RedisConnection) -> Result<u64, QueueError> {
        let idle_ms =
            u64::try_from(self.config.consumer_idle_limit.as_millis()).unwrap_or(u64::MAX);
        Ok(self
            .scripts
            .prune
            .key(&self.keys.stream)
            .arg(idle_ms)
            .invoke_async(conn)
            .await?)
    }

    /// `XREADGROUP … BLOCK`: new jobs for `consumer`, leased to it by the read itself.
    pub async fn read_new(
        &self,
        conn: &mut RedisConnection,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<RawJob>, QueueError> {
        let block_ms = u64::try_from(self.config.block.as_millis()).unwrap_or(1000);
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(">")
            .query_async(conn)
            .await?;
        match reply {
            Value::Nil => Ok(Vec::new()),
            Value::Array(streams) | Value::Set(streams) => {
                let mut jobs = Vec::new();
                for stream in streams {
                    let pair = as_array(stream)?;
                    if let Some(entries) = pair.into_iter().nth(1) {
                        jobs.extend(parse_entries(entries)?);
                    }
                }
                Ok(jobs)
            }
            Value::Map(pairs) => {
                let mut jobs = Vec::new();
                for (_, entries) in pairs {
                    jobs.extend(parse_entries(entries)?);
                }
                Ok(jobs)
            }
            other => Err(QueueError::Protocol(format!("XREADGROUP: {other:?}"))),
        }
    }

    /// Takes over up to `count` jobs whose lease ran out (their worker died or stalled) by
    /// moving each to a new ready entry, scanning the pending list from `cursor` (`0-0` for the
    /// start). Returns the cursor to continue from (`0-0` once the scan has wrapped around) and
    /// how many jobs were moved and how many dead-lettered (lease lost too often).
    pub async fn reclaim(
        &self,
        conn: &mut RedisConnection,
        consumer: &str,
        cursor: &str,
        count: usize,
    ) -> Result<Reclaimed, QueueError> {
        let mut invocation = self.scripts.reclaim.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        let (cursor, moved, dead): (String, u64, u64) = invocation
            .arg(consumer)
            .arg(self.config.lease_ms())
            .arg(cursor)
            .arg(count)
            .arg(self.config.max_lost_leases)
            .arg(now_ms())
            .arg(self.config.dead_letters_max)
            .invoke_async(conn)
            .await?;
        Ok(Reclaimed {
            cursor,
            moved,
            dead,
        })
    }

    /// Dead letters, newest first: `(dead letter id, job id, reason, dead at ms)`.
    pub async fn dead_letters(
        &self,
        conn: &mut RedisConnection,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(&self.keys.dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(conn)
            .await?;
        dead_letters(reply)
    }

    /// The dead letter `id`, if it is there.
    pub async fn dead_letter(
        &self,
        conn: &mut RedisConnection,
        id: &str,
    ) -> Result<Option<DeadLetter>, QueueError> {
        let reply: Value = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg(id)
            .arg(id)
            .query_async(conn)
            .await?;
        Ok(dead_letters(reply)?.into_iter().next())
    }
}

fn dead_letters(reply: Value) -> Result<Vec<DeadLetter>, QueueError> {
    {
        let mut out = Vec::new();
        for entry in as_array(reply)? {
            let mut parts = as_array(entry)?.into_iter();
            let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
                continue;
            };
            let fields = field_map(fields)?;
            out.push(DeadLetter {
                dead_letter_id: as_string(id)?,
                job_id: fields
                    .get("id")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
                reason: fields
                    .get("reason")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
                dead_at_ms: fields
                    .get("at")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0),
                payload: fields.get("p").cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

/// What one reclaim pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// Where the next pass continues (`0-0`: the scan wrapped around).
    pub cursor: String,
    pub moved: u64,
    pub dead: u64,
}

/// A job that must not run again, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub dead_letter_id: String,
    pub job_id: String,
    pub reason: String,
    pub dead_at_ms: u64,
    pub payload: Vec<u8>,
}

/// The millisecond part of a stream entry id (`1700000000000-0`).
fn entry_ms(entry_id: &str) -> Option<u64> {
    entry_id.split('-').next()?.parse().ok()
}

fn as_array(v: Value) -> Result<Vec<Value>, QueueError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(QueueError::Protocol(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

fn as_string(v: Value) -> Result<String, QueueError> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|e| QueueError::Protocol(e.to_string()))
        }
        Value::SimpleString(s) => Ok(s),
        other => Err(QueueError::Protocol(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

fn field_map(v: Value) -> Result<std::collections::HashMap<String, Vec<u8>>, QueueError> {
    let items = match v {
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => as_array(other)?,
    };
    let mut map = std::collections::HashMap::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let value = match v {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.into_bytes(),
            other => return Err(QueueError::Protocol(format!("field value {other:?}"))),
        };
        map.insert(as_string(k)?, value);
    }
    Ok(map)
}

/// `[[entry_id, [field, value, …]], …]`; entries without fields (deleted) are skipped.
fn parse_entries(v: Value) -> Result<Vec<RawJob>, QueueError> {
    let mut jobs = Vec::new();
    for entry in as_array(v)? {
        let mut parts = as_array(entry)?.into_iter();
        let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
            continue;
        };
        if matches!(fields, Value::Nil) {
            continue;
        }
        let entry_id = as_string(id)?;
        let mut fields = field_map(fields)?;
        let job_id = fields
            .remove("id")
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let payload = fields.remove("p");
        let lost_leases = fields
            .remove("n")
            .and_then(|n| std::str::from_utf8(&n).ok()?.parse().ok())
            .unwrap_or(0);
        if let (Some(id), Some(payload)) = (job_id, payload) {
            jobs.push(RawJob {
                entry_id,
                id,
                payload,
                lost_leases,
            });
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::QueueStats;

    #[test]
    fn partitions_sum_their_counts_and_keep_the_oldest_wait() {
        let stats = |ready, leased, delayed, dead, oldest_ready_age_ms| QueueStats {
            ready,
            leased,
            delayed,
            dead,
            oldest_ready_age_ms,
        };
        for (parts, want) in [
            (vec![], stats(0, 0, 0, 0, 0)),
            (vec![stats(1, 2, 3, 4, 50)], stats(1, 2, 3, 4, 50)),
            (
                vec![
                    stats(1, 0, 2, 0, 900),
                    stats(0, 3, 0, 1, 0),
                    stats(4, 0, 0, 0, 70),
                ],
                stats(5, 3, 2, 1, 900),
            ),
        ] {
            assert_eq!(
                parts.clone().into_iter().sum::<QueueStats>(),
                want,
                "{parts:?}"
            );
        }
    }
}
