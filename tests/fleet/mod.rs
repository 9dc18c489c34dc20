//! Shared setup of the tests that run real `flint worker` processes: the API in-process with
//! one tenant whose processor account is the sandbox's, a worker configuration file, and
//! worker processes started and awaited.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_testkit::redis::RedisServer;
use flint_testkit::sandbox::KEY;
use sha2::{Digest, Sha256};

pub const FLINT: &str = env!("CARGO_BIN_EXE_flint");

/// The API on a free port for tenant `acme` (API key `api_key`, processor key the sandbox's),
/// its own rate limit lifted. Returns its base URL.
pub async fn api(redis: &RedisServer, api_key: &str) -> String {
    let mut config = Config::default();
    config.redis.url = Secret::new(redis.url());
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.enqueuer.rate_limit_per_second = 100_000;
    config.enqueuer.rate_limit_burst = 100_000;
    // Test receivers listen on plain http, on this machine.
    config.webhooks.allow_http = true;
    config.webhooks.allow_private_networks = true;
    config.tenants = vec![TenantConfig {
        id: "acme".into(),
        api_key_sha256: digest(api_key),
        processor_secret_key: Secret::new(KEY),
    }];
    let api = Application::build(&config).await.unwrap();
    let url = format!("http://{}", api.local_addr());
    tokio::spawn(api.run(std::future::pending()));
    url
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Writes a worker configuration into `dir`: Redis, the sandbox as processor, the same tenant
/// as [`api`], plus extra `[worker]` and `[processor]` lines.
pub fn worker_config(
    dir: &Path,
    redis: &RedisServer,
    sandbox_url: &str,
    api_key: &str,
    worker: &str,
    processor: &str,
) -> PathBuf {
    let file = dir.join("worker.toml");
    std::fs::write(
        &file,
        format!(
            "[redis]\nurl = \"{}\"\n[worker]\n{worker}\n[processor]\napi_base = \"{sandbox_url}\"\n{processor}\n\
             [[tenants]]\nid = \"acme\"\napi_key_sha256 = \"{}\"\nprocessor_secret_key = \"{KEY}\"\n",
            redis.url(),
            digest(api_key)
        ),
    )
    .unwrap();
    file
}

/// A `flint worker` process, killed when dropped if it is still running: a test that fails
/// midway leaves no worker behind to slow the tests after it.
pub struct Worker(Child);

impl std::ops::Deref for Worker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Where a worker's log goes: nowhere, unless `FLINT_TEST_WORKER_LOG` names a file, which the
/// workers then append to at `warn` (to find out why a test of real workers failed).
fn worker_log() -> (Stdio, &'static str) {
    match std::env::var_os("FLINT_TEST_WORKER_LOG") {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            (Stdio::from(file), "warn")
        }
        None => (Stdio::null(), "error"),
    }
}

/// A `flint worker` process, returned once it serves.
pub fn start_worker(config_file: &Path) -> Worker {
    start_worker_serving(config_file).0
}

/// A `flint worker` process, returned once it serves, with the base URL of its health and
/// metrics server.
pub fn start_worker_serving(config_file: &Path) -> (Worker, String) {
    let (log, level) = worker_log();
    let mut child = Command::new(FLINT)
        .arg("--config")
        .arg(config_file)
        .args(["worker", "--listen", "127.0.0.1:0"])
        .env("FLINT__LOG__LEVEL", level)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("flint worker"), "{line}");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (Worker(child), url)
}
