//! Flint's configuration: one typed tree, loaded in layers.
//!
//! Precedence, lowest first:
//! 1. built-in defaults (the `Default` impls here; `config/base.toml` repeats and documents them),
//! 2. `{config_dir}/base.toml`,
//! 3. `{config_dir}/{FLINT_ENV}.toml` when `FLINT_ENV` is set,
//! 4. the file given by `--config FILE`,
//! 5. environment variables `FLINT__SECTION__KEY` (`FLINT__REDIS__URL`, `FLINT__SANDBOX__LISTEN`).
//!
//! `config_dir` is `./config` unless `FLINT_CONFIG_DIR` says otherwise. Unknown keys are errors
//! (a typo must not silently fall back to a default), and every error names the key. Secrets are
//! [`Secret`]s: they cannot be printed by `Debug` or serialized.

mod enqueuer;
mod queue;
mod sandbox;
mod secret;
mod webhooks;
mod worker;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::redis_target::RedisTarget;

pub use enqueuer::{EnqueuerConfig, TenantConfig};
pub use queue::QueueConfig;
pub use sandbox::{ErrorRates, FaultConfig, RateLimiterConfig, SandboxConfig};
pub use secret::{REDACTED, Secret};
pub use webhooks::WebhooksConfig;
pub use worker::{ProcessorConfig, WorkerConfig};

/// The whole configuration. Sections are added by the issues that need them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    pub redis: RedisConfig,
    pub sandbox: SandboxConfig,
    pub enqueuer: EnqueuerConfig,
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
    pub processor: ProcessorConfig,
    pub webhooks: WebhooksConfig,
    /// Who may call the API; each tenant sees only its own payments.
    pub tenants: Vec<TenantConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `flint_sandbox=debug,info`, …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`. May carry a password, so it is a secret.
    /// Ignored when `cluster_nodes` is set.
    pub url: Secret,
    /// A Redis Cluster, by the `redis://[user:password@]host:port` urls of some of its nodes
    /// (the cluster tells the rest). Empty (the default): one server, at `url`. Set, Flint runs
    /// in cluster mode and `url` is ignored. May carry passwords, so they are secrets.
    pub cluster_nodes: Vec<Secret>,
    /// Run on a Redis whose `maxmemory-policy` is not `noeviction` (it may delete jobs and
    /// payments when full). Refused at start unless this is true.
    pub allow_eviction: bool,
    /// Durable acceptance: after each payment write the API answers for (a create, its
    /// idempotent replay, a cancel or resume) and each transition a worker writes, wait (`WAIT`)
    /// until this many replicas hold it. Short of that within `min_replicas_timeout_ms`, the API
    /// answers 503 `storage_not_replicated` (the change is on the primary; only a create is safe
    /// to repeat blindly, with its Idempotency-Key) and a worker runs the job again later.
    /// Webhook endpoint changes are answered as done either way. `0` (the default) sends no
    /// `WAIT`: a failover may then lose acknowledged writes.
    pub min_replicas_acked: u32,
    /// How long one `WAIT` may take, in milliseconds (1–10000).
    pub min_replicas_timeout_ms: u64,
    /// How payments and events are written (both are always read): `json` (the default) as
    /// every version so far, or `compact`, about half the Redis memory per pending payment,
    /// which versions before this one cannot read. Set `compact` once every enqueuer and worker
    /// runs this version or later.
    pub storage_format: StorageFormat,
    /// Also keep the unfiltered indexes: of all a tenant's payments, of all a customer's and
    /// of all a tenant's events. This version lists from the per-status (per-type) indexes
    /// alone; versions before it list from these. `true` (the default) until every enqueuer
    /// and worker runs this version or later; `false` then saves about 430 bytes of Redis
    /// memory per pending payment.
    pub unfiltered_indexes: bool,
}

/// How payment records and events are written to Redis (`[redis] storage_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageFormat {
    /// JSON, whole, as every version before `compact` wrote it.
    Json,
    /// Compressed, in the small-hash encoding, and a new payment's `created` event kept in the
    /// payment until it changes.
    Compact,
}

impl StorageFormat {
    /// Its name, as configured (and as the store's scripts take it).
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFormat::Json => "json",
            StorageFormat::Compact => "compact",
        }
    }
}

/// The most `min_replicas_acked` may ask for.
pub const MAX_REPLICAS_ACKED: u32 = 10;
/// The longest `min_replicas_timeout_ms`.
pub const MAX_REPLICAS_TIMEOUT_MS: u64 = 10_000;

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: Secret::new("redis://127.0.0.1:6379"),
            cluster_nodes: Vec::new(),
            allow_eviction: false,
            min_replicas_acked: 0,
            min_replicas_timeout_ms: 500,
            storage_format: StorageFormat::Json,
            unfiltered_indexes: true,
        }
    }
}

impl RedisConfig {
    /// Where Flint's Redis is: the cluster of `cluster_nodes` when there are any, else the
    /// server at `url`. The one owner of that choice.
    pub fn target(&self) -> RedisTarget {
        if self.cluster_nodes.is_empty() {
            RedisTarget::Standalone(self.url.expose().to_owned())
        } else {
            RedisTarget::Cluster(
                self.cluster_nodes
                    .iter()
                    .map(|node| node.expose().to_owned())
                    .collect(),
            )
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.cluster_nodes.is_empty() {
            return self.validate_cluster();
        }
        let url = self.url.expose();
        if url.starts_with("rediss://") {
            // Said here, at start, rather than as a connection error later.
            return Err(ConfigError::invalid(
                "redis.url",
                "TLS to Redis (rediss://) is not built into Flint yet: use redis:// (through a TLS tunnel or sidecar when the network needs encryption)",
            ));
        }
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
            return Err(ConfigError::invalid(
                "redis.url",
                "must start with redis:// or redis+unix://",
            ));
        }
        self.validate_replica_acks()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        for node in &self.cluster_nodes {
            let node = node.expose();
            if node.starts_with("rediss://") {
                return Err(ConfigError::invalid(
                    "redis.cluster_nodes",
                    "TLS to Redis (rediss://) is not built into Flint yet: use redis:// (through a TLS tunnel or sidecar when the network needs encryption)",
                ));
            }
            let parsed = node
                .strip_prefix("redis://")
                .and_then(|_| url::Url::parse(node).ok());
            if parsed.is_none_or(|u| u.host_str().is_none_or(str::is_empty)) {
                return Err(ConfigError::invalid(
                    "redis.cluster_nodes",
                    "each node must be a redis://[user:password@]host:port url",
                ));
            }
        }
        self.validate_replica_acks()
    }

    fn validate_replica_acks(&self) -> Result<(), ConfigError> {
        if self.min_replicas_acked > MAX_REPLICAS_ACKED {
            return Err(ConfigError::invalid(
                "redis.min_replicas_acked",
                format!("must be at most {MAX_REPLICAS_ACKED}"),
            ));
        }
        if self.min_replicas_timeout_ms == 0
            || self.min_replicas_timeout_ms > MAX_REPLICAS_TIMEOUT_MS
        {
            return Err(ConfigError::invalid(
                "redis.min_replicas_timeout_ms",
                format!("must be 1–{MAX_REPLICAS_TIMEOUT_MS} (milliseconds)"),
            ));
        }
        Ok(())
    }

    /// How long one `WAIT` may take.
    pub fn min_replicas_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.min_replicas_timeout_ms)
    }
}

/// Why the configuration cannot be used. The message always names the key or the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("FLINT_ENV={env} but {path} does not exist")]
    MissingEnvFile { env: String, path: PathBuf },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where configuration files come from. `FLINT__…` overrides are always read from the process
/// environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The directory with `base.toml` and the environment overlays.
    pub config_dir: PathBuf,
    /// Whether `config_dir` was chosen explicitly; then a missing `base.toml` is an error.
    pub config_dir_explicit: bool,
    /// The value of `FLINT_ENV`.
    pub env_name: Option<String>,
    /// The `--config FILE` argument.
    pub extra_file: Option<PathBuf>,
}

impl Sources {
    pub fn from_process(extra_file: Option<PathBuf>) -> Self {
        let dir = std::env::var_os("FLINT_CONFIG_DIR").map(PathBuf::from);
        Sources {
            config_dir_explicit: dir.is_some(),
            config_dir: dir.unwrap_or_else(|| PathBuf::from("config")),
            env_name: std::env::var("FLINT_ENV").ok().filter(|e| !e.is_empty()),
            extra_file,
        }
    }
}

const ENV_PREFIX: &str = "FLINT__";

impl Config {
    /// Loads and validates the configuration from `sources`.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();

        let base = sources.config_dir.join("base.toml");
        if base.is_file() {
            figment = figment.merge(Toml::file_exact(&base));
        } else if sources.config_dir_explicit {
            return Err(ConfigError::MissingFile { path: base });
        }

        if let Some(env) = &sources.env_name {
            let overlay = overlay_path(&sources.config_dir, env)?;
            if !overlay.is_file() {
                return Err(ConfigError::MissingEnvFile {
                    env: env.clone(),
                    path: overlay,
                });
            }
            figment = figment.merge(Toml::file_exact(overlay));
        }

        if let Some(extra) = &sources.extra_file {
            if !extra.is_file() {
                return Err(ConfigError::MissingFile {
                    path: extra.clone(),
                });
            }
            figment = figment.merge(Toml::file_exact(extra));
        }

        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));

        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(render(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::invalid("log.level", e.to_string()));
        }
        self.redis.validate()?;
        self.sandbox.validate()?;
        self.enqueuer.validate()?;
        self.queue.validate()?;
        self.worker.validate()?;
        self.processor.validate()?;
        self.webhooks.validate()?;
        if self.webhooks.queue == self.queue.name {
            return Err(ConfigError::invalid(
                "webhooks.queue",
                "must differ from queue.name (deliveries have their own queue)",
            ));
        }
        enqueuer::validate_tenants(&self.tenants)
    }

    /// The effective configuration as TOML, secrets replaced by [`REDACTED`].
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

fn overlay_path(dir: &Path, env: &str) -> Result<PathBuf, ConfigError> {
    if env.is_empty()
        || !env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::Invalid {
            key: "FLINT_ENV".to_owned(),
            reason: "must be a plain name such as `local`, `test` or `production`".to_owned(),
        });
    }
    Ok(dir.join(format!("{env}.toml")))
}

/// Renders every error figment found as `key `a.b`: what is wrong (from where)`.
fn render(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let origin = match &e.metadata {
                Some(meta) if meta.name.contains("environment") => {
                    let var: Vec<String> = e.path.iter().map(|p| p.to_uppercase()).collect();
                    format!(
                        " (from environment variable {ENV_PREFIX}{})",
                        var.join("__")
                    )
                }
                Some(meta) => match &meta.source {
                    Some(source) => format!(" (from {source})"),
                    None => format!(" (from {})", meta.name),
                },
                None => String::new(),
            };
            let key = e.path.join(".").to_lowercase();
            if key.is_empty() {
                format!("{}{origin}", e.kind)
            } else {
                format!("key `{key}`: {}{origin}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
