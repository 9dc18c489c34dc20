//! Flint's cluster connection on a real Redis Cluster: while one primary is lost and its
//! replica promoted, commands for the slots of the other primaries keep being answered by the
//! cluster (the connection is not dropped for one node); when every node is gone, commands fail at once
//! rather than wait, and once the cluster is back the same connection serves again.

use std::time::{Duration, Instant};

use flint_queue::{RedisTarget, Timeouts};
use flint_testkit::cluster::RedisCluster;

/// A key of each primary's slots: `(key, primary url)`.
fn key_per_primary(cluster: &RedisCluster) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for n in 0.. {
        let key = format!("k{n}");
        let primary = cluster.primary_for_key(&key);
        if !keys.iter().any(|(_, p)| *p == primary) {
            keys.push((key, primary));
        }
        if keys.len() == cluster.primaries().len() {
            return keys;
        }
    }
    unreachable!()
}

/// Sets `key` to `value` through `conn` until that is answered, by `deadline` at the latest.
async fn set_once_served(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    value: &str,
    deadline: Instant,
) {
    loop {
        let set: Result<(), _> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(conn)
            .await;
        if set.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{key} not served: {set:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_primary_leaves_the_other_slots_served_and_a_lost_cluster_fails_fast() {
    let mut cluster = RedisCluster::start();
    let mut conn = RedisTarget::Cluster(cluster.nodes())
        .connect(Timeouts::default())
        .await
        .unwrap();
    let keys = key_per_primary(&cluster);
    let (victim_key, victim) = keys[0].clone();
    let survivors = &keys[1..];

    // Writes to the survivors' slots throughout the victim's failover: every one answered.
    let failover = tokio::task::spawn_blocking(move || {
        let promoted = cluster.failover_to_replica_of(&victim);
        (cluster, promoted)
    });
    let mut writes = 0u32;
    while !failover.is_finished() {
        for (key, _) in survivors {
            let set: Result<(), _> = redis::cmd("SET")
                .arg(key)
                .arg(writes)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(()) => writes += 1,
                // The cluster itself refuses every slot while one is uncovered (Redis's
                // `cluster-require-full-coverage`): an answer, not a lost connection.
                Err(e)
                    if e.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown) => {}
                Err(e) => panic!("{key} after {writes} writes: {e:?}"),
            }
        }
        // Paced, not synchronised: a write every few ms for as long as the failover lasts.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut cluster, _promoted) = failover.await.unwrap();
    assert!(writes > 10, "writes went on during the failover: {writes}");
    // The victim's slot is served again, by its promoted replica.
    set_once_served(
        &mut conn,
        &victim_key,
        "1",
        Instant::now() + Duration::from_secs(20),
    )
    .await;

    // Every node gone: within a few seconds commands fail at once instead of waiting.
    tokio::task::block_in_place(|| cluster.kill_all());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        let get: Result<Option<String>, _> = redis::cmd("GET")
            .arg(&survivors[0].0)
            .query_async(&mut conn)
            .await;
        assert!(get.is_err(), "{get:?}");
        if started.elapsed() < Duration::from_millis(50) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a command to a lost cluster still took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back: the same connection serves again.
    tokio::task::block_in_place(|| cluster.start_all());
    set_once_served(
        &mut conn,
        &survivors[0].0,
        "back",
        Instant::now() + Duration::from_secs(30),
    )
    .await;
}

/// The only configured node is lost while the cluster, its replica promoted, serves on: the
/// connection keeps the nodes the cluster named, so it is not dropped for want of its seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_configured_node_leaves_a_healthy_cluster_served() {
    let mut cluster = RedisCluster::start();
    let keys = key_per_primary(&cluster);
    let seed = keys[0].1.clone();
    let mut conn = RedisTarget::Cluster(vec![seed.clone()])
        .connect(Timeouts::default())
        .await
        .unwrap();
    // The connection asks the cluster for its nodes when it is made; these writes only show
    // that it serves every primary's slots through the one seed.
    for (key, _) in &keys {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("before")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    tokio::task::block_in_place(|| {
        cluster.failover_to_replica_of(&seed);
    });
    // Every slot is served again, through a connection whose only configured node is dead.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (key, _) in &keys {
        set_once_served(&mut conn, key, "after", deadline).await;
    }
    // And stays served over several probes (a dropped connection could not be made again).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for (key, _) in &keys {
            let get: Result<Option<String>, _> =
                redis::cmd("GET").arg(key).query_async(&mut conn).await;
            assert_eq!(get.unwrap().as_deref(), Some("after"), "{key}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
