//! The Kubernetes manifests in `deploy/k8s`: the base, the production overlay and the Redis
//! Cluster overlay built on it, rendered with `kubectl kustomize` (kubectl must be installed;
//! v1.32+ bundles kustomize v5), validated in strict mode against the Kubernetes schemas with
//! `kubernetes-validate`, and then checked for what a schema cannot see: locked-down pods, probes
//! on the port Flint really listens on, a configuration the real binary accepts, no secret
//! values, and autoscaling on the queue's real Redis keys (on a cluster, every partition's).
//!
//! Custom resources (KEDA's ScaledObject and TriggerAuthentication, the Prometheus Operator's
//! PodMonitor) are not schema-validated: `kubernetes-validate` bundles only Kubernetes' own
//! schemas, and no package in a registry the tests install from ships these CRDs' JSON schemas
//! (the only Python packages with their types, cloudcoil-models-keda and
//! cloudcoil-models-prometheus-operator, are generated Pydantic classes that ignore unknown
//! fields, and their current releases need Python 3.14). Instead the tests below check their
//! fields against the names the CRDs and KEDA's scalers define, and their values against Flint.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

mod config;
mod keda;
mod overlay;
mod pods;
mod schemas;
mod traffic;

const BASE: &str = "deploy/k8s/base";
const PRODUCTION: &str = "deploy/k8s/overlays/production";
/// Production on a Redis Cluster, with the charge path split into partitions.
const CLUSTER: &str = "deploy/k8s/overlays/cluster";
const DIRS: [&str; 3] = [BASE, PRODUCTION, CLUSTER];

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

/// Every kustomization in [`DIRS`], rendered.
fn all() -> Vec<Rendered> {
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
