//! The command line (clap). Help texts are written for someone who has never seen Flint.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Flint Off-Session: charge customers' saved payment methods later, exactly once.
///
/// Configuration is read from ./config/base.toml, then ./config/$FLINT_ENV.toml, then the file
/// given with --config, then FLINT__SECTION__KEY environment variables (for example
/// FLINT__REDIS__URL). FLINT_CONFIG_DIR points at another config directory.
#[derive(Debug, Parser)]
#[command(name = "flint", version, propagate_version = true)]
pub struct Cli {
    /// An extra TOML config file, applied after config/base.toml and config/$FLINT_ENV.toml and
    /// before FLINT__… environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on this machine: a private redis-server (unless --redis-url), the
    /// Stripe sandbox with demo customers and cards, the enqueuer and two charge workers. Prints
    /// where everything is and a demo API key; --demo also sends a mix of payments and prints
    /// how each ended. Stops on Ctrl-C.
    Dev(DevArgs),

    /// Run the local Stripe sandbox: a faithful in-memory imitation of the Stripe API subset
    /// Flint uses (customers, payment methods, PaymentIntents, test cards, idempotency), plus
    /// fault injection under /__sandbox. Point any Stripe client's API base at it and use the
    /// test key from [sandbox] api_keys (default sk_test_flint).
    Sandbox(SandboxArgs),

    /// Run the HTTP API (`/v1/off_session_payments`) that other services call to create,
    /// read, list, cancel and resume off-session payments. Listens on [enqueuer] listen; needs
    /// [redis] url and at least one [[tenants]] entry. Also serves /healthz, /readyz,
    /// /metrics and /openapi.json.
    Enqueuer(EnqueuerArgs),

    /// Run a charge worker: takes payment jobs from Redis and charges saved payment methods
    /// through the processor ([processor] api_base), exactly once per attempt, retrying soft
    /// declines on [worker] retry_delays_ms. Serves /healthz, /readyz and /metrics on
    /// [worker] listen; stops on SIGTERM within [worker] shutdown_grace_secs.
    Worker(WorkerArgs),

    /// Create, read, cancel and resume payments through the API (--api-url, --api-key), and
    /// see each one's timeline: attempts, decisions, the rule behind each, and who acted.
    Payments(Box<PaymentsArgs>),

    /// List, show and redeliver events through the API.
    Events(EventsArgs),

    /// Manage the webhook endpoints events are delivered to, through the API.
    Webhooks(WebhooksArgs),

    /// Create a payment per row of a CSV or NDJSON file (a billing run), concurrently, with
    /// progress; re-running the same file creates nothing twice. Rejected rows go to a report.
    Import(crate::client::ImportArgs),

    /// List, show and replay dead-lettered charge jobs and webhook deliveries. Reads the
    /// configuration and talks to Redis directly (an operator's command).
    Dead(DeadArgs),

    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Measure performance. Each benchmark prints its figures next to a baseline measured in
    /// the same run, because absolute numbers on a shared machine mean little.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, clap::Args)]
pub struct PaymentsArgs {
    #[command(flatten)]
    pub api: crate::client::ApiArgs,
    #[command(subcommand)]
    pub command: crate::client::PaymentsCommand,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub api: crate::client::ApiArgs,
    #[command(subcommand)]
    pub command: crate::client::EventsCommand,
}

#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub api: crate::client::ApiArgs,
    #[command(subcommand)]
    pub command: crate::client::WebhooksCommand,
}

#[derive(Debug, clap::Args)]
pub struct DeadArgs {
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: crate::client::DeadCommand,
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on, for example 127.0.0.1:12111 (port 0 picks a free port).
    /// Overrides [sandbox] listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Use this Redis instead of starting a private redis-server.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Send a mix of payments (success, soft and hard declines, authentication required) and
    /// print how each ended.
    #[arg(long)]
    pub demo: bool,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub api_listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Address of /healthz, /readyz and /metrics (overrides [worker] listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct EnqueuerArgs {
    /// Address to listen on (overrides [enqueuer] listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then print the effective values as TOML with
    /// every secret replaced by "[redacted]". Exits non-zero, naming the bad key, when the
    /// configuration is invalid.
    Check,
    /// Print the charge queue's partitions (`[queue] partitions`): each one's Redis hash tag,
    /// its cluster slot, and its charge and webhook streams (what KEDA's stream triggers
    /// name). Reads the configuration only.
    Partitions {
        /// One JSON object per partition, as an array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Throughput of the sandbox: PaymentIntents created and confirmed per second at a given
    /// concurrency, against the same server's health endpoint as the baseline.
    Sandbox(BenchSandboxArgs),

    /// Throughput and latency of Flint's Redis queue against apalis-redis 1.0.0 on the same
    /// Redis in the same run: N no-op jobs drained by 1 and 2 worker processes, Redis commands
    /// per job (INFO commandstats), pickup latency of an idle worker, and push rates.
    Queue(BenchQueueArgs),

    /// Throughput and latency of the enqueuer's create endpoint: creates per second at
    /// concurrency 1, 16 and 64, and latency at a fixed 1,000 creates/s, next to
    /// `redis-benchmark`'s SET rate on the same Redis in the same run.
    Api(BenchApiArgs),

    /// Payments end to end (API → Redis → a worker process → the sandbox): payments per second
    /// with an instant sandbox, and with 300 ms of processor latency the throughput of one
    /// worker process at concurrency 1,000 against the Little's-law bound, plus its RSS.
    E2e(BenchE2eArgs),

    /// A billing run through `flint import` (the real binary): N rows created, then the same
    /// file again (nothing created twice), against the API's own create rate at the same
    /// concurrency in the same run.
    Import(BenchImportArgs),

    /// What a payment costs Redis: memory per pending payment (N created through the API and
    /// scheduled months ahead: `INFO memory` before and after, split by key kind with
    /// `MEMORY USAGE`, projected to 10 million), and Redis CPU per payment from create to
    /// settlement (M payments due now through the API, one worker process and the sandbox:
    /// Redis's own CPU time, and `INFO commandstats` per command).
    Cost(BenchCostArgs),

    /// A queue worker process for `flint bench queue` and the crash tests (not for production).
    #[command(hide = true)]
    QueueWorker(QueueWorkerArgs),
}

/// The queue systems `flint bench queue` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueSystem {
    /// Flint's own Redis Streams backend (flint-queue).
    Flint,
    /// apalis-redis 1.0.0 with its default configuration.
    ApalisRedisDefault,
    /// apalis-redis 1.0.0 with `lock_tasks(false)`.
    ApalisRedisNolock,
}

impl QueueSystem {
    pub fn label(self) -> &'static str {
        match self {
            QueueSystem::Flint => "flint",
            QueueSystem::ApalisRedisDefault => "apalis-redis-default",
            QueueSystem::ApalisRedisNolock => "apalis-redis-nolock",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchQueueArgs {
    /// Redis to run against (its data is left alone but for the bench's own keys). Without it,
    /// a private redis-server is started on a free port.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Jobs per drain scenario.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u64,
    /// Systems to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "flint,apalis-redis-default,apalis-redis-nolock"
    )]
    pub systems: Vec<QueueSystem>,
    /// Worker process counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Jobs in flight per worker process.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Jobs pushed one at a time to an idle worker to measure pickup latency.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    /// Print one JSON object per line and scenario instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchApiArgs {
    /// Redis to run against (a private redis-server on a free port when absent).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Rate of the fixed-rate latency scenario, creates per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchImportArgs {
    /// Rows in the file.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Requests in flight, for the import and the baseline alike.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of the baseline's closed loop.
    #[arg(long, default_value_t = 5)]
    pub baseline_seconds: u64,
}

#[derive(Debug, clap::Args)]
pub struct BenchE2eArgs {
    /// Payments per scenario.
    #[arg(long, default_value_t = 20000)]
    pub payments: usize,
    /// Run every scenario twice: on a private redis-server, then on a private Redis Cluster of
    /// three primaries and three replicas with three partitions (one per primary).
    #[arg(long)]
    pub cluster: bool,
    /// How the API and the worker write payments (`[redis] storage_format`).
    #[arg(long, value_enum, default_value = "json")]
    pub storage_format: StorageArg,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `[redis] storage_format`, as a benchmark's option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageArg {
    Json,
    Compact,
}

impl From<StorageArg> for flint_shared::config::StorageFormat {
    fn from(arg: StorageArg) -> Self {
        match arg {
            StorageArg::Json => flint_shared::config::StorageFormat::Json,
            StorageArg::Compact => flint_shared::config::StorageFormat::Compact,
        }
    }
}

/// Which card a benchmark's payments charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardArg {
    /// Each payment names its card (`payment_method`).
    Named,
    /// No payment names a card: each attempt charges the customer's default.
    Default,
}

#[derive(Debug, clap::Args)]
pub struct BenchCostArgs {
    /// Pending payments created for the memory measurement.
    #[arg(long, default_value_t = 100_000)]
    pub pending: usize,
    /// Customers the pending payments are spread over (default: one per payment, as in a
    /// billing run).
    #[arg(long)]
    pub customers: Option<usize>,
    /// Payments created and settled for the CPU measurement.
    #[arg(long, default_value_t = 20_000)]
    pub payments: usize,
    /// Which card the CPU measurement's payments charge.
    #[arg(long, value_enum, default_value = "named")]
    pub card: CardArg,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct QueueWorkerArgs {
    #[arg(long, value_enum)]
    pub system: QueueSystem,
    #[arg(long)]
    pub redis_url: String,
    #[arg(long)]
    pub queue: String,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Lease of the Flint queue, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    pub lease_ms: u64,
    /// Record every run in the hash `flint:bench:{queue}:runs` (job id → runs) before working.
    #[arg(long)]
    pub record: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchSandboxArgs {
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to run each scenario.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Benchmark a running sandbox at this base URL instead of starting one in-process.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    pub json: bool,
}
