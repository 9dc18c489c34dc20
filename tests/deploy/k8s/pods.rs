//! Pods: locked down, with pinned images and bounded resources, and probed on the port Flint
//! really listens on.

use serde_json::Value;

use super::config::effective_config;
use super::{ROLES, all, container_port, name, s};

#[test]
fn every_pod_runs_locked_down_with_pinned_images_and_bounded_resources() {
    for r in all() {
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
            let containers = pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(pod["initContainers"].as_array().into_iter().flatten());
            for c in containers {
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
    for r in all() {
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
