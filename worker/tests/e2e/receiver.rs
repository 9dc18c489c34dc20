//! A webhook receiver for tests: records every delivery (headers and body, as sent) and answers
//! as the test scripts it (a status, or a hang longer than Flint's timeout), 200 otherwise.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn as_json(&self) -> Value {
        json!({
            "headers": {
                "webhook-id": self.id,
                "webhook-timestamp": self.timestamp,
                "webhook-signature": self.signature,
            },
            "body": self.body,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    deliveries: Mutex<Vec<Delivery>>,
    script: Mutex<VecDeque<Reply>>,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inner.deliveries.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let reply = inner.script.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Status(s)) => StatusCode::from_u16(s).unwrap(),
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
        None => StatusCode::OK,
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Listens on `addr` (a port the test chose, to bring a receiver back where it was).
    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { inner, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// The next answers, in order.
    pub fn script(&self, replies: &[Reply]) {
        self.inner
            .script
            .lock()
            .unwrap()
            .extend(replies.iter().copied());
    }

    pub fn clear_script(&self) {
        self.inner.script.lock().unwrap().clear();
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().unwrap().clone()
    }
}

/// Verifies `deliveries` with the official Standard Webhooks library (Python, pinned in
/// tests/requirements.txt): every one must verify with `secret` (`valid`), or
/// none may.
pub fn verify_with_official_library(secret: &str, deliveries: &[Delivery], valid: bool) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/webhooks_python/verify.py"
    );
    let input = json!({
        "secret": secret,
        "deliveries": deliveries.iter().map(Delivery::as_json).collect::<Vec<_>>(),
        "expect": if valid { "valid" } else { "invalid" },
    });
    let mut child = Command::new(flint_testkit::python::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test virtualenv's python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "standardwebhooks: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {}", deliveries.len()));
}
