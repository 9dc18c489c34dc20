//! The container image. No Docker engine runs in the tests, so the Dockerfile is checked by
//! reading it: hadolint (pinned in tests/requirements.txt) for the general rules, and the
//! properties Flint depends on that hadolint does not know about. The production binary's
//! dependency tree is checked with `cargo tree`, which resolves without building.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One Dockerfile instruction: its keyword in capitals and the rest, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile, without comments and blank lines. Enough of Docker's
/// syntax for this repository's Dockerfile: no heredocs, no escape directive.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    out
}

/// The instructions from the last `FROM` on: the stage that becomes the image.
fn runtime_stage(all: &[Instruction]) -> &[Instruction] {
    let last_from = all
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("the Dockerfile has a FROM");
    &all[last_from..]
}

fn args_of<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// `KEY=VALUE` pairs of the stage's ENV instructions (values without spaces or quotes).
fn env_of(stage: &[Instruction]) -> Vec<(String, String)> {
    args_of(stage, "ENV")
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {pair}: expected KEY=VALUE"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn hadolint_reports_nothing_on_the_dockerfile() {
    // No rule is ignored: the Dockerfile meets all of them, apt pins included.
    let out = Command::new(flint_testkit::python::tool("hadolint"))
        .args(["--no-color", "Dockerfile"])
        .current_dir(workspace())
        .output()
        .expect("hadolint runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "hadolint ({}):\n{report}",
        out.status
    );
}

#[test]
fn dockerfile_builds_the_production_binary_and_runs_it_unprivileged() {
    let all = instructions(&read("Dockerfile"));
    let runtime = runtime_stage(&all);

    // The build: reproducible (--locked), without the benchmark baselines, release; and the
    // cargo-chef dependency layer built the same way, or the final build would not reuse it.
    let runs: Vec<&str> = args_of(&all, "RUN");
    let flags = [
        "--release",
        "--locked",
        "--no-default-features",
        "--bin flint",
    ];
    for command in ["cargo build ", "cargo chef cook "] {
        let run = runs
            .iter()
            .find(|r| r.contains(command))
            .unwrap_or_else(|| panic!("no RUN with `{command}`"));
        for flag in flags {
            assert!(run.contains(flag), "`{run}` lacks {flag}");
        }
    }

    // The user: numeric (so a platform can check it is not root without /etc/passwd), not 0.
    let user = *args_of(runtime, "USER")
        .last()
        .expect("the runtime stage sets USER");
    let ids: Vec<u32> = user
        .split(':')
        .map(|id| {
            id.parse()
                .unwrap_or_else(|_| panic!("USER {user} is not numeric"))
        })
        .collect();
    assert!(ids.iter().all(|&id| id != 0), "USER {user} is root");

    // The entrypoint: exec form (flint is PID 1 and gets SIGTERM itself), the binary that the
    // builder's output is copied to. No CMD: the role is always named.
    let entrypoint = *args_of(runtime, "ENTRYPOINT")
        .last()
        .expect("the runtime stage sets ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entrypoint)
        .unwrap_or_else(|_| panic!("ENTRYPOINT {entrypoint} is not exec form"));
    assert_eq!(argv, ["/usr/local/bin/flint"]);
    assert!(
        args_of(runtime, "COPY")
            .iter()
            .any(|c| c.starts_with("--from=builder ") && c.ends_with(" /usr/local/bin/flint")),
        "the runtime stage does not copy the built binary to /usr/local/bin/flint"
    );
    assert!(
        args_of(runtime, "CMD").is_empty(),
        "a CMD would pick a role"
    );

    // The configuration: production's overlay, read from the copied config/ directory.
    let env = env_of(runtime);
    let var = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(var("FLINT_ENV"), Some("production"));
    let config_dir = var("FLINT_CONFIG_DIR").expect("FLINT_CONFIG_DIR is set");
    let config_copy = format!("config/ {}/", config_dir.trim_end_matches('/'));
    assert!(
        args_of(runtime, "COPY").contains(&config_copy.as_str()),
        "the runtime stage lacks `COPY {config_copy}`"
    );

    // Reachable from outside the container: production.toml listens on all interfaces, on the
    // ports the image exposes.
    let production = read("config/production.toml");
    let listens: Vec<&str> = production
        .lines()
        .filter_map(|l| l.trim().strip_prefix("listen = "))
        .map(|v| v.trim_matches('"'))
        .collect();
    let exposed: Vec<String> = args_of(runtime, "EXPOSE")
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(|port| format!("0.0.0.0:{port}"))
        .collect();
    assert_eq!(
        listens, exposed,
        "production.toml's listeners against EXPOSE"
    );
}

#[test]
fn build_context_has_every_workspace_member_and_not_the_demo_tenant() {
    // .dockerignore is an allow-list: a workspace member missing from it breaks the build.
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.first(), Some(&"*"), "not an allow-list");
    let manifest = read("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("Cargo.toml lists the workspace members on one line");
    let members: Vec<&str> = serde_json::from_str(members).expect("members is a list of strings");
    let needed = ["Cargo.toml", "Cargo.lock", "src", "config"];
    for path in needed.iter().chain(&members) {
        assert!(
            lines.contains(&format!("!{path}").as_str()),
            ".dockerignore leaves out {path}, which the build reads"
        );
        assert!(workspace().join(path).exists(), "{path}");
    }
    // config/local.toml's demo tenant has a published API key.
    assert!(lines.contains(&"config/local.toml"));
}

/// The crates in `flint`'s normal dependency tree (no dev or build dependencies), from
/// `cargo tree`, which resolves from Cargo.lock without building anything.
fn production_dependencies(default_features: bool) -> Vec<String> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "flint",
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"));
    if !default_features {
        cargo.arg("--no-default-features");
    }
    let out = cargo.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_binary_does_not_contain_apalis_redis() {
    // What the Dockerfile builds (--no-default-features): no benchmark baseline.
    let image = production_dependencies(false);
    assert!(image.iter().any(|c| c == "flint-worker"), "{image:?}");
    assert!(!image.iter().any(|c| c == "apalis-redis"), "{image:?}");
    // The default build has it, so the check above can fail.
    assert!(
        production_dependencies(true)
            .iter()
            .any(|c| c == "apalis-redis")
    );
}
