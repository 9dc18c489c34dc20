//! The producer and admin side of a queue: push (single, delayed, batched, idempotent by job
//! id), depth statistics, and dead letters.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::QueueError;
use crate::backend::RedisBackend;
use crate::config::QueueConfig;
use crate::connection::{RedisConnection, RedisTarget, Timeouts};
use crate::store::{DeadLetter, QueueStats, Store};

/// Whether a push created a job or found a live one with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Enqueued,
    Duplicate,
}

/// What replaying a dead letter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    Replayed,
    /// A live job with the same id exists; the dead letter stays.
    LiveDuplicate,
    NotFound,
}

/// One job to push.
#[derive(Debug, Clone)]
pub struct NewJob<T> {
    /// Caller-chosen id (idempotent push); a random one when `None`.
    pub id: Option<String>,
    pub args: T,
    /// Not before this time; now when `None`.
    pub run_at: Option<SystemTime>,
}

impl<T> NewJob<T> {
    pub fn new(args: T) -> Self {
        NewJob {
            id: None,
            args,
            run_at: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// A queue handle for producers and operators. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    target: RedisTarget,
    conn: RedisConnection,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Queue {
    /// A queue on the standalone server at `redis_url`.
    pub async fn connect(redis_url: &str, config: QueueConfig) -> Result<Queue, QueueError> {
        Queue::connect_to(&RedisTarget::Standalone(redis_url.to_owned()), config).await
    }

    /// A queue on a standalone server or a Redis Cluster. Connects (and creates the queue's
    /// stream and consumer group if missing) before returning.
    pub async fn connect_to(
        target: &RedisTarget,
        config: QueueConfig,
    ) -> Result<Queue, QueueError> {
        let mut conn = target.connect(Timeouts::default()).await?;
        let store = Store::new(config);
        store.ensure_group(&mut conn).await?;
        Ok(Queue {
            store,
            target: target.clone(),
            conn,
        })
    }

    /// Where the queue's Redis is.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    pub fn config(&self) -> &QueueConfig {
        &self.store.config
    }

    /// Pushes one job; returns its id and whether it was new.
    pub async fn push<T: Serialize>(&self, job: NewJob<T>) -> Result<(String, Pushed), QueueError> {
        let mut out = self.push_batch(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::Protocol("push returned nothing".into()))
    }

    /// Pushes many jobs in one round trip per 500 jobs.
    pub async fn push_batch<T: Serialize>(
        &self,
        jobs: Vec<NewJob<T>>,
    ) -> Result<Vec<(String, Pushed)>, QueueError> {
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in jobs {
            let id = match job.id {
                Some(id) if valid_id(&id) => id,
                Some(id) => return Err(QueueError::InvalidId(id)),
                None => crate::token(24),
            };
            encoded.push((id, job.run_at.map_or(0, ms), serde_json::to_vec(&job.args)?));
        }
        let mut out = Vec::with_capacity(encoded.len());
        let mut conn = self.conn.clone();
        for chunk in encoded.chunks(500) {
            let created = self.store.push(&mut conn, chunk).await?;
            for ((id, _, _), new) in chunk.iter().zip(created) {
                out.push((
                    id.clone(),
                    if new {
                        Pushed::Enqueued
                    } else {
                        Pushed::Duplicate
                    },
                ));
            }
        }
        Ok(out)
    }

    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.store.stats(&mut self.conn.clone()).await
    }

    /// The newest dead letters, at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.store.dead_letters(&mut self.conn.clone(), limit).await
    }

    /// One dead letter by its id (as [`Queue::dead_letters`] lists it).
    pub async fn dead_letter(
        &self,
        dead_letter_id: &str,
    ) -> Result<Option<DeadLetter>, QueueError> {
        self.store
            .dead_letter(&mut self.conn.clone(), dead_letter_id)
            .await
    }

    pub async fn replay_dead_letter(&self, dead_letter_id: &str) -> Result<Replayed, QueueError> {
        Ok(
            match self
                .store
                .replay(&mut self.conn.clone(), dead_letter_id)
                .await?
            {
                1 => Replayed::Replayed,
                2 => Replayed::LiveDuplicate,
                _ => Replayed::NotFound,
            },
        )
    }

    /// A fresh apalis backend for one worker (each gets its own consumer identity).
    pub fn backend<Args>(&self) -> RedisBackend<Args> {
        RedisBackend::new(self.store.clone(), self.target.clone())
    }
}
