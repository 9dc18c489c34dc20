//! Schemas: the rendered manifests validate in strict mode against the Kubernetes schemas of
//! the oldest and the newest version they are for, custom resources aside.

use std::process::Command;

use super::{all, name, s};

/// The oldest Kubernetes the manifests are for (a preStop `sleep` needs 1.30) and the newest
/// whose schemas kubernetes-validate 1.37.0 bundles.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30", "1.37"];

/// The custom resources, by apiVersion and kind, that no bundled schema covers.
const CUSTOM_KINDS: [(&str, &str); 3] = [
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
];

#[test]
fn the_manifests_are_valid_kubernetes_in_strict_mode() {
    let validate = flint_testkit::python::tool("kubernetes-validate");
    for rendered in all() {
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
