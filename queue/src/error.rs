//! Errors of the queue. Redis errors are transient by nature (a restart, a failover, a lost
//! connection): callers on the push path surface them (the enqueuer answers 503), the worker
//! loops log them and retry with backoff.

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("invalid job id `{0}`: ids are 1 to 200 printable ASCII characters")]
    InvalidId(String),
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}
