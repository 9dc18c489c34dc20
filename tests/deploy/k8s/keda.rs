//! The worker's autoscaling through KEDA: a ScaledObject whose triggers read the queue's real
//! Redis streams and the age of its oldest ready job, checked against the fields KEDA defines.

use std::collections::BTreeSet;

use super::config::{Effective, effective_config};
use super::{all, assert_keys_within, s};

/// Metadata KEDA's redis-streams scaler reads besides the stream's (pkg/scalers/
/// redis_streams_scaler.go, redis_scaler.go): one server, and its database.
const REDIS_STREAMS_CONNECTION: &[&str] = &[
    "address",
    "host",
    "port",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
    "databaseIndex",
];

/// What KEDA's redis-cluster-streams scaler reads instead: the nodes as `addresses` (or `hosts`
/// and `ports`) (redis_scaler.go, parseRedisClusterAddress), and no database index (a cluster
/// has only database 0).
const REDIS_CLUSTER_STREAMS_CONNECTION: &[&str] = &[
    "addresses",
    "hosts",
    "ports",
    "addressesFromEnv",
    "hostsFromEnv",
    "portsFromEnv",
];

/// Metadata both Redis stream scalers read: credentials, TLS and the stream's own.
const STREAM_METADATA: &[&str] = &[
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

/// Each partition's charge stream and webhook stream, in partition order, from Flint's own
/// queue layout for this configuration.
pub(super) fn streams(config: &Effective) -> Vec<(String, String)> {
    let queue = config.get("name", "queue");
    let webhooks = config.get("queue", "webhooks");
    let partitions = flint_shared::partition::Partitions::new(
        &queue,
        u16::try_from(config.number("partitions", "queue")).expect("a partition count"),
    );
    partitions
        .tags()
        .iter()
        .map(|tag| {
            (
                flint_queue::keys::Keys::of_partition(tag, &queue).stream,
                flint_queue::keys::Keys::in_slot(tag, &webhooks).stream,
            )
        })
        .collect()
}

#[test]
fn keda_scales_the_workers_on_the_charge_queue_and_its_age() {
    for r in all() {
        let config = effective_config(&r, "worker");
        let queue = config.get("name", "queue");
        let concurrency = config.number("concurrency", "worker");
        // Each partition's charge and webhook streams.
        let streams = streams(&config);
        let count = config.number("partitions", "queue");
        assert_eq!(
            streams.len(),
            usize::try_from(count).expect("a partition count"),
            "{}: one tag per partition",
            r.dir
        );
        // One Redis server, or a Redis Cluster (on which the work is spread over partitions).
        let cluster = config.on_redis_cluster();
        assert!(
            !cluster || count > 1,
            "{}: on a Redis Cluster, [queue] partitions spreads the queue over the primaries: \
             more than one",
            r.dir
        );
        let (redis_type, connection, address_param) = if cluster {
            (
                "redis-cluster-streams",
                REDIS_CLUSTER_STREAMS_CONNECTION,
                "addresses",
            )
        } else {
            ("redis-streams", REDIS_STREAMS_CONNECTION, "address")
        };
        let redis_metadata: Vec<&str> = connection.iter().chain(STREAM_METADATA).copied().collect();
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
        // KEDA's redis-streams scaler reads one server; on a Redis Cluster, its
        // redis-cluster-streams scaler finds the node that holds each stream.
        for t in triggers {
            let kind = s(t, "/type");
            assert!(
                kind == redis_type || kind == "prometheus",
                "{}: trigger {} is {kind}: Flint's Redis (cluster: {cluster}) takes {redis_type} \
                 triggers",
                r.dir,
                t["name"]
            );
        }
        let redis: Vec<_> = triggers
            .iter()
            .filter(|t| t["type"] == redis_type)
            .collect();
        for t in &redis {
            let md = &t["metadata"];
            assert_keys_within(md, &redis_metadata, &format!("{redis_type} metadata"));
            for literal in ["address", "host", "port", "addresses", "hosts", "ports"] {
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
                        address_param,
                        "username",
                        "password",
                        "tls",
                        "ca",
                        "cert",
                        "key"
                    ]
                    .contains(&s(reference, "/parameter")),
                    "{}: {reference} is a {redis_type} authentication parameter",
                    r.dir
                );
            }
            assert!(
                refs.iter().any(|x| x["parameter"] == address_param),
                "{}: the TriggerAuthentication provides Redis's {address_param}",
                r.dir
            );
        }
        // Per partition: a charges lag, a charges pending and a webhooks lag trigger (each is
        // found below), and nothing else.
        assert_eq!(
            redis.len(),
            3 * streams.len(),
            "{}: three {redis_type} triggers for each of the {} partitions",
            r.dir,
            streams.len()
        );
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
        for (charges_stream, webhooks_stream) in &streams {
            let lag = target(charges_stream, "lagCount").unwrap_or_else(|| {
                panic!(
                    "{}: a {redis_type} trigger on {charges_stream} (group {group}) scales on lagCount",
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
                        "{}: a {redis_type} trigger on {charges_stream} scales on pendingEntriesCount",
                        r.dir
                    )
                });
            assert!(
                pending["metadata"].get("lagCount").is_none(),
                "{}: with lagCount set KEDA ignores pendingEntriesCount",
                r.dir
            );
            let per_worker = target(charges_stream, "pendingEntriesCount").expect("pending");
            // A worker holds at most its share of `concurrency` in each partition's stream (it
            // shares it out between the partitions): a higher target could never add workers.
            let share = concurrency.div_ceil(streams.len() as u64);
            assert!(
                per_worker >= 1 && per_worker < share,
                "{}: pendingEntriesCount ({per_worker}) must be below a worker's share of \
                 [worker] concurrency in one partition ({share}) to ever scale up",
                r.dir
            );
            assert!(
                target(webhooks_stream, "lagCount").is_some(),
                "{}: a {redis_type} trigger on the webhook stream {webhooks_stream} scales on lagCount",
                r.dir
            );
        }
        for t in &redis {
            let stream = s(t, "/metadata/stream");
            assert!(
                streams
                    .iter()
                    .any(|(charges, webhooks)| stream == charges || stream == webhooks),
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
        // The gauge has one series per partition: max over them all is the oldest job's age.
        assert!(
            !query.contains("partition"),
            "{}: the Prometheus trigger reads every partition's age, not {query}",
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
