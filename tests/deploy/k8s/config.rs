//! Configuration: the real binary accepts what the manifests give each container, the tenants
//! come from their Secret, the worker has time to stop, and no secret value is written down.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{CLUSTER, ROLES, Rendered, all, name, repo, s};

/// The tenants file as the Secret flint-tenants provides it (a made-up tenant).
const TENANTS_TOML: &str = r#"[[tenants]]
id = "example"
api_key_sha256 = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
processor_secret_key = "sk_test_example"
"#;

/// The Secret flint-redis's key cluster_nodes as the cluster overlay says to write it: an array
/// of node URLs (made up).
const CLUSTER_NODES: &str =
    r#"["redis://:made-up@redis-0.invalid:6379","redis://:made-up@redis-1.invalid:6379"]"#;

/// The configuration a container would run with, as `flint config check` prints it (TOML).
pub(super) struct Effective(String);

impl Effective {
    /// A scalar of `[section]` (`flint config check` prints one `key = value` a line).
    pub(super) fn get(&self, key: &str, section: &str) -> String {
        let mut current = "";
        for line in self.0.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                current = line.trim_matches(|c| c == '[' || c == ']');
            } else if current == section
                && let Some(value) = line.strip_prefix(key).and_then(|r| r.strip_prefix(" = "))
            {
                return value.trim_matches('"').to_owned();
            }
        }
        panic!("[{section}] {key} is not in:\n{}", self.0)
    }

    /// Whether `[redis] cluster_nodes` is non-empty, i.e. Flint runs on a Redis Cluster (it
    /// prints the nodes redacted, one a line after `cluster_nodes = [`, or `cluster_nodes = []`).
    pub(super) fn on_redis_cluster(&self) -> bool {
        let nodes = self.get("cluster_nodes", "redis");
        assert!(
            nodes.starts_with('['),
            "[redis] cluster_nodes = {nodes} is an array"
        );
        nodes != "[]"
    }

    pub(super) fn number(&self, key: &str, section: &str) -> u64 {
        let value = self.get(key, section);
        value
            .parse()
            .unwrap_or_else(|_| panic!("[{section}] {key} = {value} is a number"))
    }
}

/// Runs the real binary's `config check` with the container's environment (ConfigMaps by
/// envFrom, then env; Secrets and the downward API stand in with made-up values) and its
/// `--config` file, against this repository's config/ (what the image carries).
pub(super) fn effective_config(r: &Rendered, role: &str) -> Effective {
    let c = r.container(role);
    let what = format!("{}: {role}", r.dir);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: args"))
        .iter()
        .map(|a| a.as_str().expect("args are strings"))
        .collect();
    assert!(
        args.len() == 3 && args[0] == "--config" && args[2] == role,
        "{what}: args are [--config, <tenants file>, {role}], not {args:?}"
    );
    assert!(
        c.get("command").is_none(),
        "{what}: runs the image's entrypoint"
    );
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let map = s(from, "/configMapRef/name");
        let data = &r.one("ConfigMap", map)["data"];
        for (k, v) in data.as_object().into_iter().flatten() {
            env.insert(k.clone(), v.as_str().expect("ConfigMap data").to_owned());
        }
    }
    for var in c["env"].as_array().into_iter().flatten() {
        let key = s(var, "/name").to_owned();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_owned()
        } else if var.pointer("/valueFrom/secretKeyRef").is_some() {
            match key.as_str() {
                "FLINT__REDIS__URL" => "redis://:made-up@redis.invalid:6379".to_owned(),
                "FLINT__REDIS__CLUSTER_NODES" => CLUSTER_NODES.to_owned(),
                _ => panic!("{what}: an unexpected secret in env {key}"),
            }
        } else if var.pointer("/valueFrom/fieldRef").is_some() {
            // The downward API (which field: see the worker-name test).
            "flint-worker-5f8d6c7b9-x2x7q".to_owned()
        } else {
            panic!("{what}: env {key} has a source this test does not know");
        };
        env.insert(key, value);
    }
    let tenants = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(tenants.path(), TENANTS_TOML).expect("write the tenants file");
    let out = Command::new(env!("CARGO_BIN_EXE_flint"))
        .env_clear()
        .env("FLINT_CONFIG_DIR", repo().join("config"))
        // The image's default; the ConfigMap may say it again.
        .env("FLINT_ENV", "production")
        .envs(&env)
        .arg("--config")
        .arg(tenants.path())
        .args(["config", "check"])
        .output()
        .expect("flint runs");
    assert!(
        out.status.success(),
        "{what}: Flint rejects the configuration the manifests give it ({env:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Effective(String::from_utf8(out.stdout).expect("UTF-8"))
}

#[test]
fn flint_accepts_the_configuration_and_the_tenants_come_from_their_secret() {
    for r in all() {
        for role in ROLES {
            let what = format!("{}: {role}", r.dir);
            // Runs `flint config check` with this container's settings.
            let _ = effective_config(&r, role);
            let c = r.container(role);
            let file = Path::new(s(c, "/args/1"));
            let pod = &r.deployment(role)["spec"]["template"]["spec"];
            let mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| file.starts_with(s(m, "/mountPath")))
                .unwrap_or_else(|| panic!("{what}: no volume mounted at {}", file.display()));
            assert_eq!(
                mount["readOnly"], true,
                "{what}: the tenants mount is read-only"
            );
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{what}: no volume {}", mount["name"]));
            assert_eq!(
                volume.pointer("/secret/secretName"),
                Some(&Value::from("flint-tenants")),
                "{what}: {} comes from the Secret flint-tenants",
                file.display()
            );
            let relative = file
                .strip_prefix(s(mount, "/mountPath"))
                .expect("under the mount");
            let items = volume["secret"]["items"].as_array();
            let projected = items.is_none_or(|items| {
                items
                    .iter()
                    .any(|i| i["key"] == "tenants.toml" && Path::new(s(i, "/path")) == relative)
            });
            assert!(
                projected && relative == Path::new("tenants.toml"),
                "{what}: {} is the Secret's key tenants.toml",
                file.display()
            );
        }
    }
}

#[test]
fn the_worker_gets_more_time_to_stop_than_its_shutdown_grace_and_its_pod_name() {
    for r in all() {
        let config = effective_config(&r, "worker");
        let grace = config.number("shutdown_grace_secs", "worker");
        let pod = &r.deployment("worker")["spec"]["template"]["spec"];
        let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        // Some seconds on top: SIGTERM reaches the process, then leases are released and
        // connections closed after the grace.
        assert!(
            termination >= grace + 5,
            "{}: the worker's terminationGracePeriodSeconds ({termination}) must exceed \
             [worker] shutdown_grace_secs ({grace}) by at least 5 s, or SIGKILL cuts the grace",
            r.dir
        );
        let c = r.container("worker");
        let name = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "FLINT__WORKER__NAME")
            .unwrap_or_else(|| panic!("{}: the worker sets FLINT__WORKER__NAME", r.dir));
        assert_eq!(
            name.pointer("/valueFrom/fieldRef/fieldPath"),
            Some(&Value::from("metadata.name")),
            "{}: the worker's name is its pod's name (downward API)",
            r.dir
        );
    }
}

#[test]
fn no_secret_value_is_written_in_the_manifests() {
    let secretish = [
        "URL",
        "KEY",
        "SECRET",
        "PASSWORD",
        "TOKEN",
        "TENANTS",
        "CLUSTER_NODES",
    ];
    let leaks = [
        "sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", "BEGIN ",
    ];
    for r in all() {
        assert!(
            r.of_kind("Secret").is_empty(),
            "{}: Secrets are created by the operator, never rendered",
            r.dir
        );
        for leak in leaks {
            assert!(
                !r.yaml.contains(leak),
                "{}: the manifests contain {leak}…",
                r.dir
            );
        }
        for map in r.of_kind("ConfigMap") {
            for (k, v) in map["data"].as_object().into_iter().flatten() {
                let upper = k.to_uppercase();
                assert!(
                    !secretish.iter().any(|w| upper.contains(w)),
                    "{}: {} holds {k}, which is secret: use a Secret",
                    r.dir,
                    name(map)
                );
                let v = v.as_str().unwrap_or_default();
                assert!(
                    !(v.contains("://") && v.contains('@')),
                    "{}: {} {k} holds credentials",
                    r.dir,
                    name(map)
                );
            }
        }
        // Flint reaches one Redis server by URL, or a Redis Cluster by its nodes' URLs.
        let (redis_var, redis_key) = if r.dir == CLUSTER {
            ("FLINT__REDIS__CLUSTER_NODES", "cluster_nodes")
        } else {
            ("FLINT__REDIS__URL", "url")
        };
        for role in ROLES {
            let c = r.container(role);
            let mut redis_vars = Vec::new();
            for var in c["env"].as_array().into_iter().flatten() {
                let key = s(var, "/name");
                let from_secret = var.pointer("/valueFrom/secretKeyRef").is_some();
                if secretish.iter().any(|w| key.contains(w)) {
                    assert!(
                        from_secret,
                        "{}: {role} env {key} must come from a Secret (secretKeyRef)",
                        r.dir
                    );
                }
                if ["FLINT__REDIS__URL", "FLINT__REDIS__CLUSTER_NODES"].contains(&key) {
                    redis_vars.push(key);
                }
                if key == redis_var {
                    assert_eq!(
                        var.pointer("/valueFrom/secretKeyRef"),
                        Some(&serde_json::json!({"name": "flint-redis", "key": redis_key})),
                        "{}: {role} {redis_var} comes from the Secret flint-redis, key {redis_key}",
                        r.dir
                    );
                }
            }
            assert_eq!(
                redis_vars,
                [redis_var],
                "{}: {role} connects to Redis by {redis_var} only",
                r.dir
            );
            assert_eq!(
                effective_config(&r, role).on_redis_cluster(),
                r.dir == CLUSTER,
                "{}: {role} runs on a Redis Cluster in {CLUSTER} only",
                r.dir
            );
        }
    }
}
