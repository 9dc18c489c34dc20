//! The Stripe sandbox in-process on port 0, and a client for tests that speaks Stripe's wire
//! format without hiding it (status, headers and JSON body are all returned).

use flint_sandbox::Sandbox;
use flint_shared::config::{FaultConfig, SandboxConfig, Secret};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

/// The key every test sandbox accepts (a second one, [`OTHER_KEY`], is a separate account).
pub const KEY: &str = "sk_test_flint";
pub const OTHER_KEY: &str = "sk_test_other_account";

#[derive(Debug)]
pub struct TestSandbox {
    pub base_url: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

/// A sandbox with default settings and the two test keys.
pub async fn spawn_sandbox() -> TestSandbox {
    spawn_sandbox_with(|_| {}).await
}

/// A sandbox whose configuration `adjust` may change (faults, retention, strict attach, …).
pub async fn spawn_sandbox_with(adjust: impl FnOnce(&mut SandboxConfig)) -> TestSandbox {
    let mut config = SandboxConfig {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        api_keys: vec![Secret::new(KEY), Secret::new(OTHER_KEY)],
        ..SandboxConfig::default()
    };
    adjust(&mut config);
    let sandbox = Sandbox::bind(config).await.expect("sandbox binds port 0");
    let base_url = sandbox.base_url();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sandbox.run(async {
        let _ = stopped.await;
    }));
    TestSandbox {
        base_url,
        http: reqwest::Client::new(),
        stop: Some(stop),
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One answer: status, headers and the parsed JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `body["error"]["code"]`, for short assertions.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
}

/// A request being built: `sandbox.post("/v1/customers").param("name", "Ann").key(KEY).send()`.
#[derive(Debug)]
pub struct Call<'a> {
    sandbox: &'a TestSandbox,
    method: reqwest::Method,
    path: String,
    params: Vec<(String, String)>,
    key: Option<String>,
    headers: Vec<(String, String)>,
    raw_body: Option<(String, Vec<u8>)>,
}

impl TestSandbox {
    fn call(&self, method: reqwest::Method, path: &str) -> Call<'_> {
        Call {
            sandbox: self,
            method,
            path: path.to_owned(),
            params: Vec::new(),
            key: Some(KEY.to_owned()),
            headers: Vec::new(),
            raw_body: None,
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(reqwest::Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(reqwest::Method::DELETE, path)
    }

    /// Replaces the injected faults (`POST /__sandbox/faults`).
    pub async fn set_faults(&self, faults: &FaultConfig) {
        let r = self
            .http
            .post(format!("{}/__sandbox/faults", self.base_url))
            .json(faults)
            .send()
            .await
            .expect("fault control reachable");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    pub async fn reset_faults(&self) {
        let r = self
            .http
            .post(format!("{}/__sandbox/reset", self.base_url))
            .send()
            .await
            .expect("reset reachable");
        assert_eq!(r.status(), 200);
    }

    /// Makes every account forget its finished idempotency keys, as Stripe does after about a
    /// day; returns how many were forgotten.
    pub async fn expire_idempotency_keys(&self) -> u64 {
        let r = self
            .http
            .post(format!("{}/__sandbox/idempotency/expire", self.base_url))
            .send()
            .await
            .expect("idempotency control reachable");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("a JSON answer");
        body["forgotten"].as_u64().unwrap_or(0)
    }

    /// A customer with `card` (a `pm_card_*` token) attached and set as default; returns
    /// `(customer id, payment method id)`.
    pub async fn customer_with_card(&self, card: &str) -> (String, String) {
        let customer = self
            .post("/v1/customers")
            .param("name", "Test Customer")
            .send()
            .await;
        assert_eq!(customer.status, 200, "{}", customer.body);
        let cus = customer.id();
        let pm = self
            .post(&format!("/v1/payment_methods/{card}/attach"))
            .param("customer", &cus)
            .send()
            .await;
        assert_eq!(pm.status, 200, "{}", pm.body);
        let pm = pm.id();
        let updated = self
            .post(&format!("/v1/customers/{cus}"))
            .param("invoice_settings[default_payment_method]", &pm)
            .send()
            .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        (cus, pm)
    }
}

impl Call<'_> {
    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn params(mut self, pairs: &[(&str, &str)]) -> Self {
        self.params.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self
    }

    /// Authenticates with `key` (default [`KEY`]).
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    pub fn no_key(mut self) -> Self {
        self.key = None;
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("Idempotency-Key", key)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `body` as is, with `content_type`, instead of the form parameters.
    pub fn raw_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.raw_body = Some((content_type.to_owned(), body.into()));
        self
    }

    /// Sends the request; panics only when the sandbox cannot be reached at all.
    pub async fn send(self) -> Answer {
        self.try_send().await.expect("the sandbox answers")
    }

    /// Sends the request; a transport error (a dropped connection) is returned, not a panic.
    pub async fn try_send(self) -> Result<Answer, reqwest::Error> {
        let url = format!("{}{}", self.sandbox.base_url, self.path);
        let mut request = self.sandbox.http.request(self.method.clone(), url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request = match self.raw_body {
            Some((content_type, body)) => request.header("content-type", content_type).body(body),
            None if self.method == reqwest::Method::POST => request.form(&self.params),
            None => request.query(&self.params),
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}
