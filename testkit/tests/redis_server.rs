//! The harness's `redis-server` guard behaves as tests rely on.

use flint_testkit::redis::{Persistence, RedisServer};
use redis::Commands;

fn connect(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn a_started_server_answers_on_its_own_free_port_not_6379() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert!(a.is_up() && b.is_up());
    assert_ne!(a.port(), 6379);
    assert_ne!(a.port(), b.port());
    let mut ca = connect(&a);
    let mut cb = connect(&b);
    let _: () = ca.set("k", "a").unwrap();
    let seen: Option<String> = cb.get("k").unwrap();
    assert_eq!(seen, None, "servers share nothing");
}

#[test]
fn dropping_the_guard_kills_the_server() {
    let server = RedisServer::start();
    let port = server.port();
    drop(server);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers"
    );
}

#[test]
fn with_aof_a_killed_server_keeps_every_write_across_restart() {
    let mut server = RedisServer::start_with(Persistence::Aof);
    let mut conn = connect(&server);
    for i in 0..100 {
        let _: () = conn.set(format!("k{i}"), i).unwrap();
    }
    server.restart();
    let mut conn = connect(&server);
    let keys: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(keys, 100);
    let v: i64 = conn.get("k99").unwrap();
    assert_eq!(v, 99);
}

#[test]
fn without_persistence_a_restart_starts_empty() {
    let mut server = RedisServer::start();
    let _: () = connect(&server).set("k", 1).unwrap();
    server.kill();
    assert!(!server.is_up());
    server.start_again();
    let keys: usize = redis::cmd("DBSIZE").query(&mut connect(&server)).unwrap();
    assert_eq!(keys, 0);
}

#[test]
fn the_log_is_readable_for_failure_reports() {
    let server = RedisServer::start();
    assert!(
        server.log().contains("Ready to accept connections"),
        "{}",
        server.log()
    );
}
