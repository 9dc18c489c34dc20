//! A real `redis-server` per test.
//!
//! The port comes from binding port 0 and releasing it; another process could take it in
//! between (the same race redis-rs's own harness accepts), so a start that fails is retried on
//! a fresh port. Readiness is a `PING` answered `+PONG`, polled with a deadline.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the server keeps data across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: a restart starts empty.
    None,
    /// Append-only file, fsync on every write: a kill -9 and restart keeps every write.
    Aof,
}

#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    persistence: Persistence,
}

impl RedisServer {
    /// A fresh server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(Persistence::None)
    }

    pub fn start_with(persistence: Persistence) -> RedisServer {
        let mut dir = tempfile::tempdir().expect("a temp dir for redis-server");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                persistence,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let aof = self.persistence == Persistence::Aof;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                if aof { "yes" } else { "no" },
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (is it installed and on PATH?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "redis-server exited with {status}; log:\n{}",
                    self.log()
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "no PONG within {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection to the server, for a test to look at or change its keys.
    pub async fn connect(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The server process's id while it runs (to `SIGSTOP` it, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A second server replicating `primary`, returned once it streams `primary`'s writes.
    pub async fn start_replica_of(primary: &RedisServer) -> RedisServer {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg("0")
            .query_async(&mut async_conn(primary).await)
            .await
            .unwrap();
        let replica = RedisServer::start();
        let () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.port())
            .query_async(&mut async_conn(&replica).await)
            .await
            .unwrap();
        crate::poll_until(
            Duration::from_secs(10),
            "the replica to be connected",
            || async {
                let (p, r) = (
                    info(primary, "replication").await,
                    info(&replica, "replication").await,
                );
                (p.contains("connected_slaves:1")
                    && p.contains("state=online")
                    && r.contains("master_link_status:up"))
                .then_some(())
            },
        )
        .await;
        // Listed and linked is not yet streaming: after a diskless sync the primary holds the
        // stream back until the replica's first acknowledgement (up to a second). A write seen on
        // the replica says it streams.
        let () = redis::cmd("SET")
            .arg("test:replica-probe")
            .arg(replica.port())
            .query_async(&mut async_conn(primary).await)
            .await
            .unwrap();
        crate::poll_until(
            Duration::from_secs(10),
            "the replica to stream writes",
            || async {
                let seen: Option<u16> = redis::cmd("GET")
                    .arg("test:replica-probe")
                    .query_async(&mut async_conn(&replica).await)
                    .await
                    .unwrap();
                (seen == Some(replica.port())).then_some(())
            },
        )
        .await;
        replica
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Whether the server answers `PING` right now.
    pub fn is_up(&self) -> bool {
        ping(self.port)
    }

    /// SIGKILL, as a crash or an OOM kill would. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and directory (with AOF, the
    /// data comes back).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart on port {}: {e}", self.port);
        }
    }

    /// Starts a killed server again on the same port and directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(e) = self.spawn() {
            panic!(
                "redis-server did not start again on port {}: {e}",
                self.port
            );
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server on port {} log ---\n{}\n--- end of log ---",
                self.port,
                self.log()
            );
        }
        self.kill();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding port 0 on loopback")
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(stream.read_exact(&mut reply), Ok(())) && &reply == b"+PONG\r\n"
}

async fn async_conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn info(server: &RedisServer, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut async_conn(server).await)
        .await
        .unwrap()
}
