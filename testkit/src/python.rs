//! The pinned Python tools the tests run (Stripe's and Standard Webhooks' official libraries,
//! schemathesis, hadolint, kubernetes-validate), installed by the tests themselves into a
//! virtualenv under the target directory, so that `cargo test` needs only `python3` (with its
//! `venv` module) on the machine.
//!
//! The environment is made once and remade when `tests/requirements.txt` changes (its text is
//! kept beside it as a stamp). A file lock makes test processes that run at once wait for one
//! installer instead of racing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const REQUIREMENTS: &str = include_str!("../../tests/requirements.txt");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace().join(p)
            }
        })
        .unwrap_or_else(|| workspace().join("target"))
}

/// The virtualenv's directory, made (or remade) on first use in this process.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = target_dir().join("python-env");
        std::fs::create_dir_all(target_dir()).expect("the target directory can be made");
        let lock = std::fs::File::create(target_dir().join("python-env.lock"))
            .expect("the lock file can be made");
        lock.lock().expect("the python-env lock");
        let stamp = dir.join("flint-requirements.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(REQUIREMENTS) {
            install(&dir);
            std::fs::write(&stamp, REQUIREMENTS).expect("the stamp can be written");
        }
        dir
    })
}

fn install(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(dir),
        "python3 -m venv (on Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(dir.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(workspace().join("tests/requirements.txt")),
        "pip install -r tests/requirements.txt into the test virtualenv",
    );
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The virtualenv's Python.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// A command the virtualenv installed (`st`, `hadolint`, `kubernetes-validate`).
pub fn tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{name} is not in the test virtualenv ({})",
        path.display()
    );
    path
}
