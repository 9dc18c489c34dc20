//! Schemathesis (pinned in tests/requirements.txt) generates requests from the
//! enqueuer's own `/openapi.json` — valid, invalid and stateful sequences — and none may get
//! a 5xx. The test installs it into its virtualenv (`flint_testkit::python`).

use std::process::Command;

use flint_enqueuer::Application;
use flint_shared::config::{Config, Secret, TenantConfig};
use flint_testkit::redis::RedisServer;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn schemathesis_finds_no_server_error_in_the_api() {
    let st = flint_testkit::python::tool("st");
    let redis = RedisServer::start();
    let mut config = Config::default();
    config.redis.url = Secret::new(redis.url());
    config.enqueuer.listen = "127.0.0.1:0".parse().unwrap();
    config.enqueuer.rate_limit_per_second = 100_000;
    config.enqueuer.rate_limit_burst = 100_000;
    config.tenants = vec![TenantConfig {
        id: "fuzz".into(),
        api_key_sha256: hex::encode(Sha256::digest(b"fuzz-key")),
        processor_secret_key: Secret::new("sk_test_fuzz"),
    }];
    let app = Application::build(&config).await.unwrap();
    let schema = format!("http://{}/openapi.json", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args([
                "run",
                &schema,
                "--header",
                "Authorization: Bearer fuzz-key",
                "--checks",
                "not_a_server_error",
            ])
            .args(["--max-examples", "40", "--seed", "20261126", "--no-color"])
            .output()
    })
    .await
    .unwrap()
    .expect("st runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
