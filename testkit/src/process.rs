//! Real child processes in tests: signals and waiting with a deadline.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends `signal` (`TERM`, `KILL`, …) to `child` with the system's `kill`.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill -{signal} {} failed",
        child.id()
    );
}

/// Waits for `child` to exit, polling, and panics with `what` after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM, then wait for the exit.
pub fn terminate(child: &mut Child, timeout: Duration) -> ExitStatus {
    signal(child, "TERM");
    wait_exit(child, timeout, "process after SIGTERM")
}
