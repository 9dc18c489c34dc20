//! The overlays. Production: its own namespace under the restricted Pod Security Standard, and
//! its own Prometheus address; the base leaves the namespace to its user. Cluster: production,
//! changed only where a Redis Cluster needs it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::config::effective_config;
use super::keda::streams;
use super::{BASE, CLUSTER, PRODUCTION, Rendered, name, render, s};

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

/// The Redis connection settings: one server's URL, or a cluster's nodes.
const REDIS_VARS: [&str; 2] = ["FLINT__REDIS__URL", "FLINT__REDIS__CLUSTER_NODES"];

/// A generated ConfigMap's name without its content hash.
fn unhashed(generated: &str) -> &str {
    generated
        .rsplit_once('-')
        .map_or(generated, |(stem, _)| stem)
}

/// An object's kind and name, a generated ConfigMap's without its hash.
fn id(o: &Value) -> (String, String) {
    let kind = s(o, "/kind");
    let object = s(o, "/metadata/name");
    let object = if kind == "ConfigMap" {
        unhashed(object)
    } else {
        object
    };
    (kind.to_owned(), object.to_owned())
}

/// A Deployment without its Redis connection setting and with its ConfigMap's hash removed:
/// what the cluster overlay leaves as production has it.
fn without_redis(deployment: &Value) -> Value {
    let mut d = deployment.clone();
    let containers = d
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .expect("containers");
    for c in containers {
        if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
            env.retain(|var| !REDIS_VARS.contains(&s(var, "/name")));
        }
        for from in c
            .get_mut("envFrom")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(map) = from.pointer_mut("/configMapRef/name") {
                let stem = unhashed(map.as_str().expect("a ConfigMap name")).to_owned();
                *map = Value::from(stem);
            }
        }
    }
    d
}

#[test]
fn the_cluster_overlay_is_production_on_a_redis_cluster() {
    let production = render(PRODUCTION);
    let cluster = render(CLUSTER);
    let ids = |r: &Rendered| -> BTreeSet<(String, String)> { r.objects.iter().map(id).collect() };
    assert_eq!(
        ids(&cluster),
        ids(&production),
        "the cluster overlay has production's objects, no more, no fewer"
    );
    let partitions = streams(&effective_config(&cluster, "worker"));
    let single = streams(&effective_config(&production, "worker"));
    assert_eq!(single.len(), 1, "production runs one partition");
    for p in &production.objects {
        let c = cluster
            .objects
            .iter()
            .find(|c| id(c) == id(p))
            .expect("the same object");
        let what = name(p);
        match s(p, "/kind") {
            // Production's settings, plus the partition count.
            "ConfigMap" => {
                let mut data = c["data"].as_object().expect("data").clone();
                assert!(
                    data.remove("FLINT__QUEUE__PARTITIONS").is_some(),
                    "{what}: the cluster overlay sets FLINT__QUEUE__PARTITIONS"
                );
                assert_eq!(
                    Value::from(data),
                    p["data"],
                    "{what}: otherwise production's settings"
                );
            }
            // Production's sizes, probes and everything else; only the Redis setting differs.
            "Deployment" => {
                assert_eq!(
                    without_redis(c),
                    without_redis(p),
                    "{what}: the cluster overlay changes only how the pods reach Redis"
                );
            }
            "ScaledObject" => {
                let (mut c_spec, mut p_spec) = (c["spec"].clone(), p["spec"].clone());
                let c_triggers = c_spec["triggers"].take();
                let p_triggers = p_spec["triggers"].take();
                assert_eq!(
                    (&c["metadata"], c_spec),
                    (&p["metadata"], p_spec),
                    "{what}: production's replica bounds and scaling behaviour"
                );
                let c_triggers = c_triggers.as_array().expect("triggers");
                let p_triggers = p_triggers.as_array().expect("triggers");
                let mut expected = 0;
                for t in p_triggers {
                    if t["type"] == "prometheus" {
                        // The gauge has a partition label; production's max covers them all.
                        assert!(
                            c_triggers.contains(t),
                            "{what}: production's Prometheus trigger, unchanged"
                        );
                        expected += 1;
                        continue;
                    }
                    let stream = s(t, "/metadata/stream");
                    let charges = stream == single[0].0;
                    assert!(
                        charges || stream == single[0].1,
                        "{what}: production trigger on {stream}"
                    );
                    // The same trigger, for each partition's stream, by KEDA's cluster scaler.
                    for (p, (charges_stream, webhooks_stream)) in partitions.iter().enumerate() {
                        let mut want = t.clone();
                        let trigger = format!("{}-p{p}", s(t, "/name"));
                        want["name"] = Value::from(trigger.as_str());
                        want["type"] = Value::from("redis-cluster-streams");
                        want["metadata"]["stream"] = Value::from(if charges {
                            charges_stream.as_str()
                        } else {
                            webhooks_stream.as_str()
                        });
                        // A worker shares its concurrency out between the partitions
                        // (rounded up), so each partition's targets are production's shared
                        // out likewise: a backlog spread over the partitions asks for as many
                        // workers as it would on one server.
                        for count in ["lagCount", "pendingEntriesCount"] {
                            if let Some(target) = t["metadata"].get(count) {
                                let target: u64 = target
                                    .as_str()
                                    .and_then(|v| v.parse().ok())
                                    .expect("a count");
                                want["metadata"][count] = Value::from(
                                    target.div_ceil(partitions.len() as u64).to_string(),
                                );
                            }
                        }
                        assert!(
                            c_triggers.contains(&want),
                            "{what}: trigger {trigger} is production's {} on partition {p}, its \
                             targets shared out: {want}",
                            t["name"]
                        );
                        expected += 1;
                    }
                }
                assert_eq!(
                    c_triggers.len(),
                    expected,
                    "{what}: production's triggers, one per partition, and no other"
                );
            }
            // KEDA's cluster scaler takes the nodes as `addresses`; the rest as production.
            "TriggerAuthentication" => {
                let mut want = p.clone();
                for reference in want["spec"]["secretTargetRef"]
                    .as_array_mut()
                    .expect("secretTargetRef")
                {
                    if reference["parameter"] == "address" {
                        *reference = serde_json::json!({"parameter": "addresses", "name": "flint-redis", "key": "addresses"});
                    }
                }
                assert_eq!(
                    c, &want,
                    "{what}: production's, reading `addresses` instead of `address`"
                );
            }
            _ => assert_eq!(c, p, "{what}: as production has it"),
        }
    }
}
