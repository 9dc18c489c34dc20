//! The Kubernetes manifests in `deploy/k8s`: the base and the production overlay, rendered with
//! `kubectl kustomize` (kubectl must be installed; v1.32+ bundles kustomize v5), validated in
//! strict mode against the Kubernetes schemas with `kubernetes-validate`, and then checked for
//! what a schema cannot see: locked-down pods, probes on the port Flint really listens on, a
//! configuration the real binary accepts, no secret values, and autoscaling on the queue's real
//! Redis keys.
//!
//! Custom resources (KEDA's ScaledObject and TriggerAuthentication, the Prometheus Operator's
//! PodMonitor) are not schema-validated: `kubernetes-validate` bundles only Kubernetes' own
//! schemas, and no package in a registry the tests install from ships these CRDs' JSON schemas
//! (the only Python packages with their types, cloudcoil-models-keda and
//! cloudcoil-models-prometheus-operator, are generated Pydantic classes that ignore unknown
//! fields, and their current releases need Python 3.14). Instead the tests below check their
//! fields against the names the CRDs and KEDA's scalers define, and their values against Flint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const BASE: &str = "deploy/k8s/base";
const PRODUCTION: &str = "deploy/k8s/overlays/production";
const DIRS: [&str; 2] = [BASE, PRODUCTION];

/// The oldest Kubernetes the manifests are for (a preStop `sleep` needs 1.30) and the newest
/// whose schemas kubernetes-validate 1.37.0 bundles.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30", "1.37"];

/// The custom resources, by apiVersion and kind, that no bundled schema covers.
const CUSTOM_KINDS: [(&str, &str); 3] = [
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
];

const ROLES: [&str; 2] = ["enqueuer", "worker"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One kustomization, rendered.
struct Rendered {
    dir: &'static str,
    yaml: String,
    objects: Vec<Value>,
}

fn render(dir: &'static str) -> Rendered {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`kubectl kustomize {dir}` cannot start ({e}): these tests need kubectl \
                 (v1.32 or later, which bundles kustomize v5) on the PATH"
            )
        });
    assert!(
        out.status.success(),
        "`kubectl kustomize {dir}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
    let objects = serde_norway::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).expect("kustomize prints valid YAML"))
        .filter(|v| !v.is_null())
        .collect::<Vec<_>>();
    assert!(!objects.is_empty(), "{dir} renders nothing");
    Rendered { dir, yaml, objects }
}

fn both() -> Vec<Rendered> {
    DIRS.into_iter().map(render).collect()
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {}", name(v)))
}

fn name(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn assert_keys_within(v: &Value, allowed: &[&str], what: &str) {
    let unknown: Vec<_> = keys(v)
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} has fields its CRD does not define: {unknown:?} (allowed: {allowed:?})"
    );
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} named {name}", self.dir))
    }

    /// The Deployment whose pods are the given role.
    fn deployment(&self, role: &str) -> &Value {
        let found: Vec<_> = self
            .of_kind("Deployment")
            .into_iter()
            .filter(|d| {
                d.pointer("/spec/template/metadata/labels/app.kubernetes.io~1component")
                    == Some(&Value::from(role))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: expected one Deployment with pods labelled app.kubernetes.io/component={role}",
            self.dir
        );
        found[0]
    }

    fn container<'a>(&'a self, role: &str) -> &'a Value {
        let containers = self.deployment(role)["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(
            containers.len(),
            1,
            "{}: the {role} pod runs one container",
            self.dir
        );
        &containers[0]
    }

    fn pod_labels(&self, role: &str) -> &Value {
        &self.deployment(role)["spec"]["template"]["metadata"]["labels"]
    }
}

/// Whether a Kubernetes label selector (matchLabels and matchExpressions) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    if selector.as_object().is_none_or(|o| o.is_empty()) {
        return true;
    }
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let value = label(s(e, "/key"));
            let values: Vec<_> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match s(e, "/operator") {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        });
    by_labels && by_expressions
}

/// The container port a probe or Service names (by name or number).
fn container_port(container: &Value, port: &Value) -> u64 {
    let ports = container["ports"].as_array().expect("container ports");
    match port {
        Value::Number(n) => {
            let n = n.as_u64().expect("a port number");
            assert!(
                ports.iter().any(|p| p["containerPort"] == n),
                "port {n} is not a port of container {}",
                container["name"]
            );
            n
        }
        Value::String(named) => ports
            .iter()
            .find(|p| p["name"] == named.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no port named {named} in container {}", container["name"])),
        other => panic!("a port is a number or a name, not {other}"),
    }
}

// --- Schemas ------------------------------------------------------------------------------

#[test]
fn the_manifests_are_valid_kubernetes_in_strict_mode() {
    let validate = flint_testkit::python::tool("kubernetes-validate");
    for rendered in both() {
        let file = tempfile::Builder::new()
            .prefix("flint-k8s-")
            .suffix(".yaml")
            .tempfile()
            .expect("a temporary file");
        std::fs::write(file.path(), &rendered.yaml).expect("write the rendered manifests");
        for version in KUBERNETES_VERSIONS {
            let out = Command::new(&validate)
                .args(["--strict", "--kubernetes-version", version])
                .arg(file.path())
                .output()
                .expect("kubernetes-validate runs");
            let report = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{} does not validate against Kubernetes {version} (strict):\n{report}{}",
                rendered.dir,
                String::from_utf8_lossy(&out.stderr)
            );
            // An unknown kind only warns: check that every object was really validated, and
            // that only the known custom resources were skipped.
            for object in &rendered.objects {
                let kind = s(object, "/kind");
                let api_version = s(object, "/apiVersion");
                let line = if CUSTOM_KINDS.contains(&(api_version, kind)) {
                    format!(
                        "WARN {} Couldn't find schema for kind {kind} with api version {api_version}",
                        file.path().display()
                    )
                } else {
                    format!(
                        "INFO {} passed for resource {}/{} against version {version}",
                        file.path().display(),
                        kind.to_lowercase(),
                        s(object, "/metadata/name")
                    )
                };
                assert!(
                    report.lines().any(|l| l.starts_with(&line)),
                    "{}: {} was not validated against Kubernetes {version} (expected `{line}`):\n{report}",
                    rendered.dir,
                    name(object)
                );
            }
            let unexpected: Vec<_> = report
                .lines()
                .filter(|l| !l.starts_with("INFO ") && !l.contains("Couldn't find schema"))
                .collect();
            assert!(
                unexpected.is_empty(),
                "{}: kubernetes-validate {version}: {unexpected:#?}",
                rendered.dir
            );
        }
    }
}

// --- Pods ---------------------------------------------------------------------------------

#[test]
fn every_pod_runs_locked_down_with_pinned_images_and_bounded_resources() {
    for r in both() {
        let accounts = r.of_kind("ServiceAccount");
        for role in ROLES {
            let deployment = r.deployment(role);
            let pod = &deployment["spec"]["template"]["spec"];
            let what = format!("{}: {}", r.dir, name(deployment));
            assert_eq!(
                pod["automountServiceAccountToken"], false,
                "{what}: no API token"
            );
            let account = pod["serviceAccountName"].as_str().unwrap_or("default");
            assert!(
                accounts.iter().any(|a| a["metadata"]["name"] == account
                    && a["automountServiceAccountToken"] == false),
                "{what}: runs as its own ServiceAccount ({account}) without a token"
            );
            let psc = &pod["securityContext"];
            assert_eq!(psc["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
            assert_eq!(psc["runAsUser"], 65532, "{what}: pod runAsUser");
            assert_eq!(psc["runAsGroup"], 65532, "{what}: pod runAsGroup");
            assert_eq!(
                psc.pointer("/seccompProfile/type"),
                Some(&Value::from("RuntimeDefault")),
                "{what}: pod seccomp"
            );
            assert!(
                pod["hostNetwork"] != true && pod["hostPID"] != true && pod["hostIPC"] != true,
                "{what}: no host namespaces"
            );
            let all = pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(pod["initContainers"].as_array().into_iter().flatten());
            for c in all {
                let what = format!("{what} container {}", c["name"]);
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{what}: runAsNonRoot");
                assert_eq!(sc["runAsUser"], 65532, "{what}: runAsUser");
                assert_eq!(sc["runAsGroup"], 65532, "{what}: runAsGroup");
                assert_eq!(
                    sc["readOnlyRootFilesystem"], true,
                    "{what}: readOnlyRootFilesystem"
                );
                assert_eq!(
                    sc["allowPrivilegeEscalation"], false,
                    "{what}: allowPrivilegeEscalation"
                );
                assert_ne!(sc["privileged"], true, "{what}: privileged");
                assert_eq!(
                    sc.pointer("/capabilities/drop"),
                    Some(&serde_json::json!(["ALL"])),
                    "{what}: drops all capabilities"
                );
                assert!(
                    sc.pointer("/capabilities/add").is_none(),
                    "{what}: adds no capability"
                );
                assert_eq!(
                    sc.pointer("/seccompProfile/type"),
                    Some(&Value::from("RuntimeDefault")),
                    "{what}: seccomp"
                );
                for bound in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            c["resources"][bound][resource].is_string()
                                || c["resources"][bound][resource].is_number(),
                            "{what}: resources.{bound}.{resource} is set"
                        );
                    }
                }
                let image = s(c, "/image");
                let tag = image.rsplit_once(':').map(|(_, t)| t);
                assert!(
                    (tag.is_some_and(|t| !t.contains('/') && t != "latest"))
                        || image.contains("@sha256:"),
                    "{what}: image {image} is pinned to a version or digest"
                );
            }
        }
    }
}

#[test]
fn probes_check_health_and_readiness_on_the_port_flint_listens_on() {
    for r in both() {
        for role in ROLES {
            let c = r.container(role);
            let what = format!("{}: {role}", r.dir);
            let listen = effective_config(&r, role).get("listen", role);
            let port: u64 = listen
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or_else(|| panic!("{what}: [{role}] listen {listen} has a port"));
            assert!(
                listen.starts_with("0.0.0.0:") || listen.starts_with("[::]:"),
                "{what}: [{role}] listen {listen} must take connections from outside the pod"
            );
            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ] {
                let get = &c[probe]["httpGet"];
                assert_eq!(get["path"], path, "{what}: {probe} path");
                assert_eq!(
                    container_port(c, &get["port"]),
                    port,
                    "{what}: {probe} port is the one [{role}] listen ({listen}) binds"
                );
            }
        }
    }
}

// --- Configuration ------------------------------------------------------------------------

/// The tenants file as the Secret flint-tenants provides it (a made-up tenant).
const TENANTS_TOML: &str = r#"[[tenants]]
id = "example"
api_key_sha256 = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
processor_secret_key = "sk_test_example"
"#;

/// The configuration a container would run with, as `flint config check` prints it (TOML).
struct Effective(String);

impl Effective {
    /// A scalar of `[section]` (`flint config check` prints one `key = value` a line).
    fn get(&self, key: &str, section: &str) -> String {
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

    fn number(&self, key: &str, section: &str) -> u64 {
        let value = self.get(key, section);
        value
            .parse()
            .unwrap_or_else(|_| panic!("[{section}] {key} = {value} is a number"))
    }
}

/// Runs the real binary's `config check` with the container's environment (ConfigMaps by
/// envFrom, then env; Secrets and the downward API stand in with made-up values) and its
/// `--config` file, against this repository's config/ (what the image carries).
fn effective_config(r: &Rendered, role: &str) -> Effective {
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
            assert_eq!(key, "FLINT__REDIS__URL", "{what}: an unexpected secret");
            "redis://:made-up@redis.invalid:6379".to_owned()
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
    for r in both() {
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
    for r in both() {
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
    let secretish = ["URL", "KEY", "SECRET", "PASSWORD", "TOKEN", "TENANTS"];
    let leaks = [
        "sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", "BEGIN ",
    ];
    for r in both() {
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
        for role in ROLES {
            let c = r.container(role);
            let mut redis_url = false;
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
                if key == "FLINT__REDIS__URL" {
                    redis_url = true;
                    assert_eq!(
                        var.pointer("/valueFrom/secretKeyRef"),
                        Some(&serde_json::json!({"name": "flint-redis", "key": "url"})),
                        "{}: {role} FLINT__REDIS__URL comes from the Secret flint-redis, key url",
                        r.dir
                    );
                }
            }
            assert!(redis_url, "{}: {role} sets FLINT__REDIS__URL", r.dir);
        }
    }
}

// --- Availability, traffic and scaling ----------------------------------------------------

#[test]
fn labels_selectors_budgets_and_the_service_pick_the_right_pods() {
    for r in both() {
        for object in &r.objects {
            assert_eq!(
                object.pointer("/metadata/labels/app.kubernetes.io~1name"),
                Some(&Value::from("flint")),
                "{}: {} carries app.kubernetes.io/name=flint",
                r.dir,
                name(object)
            );
        }
        for role in ROLES {
            let d = r.deployment(role);
            let labels = r.pod_labels(role);
            assert_eq!(labels["app.kubernetes.io/name"], "flint");
            assert!(
                selects(&d["spec"]["selector"], labels),
                "{}: {} selects its own pods",
                r.dir,
                name(d)
            );
            let other = r.pod_labels(ROLES.iter().find(|o| **o != role).expect("two roles"));
            assert!(
                !selects(&d["spec"]["selector"], other),
                "{}: {} must not select the other role's pods",
                r.dir,
                name(d)
            );
            let budgets: Vec<_> = r
                .of_kind("PodDisruptionBudget")
                .into_iter()
                .filter(|p| selects(&p["spec"]["selector"], labels))
                .collect();
            assert_eq!(
                budgets.len(),
                1,
                "{}: one PodDisruptionBudget covers the {role} pods",
                r.dir
            );
            let budget = budgets[0];
            assert!(
                !selects(&budget["spec"]["selector"], other),
                "{}: {} covers one role only",
                r.dir,
                name(budget)
            );
            let allows_eviction = budget["spec"]["maxUnavailable"].as_u64().unwrap_or(0) >= 1
                || budget["spec"]["maxUnavailable"]
                    .as_str()
                    .is_some_and(|p| p != "0%");
            assert!(
                allows_eviction,
                "{}: {} lets a drain evict pods (maxUnavailable ≥ 1)",
                r.dir,
                name(budget)
            );
        }
        let services = r.of_kind("Service");
        assert_eq!(services.len(), 1, "{}: one Service, the API's", r.dir);
        let service = services[0];
        // A Service's selector is plain labels, and an empty one selects nothing.
        assert!(
            keys(&service["spec"]["selector"]).contains("app.kubernetes.io/component"),
            "{}: the Service selects by component",
            r.dir
        );
        let selector = serde_json::json!({ "matchLabels": service["spec"]["selector"] });
        assert!(
            selects(&selector, r.pod_labels("enqueuer"))
                && !selects(&selector, r.pod_labels("worker")),
            "{}: the Service routes to enqueuers only",
            r.dir
        );
        let enqueuer = r.container("enqueuer");
        for port in service["spec"]["ports"].as_array().expect("ports") {
            container_port(enqueuer, &port["targetPort"]);
        }
    }
}

#[test]
fn the_enqueuer_scales_on_cpu_and_the_worker_only_through_keda() {
    for r in both() {
        let hpas = r.of_kind("HorizontalPodAutoscaler");
        assert_eq!(
            hpas.len(),
            1,
            "{}: one HPA, the enqueuer's (KEDA makes the worker's)",
            r.dir
        );
        let hpa = hpas[0];
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        assert_eq!(
            hpa["spec"]["scaleTargetRef"],
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": r.deployment("enqueuer")["metadata"]["name"]}),
            "{}: the HPA scales the enqueuer",
            r.dir
        );
        let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1);
        let max = hpa["spec"]["maxReplicas"].as_u64().expect("maxReplicas");
        assert!(
            min >= 2 && max >= min,
            "{}: the API runs at least 2 replicas",
            r.dir
        );
        assert!(
            hpa["spec"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu"),
            "{}: the enqueuer scales on CPU",
            r.dir
        );
        for role in ROLES {
            assert!(
                r.deployment(role)["spec"].get("replicas").is_none(),
                "{}: the {role} Deployment leaves replicas to its autoscaler",
                r.dir
            );
        }
    }
}

#[test]
fn network_policies_let_each_role_reach_only_what_it_needs() {
    for r in both() {
        let policies = r.of_kind("NetworkPolicy");
        for role in ROLES {
            let labels = r.pod_labels(role);
            let mine: Vec<_> = policies
                .iter()
                .filter(|p| selects(&p["spec"]["podSelector"], labels))
                .collect();
            assert_eq!(
                mine.len(),
                1,
                "{}: one NetworkPolicy selects the {role} pods",
                r.dir
            );
            let spec = &mine[0]["spec"];
            let types = spec["policyTypes"].as_array().expect("policyTypes");
            assert!(
                types.contains(&"Ingress".into()) && types.contains(&"Egress".into()),
                "{}: the {role} policy restricts both directions",
                r.dir
            );
            let port = effective_config(&r, role)
                .get("listen", role)
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u64>().ok())
                .expect("a listen port");
            let rules = |direction: &str| -> Vec<&Value> {
                spec[direction].as_array().into_iter().flatten().collect()
            };
            // (protocol, port, destination) of every rule; a rule without ports allows them all.
            let opened = |direction: &str| -> Vec<(String, u64, Option<&Value>)> {
                rules(direction)
                    .into_iter()
                    .flat_map(|rule| {
                        let ports = rule["ports"].as_array();
                        assert!(
                            ports.is_some_and(|p| !p.is_empty()),
                            "{}: a {role} {direction} rule opens every port: {rule}",
                            r.dir
                        );
                        ports.into_iter().flatten().map(move |p| {
                            (
                                p["protocol"].as_str().unwrap_or("TCP").to_owned(),
                                p["port"].as_u64().expect("numbered ports"),
                                rule.get(if direction == "egress" { "to" } else { "from" }),
                            )
                        })
                    })
                    .collect()
            };
            let ingress: BTreeSet<_> = opened("ingress")
                .into_iter()
                .map(|(proto, port, _)| (proto, port))
                .collect();
            assert_eq!(
                ingress,
                BTreeSet::from([("TCP".to_owned(), port)]),
                "{}: {role} pods take connections on their listen port {port} only",
                r.dir
            );
            let egress = opened("egress");
            let egress_ports: BTreeSet<_> = egress
                .iter()
                .map(|(proto, port, _)| (proto.as_str(), *port))
                .collect();
            let mut expected = BTreeSet::from([("TCP", 6379), ("UDP", 53), ("TCP", 53)]);
            if role == "worker" {
                // The processor (Stripe) and tenants' webhook endpoints, over https.
                expected.insert(("TCP", 443));
            }
            assert_eq!(
                egress_ports,
                expected,
                "{}: {role} egress: Redis and DNS{}",
                r.dir,
                if role == "worker" {
                    ", and https"
                } else {
                    " only"
                }
            );
            for (_, port, to) in &egress {
                if *port != 443 {
                    continue;
                }
                // https goes to the public internet only, never to private, link-local (cloud
                // metadata) or loopback addresses.
                let blocks: Vec<_> = to
                    .and_then(Value::as_array)
                    .expect("https egress names its destinations")
                    .iter()
                    .map(|peer| {
                        assert!(
                            peer.get("podSelector").is_none()
                                && peer.get("namespaceSelector").is_none(),
                            "{}: https egress goes outside the cluster only",
                            r.dir
                        );
                        &peer["ipBlock"]
                    })
                    .collect();
                for block in blocks {
                    let except: Vec<_> = block["except"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let required: &[&str] = if s(block, "/cidr").contains(':') {
                        &["fc00::/7", "fe80::/10", "::1/128"]
                    } else {
                        &[
                            "10.0.0.0/8",
                            "172.16.0.0/12",
                            "192.168.0.0/16",
                            "169.254.0.0/16",
                            "127.0.0.0/8",
                        ]
                    };
                    for cidr in required {
                        assert!(
                            except.contains(cidr),
                            "{}: worker https egress excludes {cidr}",
                            r.dir
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn prometheus_scrapes_both_roles() {
    for r in both() {
        let monitors = r.of_kind("PodMonitor");
        assert_eq!(monitors.len(), 1, "{}: one PodMonitor", r.dir);
        let m = monitors[0];
        assert_keys_within(
            &m["spec"],
            &[
                "selector",
                "namespaceSelector",
                "podMetricsEndpoints",
                "podTargetLabels",
                "jobLabel",
                "sampleLimit",
            ],
            "PodMonitor spec",
        );
        for role in ROLES {
            assert!(
                selects(&m["spec"]["selector"], r.pod_labels(role)),
                "{}: the PodMonitor selects the {role} pods",
                r.dir
            );
            let c = r.container(role);
            let scraped = m["spec"]["podMetricsEndpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| {
                    assert_keys_within(
                        e,
                        &[
                            "port",
                            "path",
                            "interval",
                            "scrapeTimeout",
                            "scheme",
                            "honorLabels",
                        ],
                        "PodMonitor endpoint",
                    );
                    e["path"] == "/metrics"
                        && c["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == e["port"])
                });
            assert!(
                scraped,
                "{}: the PodMonitor scrapes /metrics on a named port of the {role}",
                r.dir
            );
        }
    }
}

/// Metadata KEDA's redis-streams scaler reads (pkg/scalers/redis_streams_scaler.go,
/// redis_scaler.go).
const REDIS_STREAMS_METADATA: &[&str] = &[
    "address",
    "host",
    "port",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
];

/// Metadata KEDA's prometheus scaler reads.
const PROMETHEUS_METADATA: &[&str] = &[
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "timeout",
];

#[test]
fn keda_scales_the_workers_on_the_charge_queue_and_its_age() {
    for r in both() {
        let config = effective_config(&r, "worker");
        let queue = config.get("queue", "worker");
        let webhooks = config.get("queue", "webhooks");
        let concurrency = config.number("concurrency", "worker");
        let charges_stream = flint_queue::keys::Keys::new(&queue).stream;
        let webhooks_stream = flint_queue::keys::Keys::in_slot(&queue, &webhooks).stream;
        let group = flint_queue::keys::GROUP;

        let scaled = r.of_kind("ScaledObject");
        assert_eq!(scaled.len(), 1, "{}: one ScaledObject", r.dir);
        let so = scaled[0];
        assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
        let spec = &so["spec"];
        assert_keys_within(
            spec,
            &[
                "scaleTargetRef",
                "pollingInterval",
                "initialCooldownPeriod",
                "cooldownPeriod",
                "idleReplicaCount",
                "minReplicaCount",
                "maxReplicaCount",
                "advanced",
                "triggers",
                "fallback",
            ],
            "ScaledObject spec",
        );
        assert_eq!(
            spec["scaleTargetRef"],
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": r.deployment("worker")["metadata"]["name"]}),
            "{}: the ScaledObject scales the worker Deployment",
            r.dir
        );
        let min = spec["minReplicaCount"].as_u64().unwrap_or(0);
        let max = spec["maxReplicaCount"].as_u64().unwrap_or(100);
        assert!(
            min >= 1 && max >= min,
            "{}: at least one worker always runs (due retries, the sweeper, webhooks)",
            r.dir
        );
        assert!(
            spec.get("idleReplicaCount").is_none(),
            "{}: no idle scale-to-zero",
            r.dir
        );
        assert_keys_within(
            &spec["advanced"],
            &[
                "horizontalPodAutoscalerConfig",
                "restoreToOriginalReplicaCount",
                "scalingModifiers",
            ],
            "ScaledObject advanced",
        );
        let down = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
        assert!(
            down["stabilizationWindowSeconds"]
                .as_u64()
                .is_some_and(|s| s >= 120),
            "{}: scale-down waits out a stabilization window (≥ 120 s)",
            r.dir
        );
        let policies = down["policies"].as_array().expect("scale-down policies");
        assert!(
            !policies.is_empty()
                && policies.iter().all(|p| {
                    (p["type"] == "Pods" && p["value"].as_u64().is_some_and(|v| v <= 2))
                        || (p["type"] == "Percent" && p["value"].as_u64().is_some_and(|v| v <= 25))
                }),
            "{}: scale-down removes few workers at a time: {policies:?}",
            r.dir
        );

        let triggers = spec["triggers"].as_array().expect("triggers");
        let names: BTreeSet<_> = triggers.iter().map(|t| s(t, "/name")).collect();
        assert_eq!(
            names.len(),
            triggers.len(),
            "{}: trigger names are unique",
            r.dir
        );
        for t in triggers {
            assert_keys_within(
                t,
                &[
                    "type",
                    "name",
                    "useCachedMetrics",
                    "metadata",
                    "authenticationRef",
                    "metricType",
                ],
                "ScaledObject trigger",
            );
            for (k, v) in t["metadata"].as_object().expect("metadata") {
                // KEDA's metadata is map[string]string: an unquoted number is refused.
                assert!(v.is_string(), "{}: trigger metadata {k} is a string", r.dir);
            }
        }
        let redis: Vec<_> = triggers
            .iter()
            .filter(|t| t["type"] == "redis-streams")
            .collect();
        for t in &redis {
            let md = &t["metadata"];
            assert_keys_within(md, REDIS_STREAMS_METADATA, "redis-streams metadata");
            for literal in ["address", "host", "port"] {
                assert!(
                    md.get(literal).is_none(),
                    "{}: Redis's address comes from the TriggerAuthentication",
                    r.dir
                );
            }
            assert_eq!(md["consumerGroup"], group, "{}: the queue's group", r.dir);
            let auth = s(t, "/authenticationRef/name");
            let ta = r.one("TriggerAuthentication", auth);
            assert_keys_within(
                &ta["spec"],
                &["secretTargetRef"],
                "TriggerAuthentication spec",
            );
            let refs = ta["spec"]["secretTargetRef"].as_array().expect("refs");
            for reference in refs {
                assert_keys_within(reference, &["parameter", "name", "key"], "secretTargetRef");
                assert_eq!(
                    reference["name"], "flint-redis",
                    "{}: Redis's Secret",
                    r.dir
                );
                assert!(
                    [
                        "address", "username", "password", "tls", "ca", "cert", "key"
                    ]
                    .contains(&s(reference, "/parameter")),
                    "{}: {reference} is a redis-streams authentication parameter",
                    r.dir
                );
            }
            assert!(
                refs.iter().any(|x| x["parameter"] == "address"),
                "{}: the TriggerAuthentication provides Redis's address",
                r.dir
            );
        }
        let target = |stream: &str, field: &str| -> Option<u64> {
            redis
                .iter()
                .find(|t| t["metadata"]["stream"] == stream && t["metadata"].get(field).is_some())
                .map(|t| {
                    let v = s(t, &format!("/metadata/{field}"));
                    v.parse()
                        .unwrap_or_else(|_| panic!("{field} {v} is a count"))
                })
        };
        let lag = target(&charges_stream, "lagCount").unwrap_or_else(|| {
            panic!(
                "{}: a redis-streams trigger on {charges_stream} (group {group}) scales on lagCount",
                r.dir
            )
        });
        assert!(lag >= 1, "{}: lagCount", r.dir);
        assert!(
            redis
                .iter()
                .any(|t| t["metadata"]["stream"] == charges_stream.as_str()
                    && t["metadata"].get("lagCount").is_some()
                    && t["metadata"].get("activationLagCount").is_some()),
            "{}: the lag trigger sets activationLagCount",
            r.dir
        );
        // KEDA uses lagCount over pendingEntriesCount in one trigger: pending entries need a
        // trigger of their own.
        let pending = redis
            .iter()
            .find(|t| {
                t["metadata"]["stream"] == charges_stream.as_str()
                    && t["metadata"].get("pendingEntriesCount").is_some()
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: a redis-streams trigger on {charges_stream} scales on pendingEntriesCount",
                    r.dir
                )
            });
        assert!(
            pending["metadata"].get("lagCount").is_none(),
            "{}: with lagCount set KEDA ignores pendingEntriesCount",
            r.dir
        );
        let per_worker = target(&charges_stream, "pendingEntriesCount").expect("pending");
        // A worker holds at most `concurrency` jobs: a higher target could never add workers.
        assert!(
            per_worker >= 1 && per_worker < concurrency,
            "{}: pendingEntriesCount ({per_worker}) must be below [worker] concurrency \
             ({concurrency}) to ever scale up",
            r.dir
        );
        assert!(
            target(&webhooks_stream, "lagCount").is_some(),
            "{}: a redis-streams trigger on the webhook stream {webhooks_stream} scales on lagCount",
            r.dir
        );
        for t in &redis {
            let stream = s(t, "/metadata/stream");
            assert!(
                stream == charges_stream || stream == webhooks_stream,
                "{}: trigger on {stream}, which is not one of Flint's queues",
                r.dir
            );
        }

        let prometheus: Vec<_> = triggers
            .iter()
            .filter(|t| t["type"] == "prometheus")
            .collect();
        assert_eq!(
            prometheus.len(),
            1,
            "{}: one Prometheus trigger, on the oldest ready job's age",
            r.dir
        );
        let p = prometheus[0];
        assert_keys_within(&p["metadata"], PROMETHEUS_METADATA, "prometheus metadata");
        let query = s(p, "/metadata/query");
        assert!(
            query.starts_with("max(flint_queue_oldest_ready_age_seconds{")
                && query.contains(&format!("queue=\"{queue}\"")),
            "{}: the Prometheus trigger reads max(flint_queue_oldest_ready_age_seconds) of \
             queue {queue}, not {query}",
            r.dir
        );
        let address = s(p, "/metadata/serverAddress");
        assert!(
            address.starts_with("http://") || address.starts_with("https://"),
            "{}: serverAddress {address}",
            r.dir
        );
        let threshold: f64 = s(p, "/metadata/threshold")
            .parse()
            .expect("a numeric threshold");
        assert!(threshold > 0.0, "{}: threshold", r.dir);
        assert_eq!(
            p["metricType"], "Value",
            "{}: an age does not divide across replicas (metricType Value)",
            r.dir
        );
    }
}

#[test]
fn the_production_overlay_lives_in_its_own_namespace_and_the_base_in_none() {
    let base = render(BASE);
    for o in &base.objects {
        assert!(
            o.pointer("/metadata/namespace").is_none(),
            "the base leaves the namespace to its user: {}",
            name(o)
        );
    }
    let production = render(PRODUCTION);
    let namespaces = production.of_kind("Namespace");
    assert_eq!(namespaces.len(), 1, "production makes its namespace");
    let ns = s(namespaces[0], "/metadata/name");
    assert_eq!(
        namespaces[0].pointer("/metadata/labels/pod-security.kubernetes.io~1enforce"),
        Some(&Value::from("restricted")),
        "the namespace enforces the restricted Pod Security Standard"
    );
    for o in &production.objects {
        if o["kind"] != "Namespace" {
            assert_eq!(
                o.pointer("/metadata/namespace"),
                Some(&Value::from(ns)),
                "{} is in namespace {ns}",
                name(o)
            );
        }
    }
    let prometheus_address = |r: &Rendered| -> String {
        r.one("ScaledObject", "flint-worker")["spec"]["triggers"]
            .as_array()
            .expect("triggers")
            .iter()
            .find(|t| t["type"] == "prometheus")
            .map(|t| s(t, "/metadata/serverAddress").to_owned())
            .expect("a prometheus trigger")
    };
    assert_ne!(
        prometheus_address(&production),
        prometheus_address(&base),
        "production sets its own Prometheus address"
    );
}
