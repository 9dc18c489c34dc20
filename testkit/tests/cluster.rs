//! The harness's Redis Cluster forms, routes keys as redis-rs's cluster client expects, and
//! survives a primary's SIGKILL by promoting its replica.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flint_testkit::cluster::RedisCluster;
use flint_testkit::poll_until;
use redis::AsyncCommands;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

async fn cluster_connection(cluster: &RedisCluster) -> ClusterConnection {
    ClusterClient::builder(cluster.nodes())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .retries(2)
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

fn direct_connection(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

#[tokio::test]
async fn the_cluster_forms_with_three_primaries_three_replicas_and_every_slot_covered() {
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster formed in {:?}", started.elapsed());

    let nodes = cluster.nodes();
    let primaries = cluster.primaries();
    let replicas = cluster.replicas();
    assert_eq!(nodes.len(), 6);
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let all: BTreeSet<&String> = primaries.iter().chain(&replicas).collect();
    assert_eq!(
        all,
        nodes.iter().collect(),
        "every node is a primary or a replica"
    );
    assert!(nodes.iter().all(|n| !n.ends_with(":6379")));

    for node in &nodes {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut direct_connection(node))
            .unwrap();
        for want in ["cluster_state:ok", "cluster_slots_assigned:16384"] {
            assert!(info.lines().any(|l| l == want), "{node}: {info}");
        }
    }
    let edge_owners: BTreeSet<String> = [0, 8191, 16383]
        .into_iter()
        .map(|slot| cluster.node_for_slot(slot))
        .collect();
    assert_eq!(edge_owners, primaries.iter().cloned().collect());
    let followers: BTreeSet<String> = primaries.iter().map(|p| cluster.replica_of(p)).collect();
    assert_eq!(
        followers,
        replicas.iter().cloned().collect(),
        "one replica per primary"
    );

    let mut conn = cluster_connection(&cluster).await;
    let _: () = conn.set("flint:greeting", "hello").await.unwrap();
    let seen: Option<String> = conn.get("flint:greeting").await.unwrap();
    assert_eq!(seen.as_deref(), Some("hello"));

    // Keys sharing a hash tag share a slot; different tags spread over the primaries.
    assert_eq!(
        cluster.key_slot("{job:1}:state"),
        cluster.key_slot("{job:1}:attempts")
    );
    let mut by_primary = std::collections::BTreeMap::new();
    for i in 0..100 {
        let key = format!("{{tag{i}}}:k");
        by_primary
            .entry(cluster.primary_for_key(&key))
            .or_insert(key);
        if by_primary.len() == 3 {
            break;
        }
    }
    assert_eq!(
        by_primary.len(),
        3,
        "hash tags all landed on {by_primary:?}"
    );
    for (primary, key) in &by_primary {
        let _: () = conn.set(key, primary).await.unwrap();
        // The key really lives on the primary the harness named: a plain connection there
        // reads it without a MOVED redirection.
        let there: Option<String> = redis::Commands::get(&mut direct_connection(primary), key)
            .unwrap_or_else(|e| panic!("{key} on {primary}: {e}"));
        assert_eq!(there.as_deref(), Some(primary.as_str()));
    }
}

#[tokio::test]
async fn a_killed_primary_is_replaced_by_its_replica_and_the_client_keeps_working() {
    let mut cluster = RedisCluster::start();
    let mut conn = cluster_connection(&cluster).await;
    let key = "{charge}:42";
    let primary = cluster.primary_for_key(key);
    let replica = cluster.replica_of(&primary);

    // Written on the primary and acknowledged by its replica, so it must survive the failover.
    let mut direct = direct_connection(&primary);
    let _: () = redis::Commands::set(&mut direct, key, "before").unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut direct)
        .unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the write");
    drop(direct);

    let killed_at = Instant::now();
    let promoted = cluster.failover_to_replica_of(&primary);
    eprintln!("replica promoted {:?} after SIGKILL", killed_at.elapsed());
    assert_eq!(promoted, replica);
    assert!(!cluster.is_up(&primary));
    assert_eq!(cluster.primary_for_key(key), promoted);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    assert!(primaries.contains(&promoted) && !primaries.contains(&primary));
    assert_eq!(
        cluster.replicas().len(),
        2,
        "the two other primaries keep theirs; the new one has none"
    );

    // The client learns the new topology on its own; retry until it does.
    let seen = poll_until(
        Duration::from_secs(20),
        "the client to read via the new primary",
        || {
            let mut conn = conn.clone();
            async move { conn.get::<_, Option<String>>(key).await.ok() }
        },
    )
    .await;
    assert_eq!(seen.as_deref(), Some("before"));
    for i in 0..10 {
        let key = format!("{{charge}}:{i}");
        let _: () = conn.set(&key, i).await.unwrap();
        let v: i64 = conn.get(&key).await.unwrap();
        assert_eq!(v, i);
    }
    let on_new_primary: i64 =
        redis::Commands::get(&mut direct_connection(&promoted), "{charge}:9").unwrap();
    assert_eq!(on_new_primary, 9);

    // Started again, the killed node rejoins as the new primary's replica, in sync.
    cluster.restart(&primary);
    assert_eq!(cluster.replica_of(&promoted), primary);
    let mut direct = direct_connection(&promoted);
    let _: () = redis::Commands::set(&mut direct, "{charge}:after", 1).unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut direct)
        .unwrap();
    assert_eq!(acked, 1, "the rejoined node acknowledges writes");
}
