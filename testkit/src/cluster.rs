//! A real local Redis Cluster per test: three primaries and three replicas.
//!
//! Each node is a `redis-server --cluster-enabled yes` child on free ports (client port and an
//! explicit `--cluster-port` bus port) with its own temp dir, no persistence and a short node
//! timeout so failovers take seconds. `redis-cli --cluster create … --cluster-replicas 1` joins
//! them; the cluster is ready when every node says `cluster_state:ok` with all 16384 slots
//! assigned, sees three primaries and three replicas, and every replica's link to its primary
//! is up — all polled with a deadline. As with [`RedisServer`](crate::redis::RedisServer), ports
//! are picked by binding port 0 and releasing them, so a node that fails to start makes the
//! whole start retry on fresh ports. Nodes are killed on drop and their logs printed when the
//! test failed.
//!
//! Nodes are named by their url, `redis://127.0.0.1:PORT`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Milliseconds without an answer before a node is considered failing; small so a killed
/// primary's replica takes over within a few seconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

const NODES: usize = 6;
const SLOTS: usize = 16384;
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Node {
    child: Option<Child>,
    port: u16,
    bus_port: u16,
    dir: tempfile::TempDir,
}

impl Node {
    fn url(&self) -> String {
        url(self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        read_log(&self.log_path())
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--cluster-port", &self.bus_port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(self.dir.path().join("nodes.conf"))
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--appendonly", "no", "--save", ""])
            // Replicas sync at once instead of after the default 5 s wait for more replicas.
            .args(["--repl-diskless-sync-delay", "0"])
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
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            if matches!(command(self.port, &["PING"]), Ok(Reply::Text(ref s)) if s == "PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} (bus {}) exited with {status}; log:\n{}",
                    self.port,
                    self.bus_port,
                    self.log()
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {}: no PONG within {SPAWN_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Six `redis-server` nodes joined into one cluster: three primaries, one replica each.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// `redis-cli --cluster create` output, kept for failure reports.
    create_log: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until it is fully formed.
    pub fn start() -> RedisCluster {
        let mut last_error = String::new();
        for _ in 0..5 {
            let ports = free_ports(2 * NODES);
            let mut cluster = RedisCluster {
                nodes: ports
                    .chunks(2)
                    .map(|p| Node {
                        child: None,
                        port: p[0],
                        bus_port: p[1],
                        dir: tempfile::tempdir().expect("a temp dir for a cluster node"),
                    })
                    .collect(),
                create_log: tempfile::tempdir().expect("a temp dir for redis-cli"),
            };
            // A node that cannot start is most likely a port taken since it was picked: start
            // over on fresh ports.
            if let Err(e) = cluster.nodes.iter_mut().try_for_each(Node::spawn) {
                last_error = e;
                continue;
            }
            // From here on a failure is not a port race: panicking drops the cluster, which
            // prints every node's log.
            cluster.create();
            if let Err(e) = wait(FORM_TIMEOUT, || cluster.formed()) {
                panic!("the cluster did not form within {FORM_TIMEOUT:?}: {e}");
            }
            return cluster;
        }
        panic!("the cluster's redis-server nodes did not start: {last_error}");
    }

    fn create(&self) {
        let log_path = self.create_log_path();
        let log = std::fs::File::create(&log_path).expect("creating the redis-cli log");
        let mut child = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the redis-cli log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (is it installed and on PATH?): {e}"));
        let deadline = Instant::now() + CREATE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for redis-cli") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-cli --cluster create did not finish within {CREATE_TIMEOUT:?}:\n{}",
                    read_log(&log_path)
                );
            }
            std::thread::sleep(POLL);
        };
        assert!(
            status.success(),
            "redis-cli --cluster create exited with {status}:\n{}",
            read_log(&log_path)
        );
    }

    fn create_log_path(&self) -> PathBuf {
        self.create_log.path().join("redis-cli.log")
    }

    /// `Ok` once every node agrees the cluster is complete.
    fn formed(&self) -> Result<(), String> {
        for node in &self.nodes {
            let info = text(node.port, &["CLUSTER", "INFO"])?;
            for want in [
                "cluster_state:ok".to_string(),
                format!("cluster_slots_assigned:{SLOTS}"),
                format!("cluster_known_nodes:{NODES}"),
            ] {
                if !has_line(&info, &want) {
                    return Err(format!("node {} has no `{want}` in:\n{info}", node.port));
                }
            }
            let view = cluster_nodes(node.port)?;
            let primaries = view.iter().filter(|n| n.is_primary()).count();
            let replicas = view.iter().filter(|n| n.is_replica()).count();
            if primaries != NODES / 2 || replicas != NODES / 2 {
                return Err(format!(
                    "node {} sees {primaries} primaries with slots and {replicas} replicas",
                    node.port
                ));
            }
            let replication = text(node.port, &["INFO", "replication"])?;
            if has_line(&replication, "role:slave")
                && !has_line(&replication, "master_link_status:up")
            {
                return Err(format!(
                    "replica {}'s link to its primary is not up:\n{replication}",
                    node.port
                ));
            }
        }
        Ok(())
    }

    /// Urls of all six nodes, in start order, killed ones included.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Urls of the running nodes that are primaries right now (each node's own view).
    pub fn primaries(&self) -> Vec<String> {
        self.running_with_role("master")
    }

    /// Urls of the running nodes that are replicas right now (each node's own view).
    pub fn replicas(&self) -> Vec<String> {
        self.running_with_role("slave")
    }

    fn running_with_role(&self, role: &str) -> Vec<String> {
        let want = format!("role:{role}");
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|n| {
                let info = text(n.port, &["INFO", "replication"])
                    .unwrap_or_else(|e| panic!("INFO replication on {}: {e}", n.port));
                has_line(&info, &want)
            })
            .map(Node::url)
            .collect()
    }

    /// The slot `key` hashes to (`CLUSTER KEYSLOT`).
    pub fn key_slot(&self, key: &str) -> u16 {
        let port = self.any_running_port();
        match command(port, &["CLUSTER", "KEYSLOT", key]) {
            Ok(Reply::Int(slot)) => u16::try_from(slot).expect("a slot fits in u16"),
            other => panic!("CLUSTER KEYSLOT {key:?} on {port}: {other:?}"),
        }
    }

    /// Url of the primary serving `slot`, as a running node's `CLUSTER NODES` says.
    pub fn node_for_slot(&self, slot: u16) -> String {
        let port = self.any_running_port();
        let view = cluster_nodes(port).unwrap_or_else(|e| panic!("CLUSTER NODES on {port}: {e}"));
        view.iter()
            .find(|n| n.is_primary() && n.serves(slot))
            .map(|n| url(n.port))
            .unwrap_or_else(|| panic!("node {port} knows no live primary for slot {slot}"))
    }

    /// Url of the primary serving `key`'s slot.
    pub fn primary_for_key(&self, key: &str) -> String {
        self.node_for_slot(self.key_slot(key))
    }

    /// Url of the running replica following `primary` (its `INFO replication`).
    pub fn replica_of(&self, primary: &str) -> String {
        let primary_port = self.node(primary).port;
        let want = format!("master_port:{primary_port}");
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .find(|n| {
                text(n.port, &["INFO", "replication"])
                    .is_ok_and(|info| has_line(&info, "role:slave") && has_line(&info, &want))
            })
            .map(Node::url)
            .unwrap_or_else(|| panic!("no running replica follows {primary}"))
    }

    /// Whether `node` is running and answers `PING`.
    pub fn is_up(&self, node: &str) -> bool {
        let node = self.node(node);
        node.is_running()
            && matches!(command(node.port, &["PING"]), Ok(Reply::Text(ref s)) if s == "PONG")
    }

    /// SIGKILLs `node`, as a crash would. Idempotent.
    pub fn kill(&mut self, node: &str) {
        self.node_mut(node).kill();
    }

    /// Kills `primary` (SIGKILL) and waits until its replica is promoted: the replica says
    /// `role:master` and serves slots, and every running node says `cluster_state:ok`. Returns
    /// the new primary's url.
    pub fn failover_to_replica_of(&mut self, primary: &str) -> String {
        let replica = self.replica_of(primary);
        self.kill(primary);
        self.wait_for_promotion(&replica);
        replica
    }

    /// SIGKILLs every node: the whole cluster is gone, as in a lost zone.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Starts every killed node again on its port with its `nodes.conf` (so with its role and
    /// slots, but none of its data: the nodes keep nothing on disk), and waits until every node
    /// says `cluster_state:ok`.
    pub fn start_all(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| !n.is_running()) {
            if let Err(e) = node.spawn() {
                panic!("restarting {}: {e}", node.url());
            }
        }
        let ok = || {
            for node in &self.nodes {
                let info = text(node.port, &["CLUSTER", "INFO"])?;
                if !has_line(&info, "cluster_state:ok") {
                    return Err(format!("node {} is not ok:\n{info}", node.port));
                }
            }
            Ok(())
        };
        if let Err(e) = wait(FAILOVER_TIMEOUT, ok) {
            panic!("the cluster did not come back within {FAILOVER_TIMEOUT:?}: {e}");
        }
    }

    /// A planned failover (`CLUSTER FAILOVER` on `primary`'s replica): the replica takes the
    /// slots over once it has caught up, and `primary`, still running and reachable, becomes its
    /// replica. Returns the new primary's url once it serves the slots.
    pub fn planned_failover(&mut self, primary: &str) -> String {
        let replica = self.replica_of(primary);
        let port = self.node(&replica).port;
        match command(port, &["CLUSTER", "FAILOVER"]) {
            Ok(Reply::Text(ok)) if ok == "OK" => {}
            other => panic!("CLUSTER FAILOVER on {replica}: {other:?}"),
        }
        self.wait_for_promotion(&replica);
        replica
    }

    /// Starts a killed node again, on its port with its `nodes.conf`: it rejoins the cluster as
    /// a replica of whichever node took over its slots. Returns once it says its link to that
    /// primary is up (the primary can then count it in `WAIT`).
    pub fn restart(&mut self, node: &str) {
        let port = self.node(node).port;
        if let Err(e) = self.node_mut(node).spawn() {
            panic!("restarting {node}: {e}");
        }
        let synced = || {
            let replication = text(port, &["INFO", "replication"])?;
            if has_line(&replication, "role:slave")
                && has_line(&replication, "master_link_status:up")
            {
                Ok(())
            } else {
                Err(format!(
                    "{port} is not a replica in sync yet:\n{replication}"
                ))
            }
        };
        if let Err(e) = wait(FAILOVER_TIMEOUT, synced) {
            panic!("{node} did not rejoin as a replica within {FAILOVER_TIMEOUT:?}: {e}");
        }
    }

    /// Waits until `replica` has been promoted after its primary died (see
    /// [`failover_to_replica_of`](Self::failover_to_replica_of)).
    pub fn wait_for_promotion(&self, replica: &str) {
        let port = self.node(replica).port;
        if let Err(e) = wait(FAILOVER_TIMEOUT, || self.promoted(port)) {
            panic!("{replica} was not promoted within {FAILOVER_TIMEOUT:?}: {e}");
        }
    }

    fn promoted(&self, port: u16) -> Result<(), String> {
        let replication = text(port, &["INFO", "replication"])?;
        if !has_line(&replication, "role:master") {
            return Err(format!("{port} is not a primary yet:\n{replication}"));
        }
        let view = cluster_nodes(port)?;
        if !view.iter().any(|n| n.myself && n.is_primary()) {
            return Err(format!("{port} serves no slots yet"));
        }
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let info = text(node.port, &["CLUSTER", "INFO"])?;
            if !has_line(&info, "cluster_state:ok") {
                return Err(format!("node {} is not ok:\n{info}", node.port));
            }
        }
        Ok(())
    }

    /// Every node's log so far, and `redis-cli --cluster create`'s output.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "--- cluster node on port {} (bus {}) log ---\n{}",
                node.port,
                node.bus_port,
                node.log()
            );
        }
        let _ = writeln!(
            out,
            "--- redis-cli --cluster create ---\n{}",
            read_log(&self.create_log_path())
        );
        out
    }

    fn node(&self, url: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.url() == url)
            .unwrap_or_else(|| panic!("{url} is not a node of this cluster"))
    }

    fn node_mut(&mut self, url: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.url() == url)
            .unwrap_or_else(|| panic!("{url} is not a node of this cluster"))
    }

    fn any_running_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .map(|n| n.port)
            .expect("every node of the cluster was killed")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}--- end of cluster logs ---", self.logs());
        }
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// `n` distinct ports that were free a moment ago (all bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding port 0 on loopback"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// Calls `check` until it returns `Ok`, or returns its last error after `timeout`.
fn wait<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|l| l.trim_end() == want)
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    port: u16,
    myself: bool,
    flags: Vec<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn failing(&self) -> bool {
        self.has_flag("fail") || self.has_flag("fail?")
    }

    /// A primary that is not failing and serves slots.
    fn is_primary(&self) -> bool {
        self.has_flag("master") && !self.failing() && !self.slots.is_empty()
    }

    fn is_replica(&self) -> bool {
        self.has_flag("slave") && !self.failing()
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

fn cluster_nodes(port: u16) -> Result<Vec<NodeLine>, String> {
    text(port, &["CLUSTER", "NODES"])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| parse_node_line(line).ok_or_else(|| format!("bad CLUSTER NODES line {line:?}")))
        .collect()
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <epoch> <link>
/// <slot>…`; slots in migration (`[…]`) are skipped.
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let address = fields.get(1)?;
    let host_port = address.split(['@', ',']).next()?;
    let port = host_port.rsplit_once(':')?.1.parse().ok()?;
    let flags: Vec<String> = fields.get(2)?.split(',').map(str::to_string).collect();
    let mut slots = Vec::new();
    for range in fields.iter().skip(8).filter(|s| !s.starts_with('[')) {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        slots.push((a.parse().ok()?, b.parse().ok()?));
    }
    Some(NodeLine {
        port,
        myself: flags.iter().any(|f| f == "myself"),
        flags,
        slots,
    })
}

/// The few RESP reply shapes the harness reads (no arrays: no command it sends returns one).
#[derive(Debug)]
enum Reply {
    Text(String),
    Int(i64),
    Nil,
}

/// The reply to `args` as text (simple or bulk string).
fn text(port: u16, args: &[&str]) -> Result<String, String> {
    match command(port, args)? {
        Reply::Text(s) => Ok(s),
        other => Err(format!("{args:?} on {port}: unexpected reply {other:?}")),
    }
}

/// Sends one command over a fresh connection and reads its reply; a Redis error is an `Err`.
fn command(port: u16, args: &[&str]) -> Result<Reply, String> {
    let io = |e: std::io::Error| format!("{args:?} on {port}: {e}");
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(request.as_bytes()).map_err(io)?;
    read_reply(&mut BufReader::new(stream)).map_err(|e| format!("{args:?} on {port}: {e}"))
}

fn read_reply(reader: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| format!("truncated reply {line:?}"))?;
    let (kind, rest) = line.split_at_checked(1).ok_or("empty reply")?;
    let number = || rest.parse::<i64>().map_err(|e| format!("{line:?}: {e}"));
    match kind {
        "+" => Ok(Reply::Text(rest.to_string())),
        "-" => Err(rest.to_string()),
        ":" => Ok(Reply::Int(number()?)),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Nil);
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).map_err(|e| e.to_string())?;
            body.truncate(len);
            String::from_utf8(body)
                .map(Reply::Text)
                .map_err(|e| e.to_string())
        }
        _ => Err(format!("unknown reply {line:?}")),
    }
}
