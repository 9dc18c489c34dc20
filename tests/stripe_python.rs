//! Stripe's official Python library (stripe-python, pinned in tests/requirements.txt)
//! runs its main flows against the sandbox unchanged, with only its API base pointed at it.
//! The test installs it into its virtualenv (`flint_testkit::python`).

use std::process::Command;

use flint_testkit::sandbox::{KEY, spawn_sandbox};

#[tokio::test]
async fn stripe_python_main_flows_work_against_the_sandbox_unchanged() {
    let sandbox = spawn_sandbox().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/stripe_python/main_flows.py"
    );
    let python = flint_testkit::python::python();
    let url = sandbox.base_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("SANDBOX_URL", url)
            .env("SANDBOX_KEY", KEY)
            .output()
    })
    .await
    .unwrap()
    .expect("the test virtualenv's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stripe-python failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("stripe-python main flows: ok"), "{stdout}");
}
