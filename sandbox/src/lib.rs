//! `flint-sandbox`: a local, in-memory imitation of the subset of Stripe's API that Flint uses.
//!
//! Stripe's own `stripe-mock` is stateless: no declines, no idempotency, no test cards. Flint's
//! exactly-once and retry guarantees can only be proven against a processor that has them, so
//! this crate reproduces Stripe's behaviour for customers, payment methods and PaymentIntents
//! on Stripe's wire format, and adds fault
//! injection under `/__sandbox` to make the processor time out, fail, rate-limit and drop
//! connections on demand.
//!
//! Layout:
//! - [`api`](crate::api): the `/v1` entry point (auth, limits, idempotency, faults) and the routes;
//!   one file per resource.
//! - `account`, `objects`, `cards`: the data of one API key, its wire form, the test cards.
//! - `form`, `error`, `idempotency`, `faults`, `webhooks`: Stripe's mechanisms, one per file.
//! - `server`: the accept loop that can drop a connection on purpose.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut config = flint_shared::config::SandboxConfig::default();
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let sandbox = flint_sandbox::Sandbox::bind(config).await?;
//! println!("Stripe API base: {}", sandbox.base_url());
//! sandbox.run(std::future::pending()).await;
//! # Ok(()) }
//! ```

mod account;
mod api;
mod auth;
mod cards;
mod control;
mod error;
mod faults;
mod form;
mod idempotency;
mod objects;
mod server;
mod webhooks;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use flint_shared::config::SandboxConfig;
use tokio::net::TcpListener;

pub use webhooks::signature_header;

/// The name of every test card the sandbox knows (`pm_card_{name}`, `tok_{name}`), so that
/// tests can check they cover all of them.
pub fn test_card_names() -> impl Iterator<Item = &'static str> {
    cards::CARDS.iter().map(|c| c.name)
}

/// Shared state of one running sandbox.
#[derive(Debug)]
pub(crate) struct App {
    config: SandboxConfig,
    /// SHA-256 of an API key → (account index, account).
    accounts: HashMap<[u8; 32], (usize, Arc<Mutex<account::Account>>)>,
    faults: faults::Faults,
    retention: Duration,
    webhooks: webhooks::Webhooks,
}

/// A sandbox bound to its address, ready to [`run`](Sandbox::run).
#[derive(Debug)]
pub struct Sandbox {
    listener: TcpListener,
    app: Arc<App>,
}

impl Sandbox {
    /// Binds `config.listen` (port 0 picks a free port) and prepares the accounts.
    pub async fn bind(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(config.listen).await?;
        let accounts = config
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                (
                    auth::digest(key.expose()),
                    (i, Arc::new(Mutex::new(account::Account::default()))),
                )
            })
            .collect();
        let app = App {
            faults: faults::Faults::new(config.faults.clone()),
            retention: Duration::from_secs(config.idempotency_retention_secs),
            webhooks: webhooks::Webhooks::start(
                config.webhook_urls.clone(),
                config.webhook_secret.clone(),
            ),
            accounts,
            config,
        };
        Ok(Sandbox {
            listener,
            app: Arc::new(app),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The base URL to give a Stripe client (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(addr = %self.local_addr(), "sandbox listening");
        server::serve(self.listener, router(self.app), shutdown).await;
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .nest("/__sandbox", control::routes())
        .fallback(api::handle)
        .with_state(app)
}
