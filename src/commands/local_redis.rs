//! The Redis a benchmark runs against: a private `redis-server`, or (built with the
//! `bench-cluster` feature, as by default) a private Redis Cluster of three primaries and three
//! replicas on free ports, with one partition per primary.

use anyhow::bail;
use flint_shared::config::{Config, Secret};

use super::redis_child::RedisChild;

/// How the benchmark's Redis is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Standalone,
    Cluster,
}

impl Layout {
    pub(super) fn name(self) -> &'static str {
        match self {
            Layout::Standalone => "standalone",
            Layout::Cluster => "cluster",
        }
    }
}

/// Partitions on the local cluster: one per primary.
#[cfg(feature = "bench-cluster")]
const CLUSTER_PARTITIONS: u16 = 3;

#[derive(Debug)]
pub(super) enum LocalRedis {
    Standalone(RedisChild),
    #[cfg(feature = "bench-cluster")]
    Cluster(Box<flint_testkit::cluster::RedisCluster>),
}

impl LocalRedis {
    pub(super) async fn start(layout: Layout) -> anyhow::Result<LocalRedis> {
        match layout {
            Layout::Standalone => Ok(LocalRedis::Standalone(RedisChild::start()?)),
            #[cfg(feature = "bench-cluster")]
            Layout::Cluster => {
                // The harness panics, with the nodes' logs, when the cluster does not form.
                let cluster =
                    tokio::task::spawn_blocking(flint_testkit::cluster::RedisCluster::start)
                        .await
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "the local Redis Cluster did not form (redis-server and \
                                 redis-cli must be on PATH)"
                            )
                        })?;
                Ok(LocalRedis::Cluster(Box::new(cluster)))
            }
            #[cfg(not(feature = "bench-cluster"))]
            Layout::Cluster => {
                bail!(
                    "this build has no local Redis Cluster (built without the bench-cluster feature)"
                )
            }
        }
    }

    /// Points `config` at this Redis (on a cluster: its nodes, one partition per primary).
    pub(super) fn configure(&self, config: &mut Config) {
        match self {
            LocalRedis::Standalone(redis) => config.redis.url = Secret::new(redis.url()),
            #[cfg(feature = "bench-cluster")]
            LocalRedis::Cluster(cluster) => {
                config.redis.cluster_nodes = cluster.nodes().iter().map(Secret::new).collect();
                config.queue.partitions = CLUSTER_PARTITIONS;
            }
        }
    }

    /// The same as [`configure`](Self::configure), as a worker configuration file's
    /// `[redis]` and `[queue]` sections.
    pub(super) fn toml(&self) -> String {
        match self {
            LocalRedis::Standalone(redis) => format!("[redis]\nurl = \"{}\"\n", redis.url()),
            #[cfg(feature = "bench-cluster")]
            LocalRedis::Cluster(cluster) => {
                let nodes: Vec<String> =
                    cluster.nodes().iter().map(|n| format!("\"{n}\"")).collect();
                format!(
                    "[redis]\ncluster_nodes = [{}]\n[queue]\npartitions = {CLUSTER_PARTITIONS}\n",
                    nodes.join(", ")
                )
            }
        }
    }

    /// The URL of each primary (the one server, or each primary of the cluster).
    pub(super) fn primaries(&self) -> Vec<String> {
        match self {
            LocalRedis::Standalone(redis) => vec![redis.url()],
            #[cfg(feature = "bench-cluster")]
            LocalRedis::Cluster(cluster) => cluster.primaries(),
        }
    }

    /// The standalone server, for measurements that read one server's own figures.
    pub(super) fn standalone(&self) -> anyhow::Result<&RedisChild> {
        match self {
            LocalRedis::Standalone(redis) => Ok(redis),
            #[cfg(feature = "bench-cluster")]
            LocalRedis::Cluster(_) => bail!("this measurement needs a standalone Redis"),
        }
    }
}
