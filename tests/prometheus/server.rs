//! Child processes for the test: a guard that kills its process when dropped (printing the
//! process's log when the test is failing), and a real `prometheus` server with its HTTP API.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process, killed (SIGKILL) and reaped when dropped; its log file is printed then if
/// the test is failing.
#[derive(Debug)]
pub struct Guard {
    name: String,
    child: Child,
    stdout: Option<ChildStdout>,
    log: PathBuf,
}

impl Guard {
    /// Spawns `command` with stderr (and stdout unless `pipe_stdout`) appended to `log`.
    /// `missing` is the panic message when the program is not installed.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: PathBuf,
        pipe_stdout: bool,
        missing: &str,
    ) -> Guard {
        let file = File::create(&log).expect("log file");
        command
            .stdin(Stdio::null())
            .stderr(file.try_clone().unwrap());
        if pipe_stdout {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(file);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{missing} ({e})"),
            Err(e) => panic!("cannot start {name}: {e}"),
        };
        let stdout = child.stdout.take();
        Guard {
            name: name.to_owned(),
            child,
            stdout,
            log,
        }
    }

    /// The first line the process prints on stdout (its "listening on" line).
    pub fn first_line(&mut self) -> String {
        let stdout = self.stdout.as_mut().expect("stdout is piped");
        let mut line = String::new();
        // Flint prints this one line on stdout; the pipe stays open (in `self`) after it.
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "{} exited before it served: {:?}",
            self.name,
            self.child.try_wait()
        );
        line
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("child status")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("----- {} log (last {} lines) -----", self.name, tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("----- end of {} log -----", self.name);
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `prometheus` server scraping `jobs` (job name, `host:port` targets) every second and
/// evaluating `rule_files` every second, with its storage in `dir`.
#[derive(Debug)]
pub struct Prometheus {
    pub url: String,
    http: reqwest::Client,
    guard: Guard,
}

/// Why a query failed: Prometheus's `errorType` (`bad_data` for a parse error, `execution`, …)
/// and message.
#[derive(Debug)]
pub struct QueryError {
    pub kind: String,
    pub message: String,
}

impl Prometheus {
    pub async fn start(dir: &Path, jobs: &[(&str, Vec<String>)], rule_files: &[PathBuf]) -> Self {
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        for file in rule_files {
            config.push_str(&format!("  - {:?}\n", file.display().to_string()));
        }
        config.push_str("scrape_configs:\n");
        for (job, targets) in jobs {
            config.push_str(&format!(
                "  - job_name: {job:?}\n    static_configs:\n      - targets: {targets:?}\n"
            ));
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, &config).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=info");
        let guard = Guard::spawn(
            "prometheus",
            command,
            dir.join("prometheus.log"),
            false,
            "cannot run `prometheus`: install the Debian package `prometheus` \
             (apt-get install prometheus), which provides /usr/bin/prometheus and /usr/bin/promtool",
        );
        let mut prometheus = Prometheus {
            url: format!("http://{listen}"),
            http: reqwest::Client::new(),
            guard,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = prometheus.guard.exited() {
                panic!("prometheus exited with {status} (configuration:\n{config})");
            }
            let ready = prometheus
                .http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return prometheus;
            }
            assert!(Instant::now() < deadline, "prometheus not ready after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        r.json()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: not JSON: {e}"))
    }

    /// Evaluates `expr` now: how many series (or 1 for a scalar or string) it returned.
    pub async fn query(&self, expr: &str) -> Result<usize, QueryError> {
        let body = self.get("/api/v1/query", &[("query", expr)]).await;
        if body["status"] != "success" {
            return Err(QueryError {
                kind: body["errorType"].as_str().unwrap_or("?").to_owned(),
                message: body["error"].as_str().unwrap_or("?").to_owned(),
            });
        }
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("vector" | "matrix") => data["result"].as_array().map_or(0, Vec::len),
            _ => 1,
        })
    }

    /// The values of `label` on the series `selector` selects (every series when `None`).
    pub async fn label_values(&self, label: &str, selector: Option<&str>) -> Vec<String> {
        let path = format!("/api/v1/label/{label}/values");
        let body = match selector {
            Some(s) => self.get(&path, &[("match[]", s)]).await,
            None => self.get(&path, &[]).await,
        };
        body["data"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until Prometheus scrapes every one of its `count` targets successfully.
    pub async fn wait_for_targets(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.get("/api/v1/targets", &[("state", "active")]).await;
            let targets = body["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if targets.len() == count && targets.iter().all(|t| t["health"] == "up") {
                return;
            }
            let states: Vec<String> = targets
                .iter()
                .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
                .collect();
            assert!(
                Instant::now() < deadline,
                "prometheus does not scrape its {count} targets: {states:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The loaded rules (group, rule name) and, for each rule whose last evaluation failed,
    /// a description of the failure.
    pub async fn rules(&self) -> (Vec<(String, String)>, Vec<String>) {
        let body = self.get("/api/v1/rules", &[]).await;
        let mut loaded = Vec::new();
        let mut failing = Vec::new();
        for group in body["data"]["groups"].as_array().into_iter().flatten() {
            let group_name = group["name"].as_str().unwrap_or("?").to_owned();
            for rule in group["rules"].as_array().into_iter().flatten() {
                let name = rule["name"].as_str().unwrap_or("?").to_owned();
                if rule["health"] == "err" {
                    failing.push(format!(
                        "rule {name} (group {group_name}): {}",
                        rule["lastError"]
                    ));
                }
                loaded.push((group_name.clone(), name));
            }
        }
        (loaded, failing)
    }
}
