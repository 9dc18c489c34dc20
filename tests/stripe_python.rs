//! Stripe's official Python library (stripe-python, pinned in tests/stripe_python/requirements.txt)
//! runs its main flows against the sandbox unchanged, with only its API base pointed at it.
//! Needs `python3` with that package installed (`.ci/run` installs it).

use std::process::Command;

use flint_testkit::sandbox::{KEY, spawn_sandbox};

#[tokio::test]
async fn stripe_python_main_flows_work_against_the_sandbox_unchanged() {
    let sandbox = spawn_sandbox().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/stripe_python/main_flows.py"
    );
    let probe = Command::new("python3")
        .args(["-c", "import stripe"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "python3 with the `stripe` package is required: pip install -r tests/stripe_python/requirements.txt"
        ),
    }
    let url = sandbox.base_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("SANDBOX_URL", url)
            .env("SANDBOX_KEY", KEY)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stripe-python failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("stripe-python main flows: ok"), "{stdout}");
}
