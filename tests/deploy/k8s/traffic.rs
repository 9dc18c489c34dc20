//! Availability, traffic and scaling: labels and selectors, disruption budgets, the Service,
//! the enqueuer's HPA, network policies, and the PodMonitor that scrapes both roles.

use std::collections::BTreeSet;

use serde_json::Value;

use super::config::effective_config;
use super::{ROLES, all, assert_keys_within, container_port, keys, name, s};

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

#[test]
fn labels_selectors_budgets_and_the_service_pick_the_right_pods() {
    for r in all() {
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
    for r in all() {
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
    for r in all() {
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
    for r in all() {
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
