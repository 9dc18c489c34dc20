//! The Redis settings Flint's guarantees rest on, checked when a process starts and by every
//! readiness probe.
//!
//! - `maxmemory-policy` must be `noeviction`: any other policy lets Redis delete keys when it
//!   is full, and a deleted job or payment record is a payment lost without a trace. Such a
//!   Redis is refused unless `[redis] allow_eviction = true` says the operator accepts that.
//! - Append-only persistence should be on: without it a Redis restart loses every payment
//!   accepted since the last snapshot (or all of them, with no snapshot). That is a warning,
//!   not a refusal, because a replicated Redis may rely on its replicas instead.
//!
//! - The URL must reach a primary: a replica refuses every write.
//!
//! On a Redis Cluster (`[redis] cluster_nodes`) every primary is asked and judged, each
//! message naming its node.
//!
//! The settings are read from `INFO`, which managed Redis services allow even where they
//! disable `CONFIG GET`.

use redis::aio::ConnectionLike;

use crate::redis_target::{RedisTarget, Timeouts, connect};

/// What the check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub maxmemory_policy: String,
    pub aof_enabled: bool,
    /// Not a replica (`role:slave` or `role:replica` in `INFO replication`): a replica refuses
    /// every write. A server that does not say its role is taken at its word.
    pub primary: bool,
}

/// What the check concludes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Why Flint must not run on this Redis; `None` when it may.
    pub refusal: Option<String>,
    /// Risks to log at start.
    pub warnings: Vec<String>,
}

/// Pure: judges `settings` under `[redis] allow_eviction`.
pub fn judge(settings: &RedisSettings, allow_eviction: bool) -> Verdict {
    let mut verdict = Verdict::default();
    if !settings.primary {
        verdict.refusal = Some(
            "the Redis at [redis] url is a replica: it refuses every write; point the url at the primary"
                .to_owned(),
        );
        return verdict;
    }
    if settings.maxmemory_policy != "noeviction" {
        let risk = format!(
            "Redis maxmemory-policy is {}: when Redis is full it deletes keys, and a deleted job or payment is lost without a trace",
            settings.maxmemory_policy
        );
        if allow_eviction {
            verdict.warnings.push(format!(
                "{risk} ([redis] allow_eviction = true accepts this)"
            ));
        } else {
            verdict.refusal = Some(format!(
                "{risk}; set maxmemory-policy noeviction on the Redis server, or set [redis] allow_eviction = true (FLINT__REDIS__ALLOW_EVICTION=true) to run anyway"
            ));
        }
    }
    if !settings.aof_enabled {
        verdict.warnings.push(
            "Redis append-only persistence is off (appendonly no): a Redis restart loses every payment and job written since the last snapshot; set appendonly yes"
                .to_owned(),
        );
    }
    verdict
}

/// One server's settings; `node` is its address on a cluster (`None` for a standalone server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub node: Option<String>,
    pub settings: RedisSettings,
}

/// Reads the settings with `INFO memory`, `INFO persistence` and `INFO replication`: of the
/// one server, or, on a cluster connection, of every primary (redis-rs sends a keyless `INFO`
/// to each primary and answers by node address). In cluster mode every primary is checked,
/// not only the one serving the charge slot: a failover or a resharding may move the slot to
/// any of them.
pub async fn read(conn: &mut impl ConnectionLike) -> redis::RedisResult<Vec<NodeSettings>> {
    let memory = info(conn, "memory").await?;
    let persistence = info(conn, "persistence").await?;
    let replication = info(conn, "replication").await?;
    memory
        .into_iter()
        .map(|(node, memory)| {
            let section = |all: &[(Option<String>, String)], name: &str| {
                all.iter()
                    .find(|(n, _)| *n == node)
                    .map(|(_, text)| text.clone())
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "a node answered one INFO but not another",
                            format!("{node:?}: no INFO {name}"),
                        ))
                    })
            };
            let persistence = section(&persistence, "persistence")?;
            let replication = section(&replication, "replication")?;
            Ok(NodeSettings {
                settings: RedisSettings {
                    maxmemory_policy: field(&memory, "maxmemory_policy")
                        .unwrap_or("unknown")
                        .to_owned(),
                    aof_enabled: field(&persistence, "aof_enabled") == Some("1"),
                    primary: is_primary(&replication),
                },
                node,
            })
        })
        .collect()
}

/// `INFO section`: one text from a server, or one per node (by address) from a cluster.
async fn info(
    conn: &mut impl ConnectionLike,
    section: &str,
) -> redis::RedisResult<Vec<(Option<String>, String)>> {
    let reply: redis::Value = redis::cmd("INFO").arg(section).query_async(conn).await?;
    match reply {
        redis::Value::Map(nodes) => nodes
            .into_iter()
            .map(|(node, text)| {
                let node: String = redis::from_redis_value(node)?;
                let text: String = redis::from_redis_value(text.extract_error()?)?;
                Ok((Some(node), text))
            })
            .collect(),
        single => Ok(vec![(None, redis::from_redis_value(single)?)]),
    }
}

/// Pure: judges every node's settings, each message naming its node on a cluster. The first
/// refusal found is the refusal.
pub fn judge_all(nodes: &[NodeSettings], allow_eviction: bool) -> Verdict {
    let mut all = Verdict::default();
    for NodeSettings { node, settings } in nodes {
        let verdict = match node {
            None => judge(settings, allow_eviction),
            // The cluster client routes writes by the cluster's slot map and follows MOVED, so
            // a node that answers as a replica is a stale map (after a manual failover, say),
            // not a misconfiguration: refusing would keep readiness down until a restart.
            Some(node) if !settings.primary => Verdict {
                refusal: None,
                warnings: vec![format!(
                    "Redis Cluster node {node} was asked as a primary but answers as a replica (a failover happened or is in progress)"
                )],
            },
            Some(node) => {
                let verdict = judge(settings, allow_eviction);
                let named = |m: String| format!("Redis Cluster node {node}: {m}");
                Verdict {
                    refusal: verdict.refusal.map(named),
                    warnings: verdict.warnings.into_iter().map(named).collect(),
                }
            }
        };
        if all.refusal.is_none() {
            all.refusal = verdict.refusal;
        }
        all.warnings.extend(verdict.warnings);
    }
    all
}

/// Whether `INFO replication` describes a server that takes writes: anything but a replica
/// (a server that does not say its role is taken at its word).
fn is_primary(replication: &str) -> bool {
    !matches!(field(replication, "role"), Some("slave" | "replica"))
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// Reads and judges: logs each warning, and returns the refusal as the error.
pub async fn check(conn: &mut impl ConnectionLike, allow_eviction: bool) -> Result<(), CheckError> {
    let nodes = read(conn).await.map_err(CheckError::Unreachable)?;
    let verdict = judge_all(&nodes, allow_eviction);
    for warning in &verdict.warnings {
        tracing::warn!("{warning}");
    }
    match verdict.refusal {
        Some(reason) => Err(CheckError::Unsafe(reason)),
        None => Ok(()),
    }
}

/// [`check`] on a new connection to `target`, as a process starts: the refusal, or why Redis
/// could not be asked (within a few seconds).
pub async fn check_at_start(target: &RedisTarget, allow_eviction: bool) -> Result<(), CheckError> {
    let timeout = std::time::Duration::from_secs(5);
    let unanswered = || {
        CheckError::Unreachable(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer within 5 s",
        )))
    };
    let quick = Timeouts {
        connect: std::time::Duration::from_secs(2),
        response: std::time::Duration::from_secs(2),
    };
    let mut conn = tokio::time::timeout(timeout, connect(target, quick))
        .await
        .map_err(|_| unanswered())?
        .map_err(CheckError::Unreachable)?;
    tokio::time::timeout(timeout, check(&mut conn, allow_eviction))
        .await
        .map_err(|_| unanswered())?
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read Redis's settings: {0}")]
    Unreachable(redis::RedisError),
    #[error("{0}")]
    Unsafe(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: &str, aof: bool) -> RedisSettings {
        RedisSettings {
            maxmemory_policy: policy.to_owned(),
            aof_enabled: aof,
            primary: true,
        }
    }

    #[test]
    fn a_replica_is_refused_whatever_else_is_allowed() {
        let replica = RedisSettings {
            primary: false,
            ..settings("noeviction", true)
        };
        for allow in [false, true] {
            let refusal = judge(&replica, allow).refusal.unwrap();
            assert!(refusal.contains("replica"), "{refusal}");
        }
    }

    #[test]
    fn only_noeviction_runs_unless_eviction_is_allowed() {
        for (policy, aof, allow, refused, warnings) in [
            ("noeviction", true, false, false, 0),
            ("noeviction", false, false, false, 1),
            ("allkeys-lru", true, false, true, 0),
            ("volatile-ttl", true, false, true, 0),
            ("allkeys-lru", true, true, false, 1),
            ("allkeys-lru", false, true, false, 2),
            ("allkeys-lru", false, false, true, 1),
        ] {
            let verdict = judge(&settings(policy, aof), allow);
            assert_eq!(
                verdict.refusal.is_some(),
                refused,
                "{policy} aof={aof} allow={allow}"
            );
            assert_eq!(
                verdict.warnings.len(),
                warnings,
                "{policy} aof={aof} allow={allow}"
            );
        }
        let refusal = judge(&settings("allkeys-lru", true), false)
            .refusal
            .unwrap();
        assert!(refusal.contains("allkeys-lru") && refusal.contains("allow_eviction"));
    }

    #[test]
    fn a_cluster_node_answering_as_a_replica_is_a_stale_map_not_a_refusal() {
        let replica = RedisSettings {
            primary: false,
            ..settings("noeviction", true)
        };
        let cluster = judge_all(
            &[NodeSettings {
                node: Some("127.0.0.1:7001".to_owned()),
                settings: replica.clone(),
            }],
            false,
        );
        assert!(cluster.refusal.is_none(), "{cluster:?}");
        assert_eq!(cluster.warnings.len(), 1, "{cluster:?}");
        let standalone = judge_all(
            &[NodeSettings {
                node: None,
                settings: replica,
            }],
            false,
        );
        assert!(standalone.refusal.is_some(), "{standalone:?}");
    }

    #[test]
    fn only_a_replica_is_not_a_primary() {
        for (info, primary) in [
            (
                "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n",
                true,
            ),
            (
                "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\n",
                false,
            ),
            ("# Replication\r\nrole:replica\r\n", false),
            ("# Replication\r\nrole:active-replica\r\n", true),
            ("# Replication\r\n", true),
        ] {
            assert_eq!(is_primary(info), primary, "{info:?}");
        }
    }

    #[test]
    fn fields_are_read_from_info_text() {
        let info = "# Memory\r\nused_memory:1\r\nmaxmemory_policy:noeviction\r\n";
        assert_eq!(field(info, "maxmemory_policy"), Some("noeviction"));
        assert_eq!(field(info, "maxmemory"), None);
    }
}
