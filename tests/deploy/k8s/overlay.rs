//! The production overlay: its own namespace under the restricted Pod Security Standard, and
//! its own Prometheus address; the base leaves the namespace to its user.

use serde_json::Value;

use super::{BASE, PRODUCTION, Rendered, name, render, s};

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
