//! The client commands' arguments (clap).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the API is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The Flint API's base URL.
    #[arg(
        long,
        env = "FLINT_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api_url: String,
    /// The tenant's API key.
    #[arg(long, env = "FLINT_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print the API's JSON instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The API's names (`repeat_purchase`), so a value means the same on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PurposeArg {
    Subscription,
    RepeatPurchase,
    BalanceRecovery,
    Support,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Scheduled,
    None,
}

/// Who acts: a service (default `flint-cli`), or an operator with a reason.
#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// An operator (a person) acting; needs --reason.
    #[arg(long, value_name = "ID", conflicts_with = "service")]
    pub operator: Option<String>,
    /// A service acting (default for changes: none named).
    #[arg(long, value_name = "ID")]
    pub service: Option<String>,
    /// Why (required with --operator; kept in the payment's timeline).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The processor's customer id (cus_…).
    #[arg(long)]
    pub customer: String,
    /// The amount in the currency's smallest unit (2000 = 20.00 USD).
    #[arg(long, value_name = "MINOR_UNITS", allow_negative_numbers = true)]
    pub amount: i64,
    /// ISO 4217 currency code (usd, eur, jpy, …).
    #[arg(long)]
    pub currency: String,
    /// Why the customer is charged; `support` needs --operator and --reason.
    #[arg(long, value_enum)]
    pub purpose: PurposeArg,
    /// The saved payment method to charge (pm_…); the customer's default otherwise.
    #[arg(long)]
    pub payment_method: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
    #[arg(long)]
    pub order_id: Option<String>,
    #[arg(long)]
    pub subscription_id: Option<String>,
    #[arg(long)]
    pub invoice_id: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub statement_descriptor_suffix: Option<String>,
    /// Metadata, repeatable: --metadata plan=pro --metadata seats=3.
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// When to charge (RFC 3339, for example 2026-12-01T09:00:00Z); now otherwise.
    #[arg(long, value_name = "TIME")]
    pub charge_at: Option<String>,
    /// Retry soft declines on a schedule, or not at all.
    #[arg(long, value_enum)]
    pub retry_strategy: Option<StrategyArg>,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    #[arg(long)]
    pub window_hours: Option<u32>,
    /// After a hard decline, try the customer's other saved cards once each.
    #[arg(long)]
    pub fallback_to_other_cards: bool,
    /// The request's idempotency key; a fresh one is generated (and printed) otherwise.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PaymentsCommand {
    /// Create an off-session payment (prints its id and the idempotency key used).
    Create(Box<CreateArgs>),
    /// Show a payment.
    Get { id: String },
    /// List payments, newest first.
    List {
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        starting_after: Option<String>,
    },
    /// Cancel a payment (one with an attempt under way ends once it is settled).
    Cancel {
        id: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Resume a paused payment (optionally on another card), or one requiring attention.
    Resume {
        id: String,
        #[arg(long)]
        payment_method: Option<String>,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Charge a payment waiting for a scheduled retry now.
    RetryNow {
        id: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// What happened to a payment: its attempts, each decision and the rule behind it, and who
    /// acted.
    Timeline { id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        /// An event type, for example off_session_payment.failed.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        payment: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        starting_after: Option<String>,
    },
    /// Show an event.
    Get { id: String },
    /// Send an event again to every webhook endpoint that wants it.
    Redeliver { id: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint (prints its secret, shown only now).
    Create {
        #[arg(long)]
        url: String,
        /// Event types, repeatable or comma-separated; `*` for all.
        #[arg(long = "events", value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints.
    List,
    /// Change an endpoint.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long = "events", value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
        /// Send it nothing until --enable.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete an endpoint.
    Delete { id: String },
    /// Give an endpoint a new secret; the current one still signs for the overlap.
    RotateSecret {
        id: String,
        /// How long the current secret still signs (seconds; default the server's).
        #[arg(long)]
        expire_current_in_secs: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadQueue {
    /// Charge jobs.
    Charges,
    /// Webhook deliveries.
    Webhooks,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeadCommand {
    /// List dead letters, newest first.
    List {
        #[arg(long, value_enum, default_value = "charges")]
        queue: DeadQueue,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one dead letter with its job.
    Show {
        #[arg(long, value_enum, default_value = "charges")]
        queue: DeadQueue,
        /// The partition it is in (`[queue] partitions` > 1); every partition is searched
        /// when unset.
        #[arg(long)]
        partition: Option<u16>,
        id: String,
    },
    /// Run a dead letter's job again (a no-op when it was replayed already).
    Replay {
        #[arg(long, value_enum, default_value = "charges")]
        queue: DeadQueue,
        /// The partition it is in (`[queue] partitions` > 1); every partition is searched
        /// when unset.
        #[arg(long)]
        partition: Option<u16>,
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The file: CSV with a header row, or NDJSON (one create request per line); each row has
    /// its own idempotency_key.
    pub file: PathBuf,
    /// csv or ndjson; from the file's extension otherwise.
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Where rejected rows go (with the API's reason); FILE.rejected.csv otherwise.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}
