//! The HTTP side of the client: one request, one answer, and every way it can fail mapped to
//! an exit code.

use std::time::Duration;

use serde_json::Value;

use super::args::ApiArgs;

/// The exit codes of the client commands (also in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Something unexpected (a bug, an unreadable answer, a file that cannot be written).
    Internal = 1,
    /// The command line itself is wrong (clap uses the same code for what it catches).
    Usage = 2,
    /// The API refused the request (4xx other than authentication): nothing was changed.
    Rejected = 3,
    /// The API key is missing or not accepted (401, 403).
    Authentication = 4,
    /// The API (or Redis, for `flint dead`) could not be reached, or answered 5xx.
    Unreachable = 5,
}

/// A failed command: the one line to print and the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Internal, message)
    }
}

/// The API's error body as one line: `code (param): message`.
fn rejection(status: u16, body: &Value) -> String {
    let e = &body["error"];
    let code = e["code"].as_str().unwrap_or("error");
    let message = e["message"].as_str().unwrap_or("no message");
    match e["param"].as_str() {
        Some(param) => format!("{param}: {message} ({code}, HTTP {status})"),
        None => format!("{message} ({code}, HTTP {status})"),
    }
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

/// A client of the Flint API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(args: &ApiArgs) -> Result<Api, Failure> {
        let key = args
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    Exit::Authentication,
                    "no API key: pass --api-key or set FLINT_API_KEY",
                )
            })?;
        let base = args.api_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "--api-url must start with http:// or https://, not {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::internal(format!("cannot make an HTTP client: {e}")))?;
        Ok(Api { base, key, http })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        Ok(self
            .send(reqwest::Method::GET, path, None, None)
            .await?
            .body)
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        Ok(self
            .send(reqwest::Method::POST, path, body, None)
            .await?
            .body)
    }

    pub async fn delete(&self, path: &str) -> Result<Value, Failure> {
        Ok(self
            .send(reqwest::Method::DELETE, path, None, None)
            .await?
            .body)
    }

    /// One request; a 2xx answer, or the failure it amounts to.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                // A header or URL that cannot be sent (a control character in a key): the
                // input is wrong, not the network.
                Failure::usage(format!("the request cannot be made: {}", e.without_url()))
            } else {
                Failure::new(
                    Exit::Unreachable,
                    format!("cannot reach the API at {}: {}", self.base, e.without_url()),
                )
            }
        })?;
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let text = response.text().await.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("the API's answer was cut off: {e}"),
            )
        })?;
        // A proxy in front of the API may answer with an HTML page: the status decides.
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(body) => body,
                Err(_) if (200..300).contains(&status) => {
                    return Err(Failure::internal(format!(
                        "the API answered HTTP {status} with something that is not JSON"
                    )));
                }
                Err(_) => serde_json::json!({"error": {
                    "code": "not_json",
                    "message": "an answer that is not the API's JSON (a proxy in between?)"
                }}),
            }
        };
        match status {
            200..=299 => Ok(Answer {
                status,
                body,
                replayed,
            }),
            401 | 403 => Err(Failure::new(Exit::Authentication, rejection(status, &body))),
            400..=499 => Err(Failure::new(Exit::Rejected, rejection(status, &body))),
            _ => Err(Failure::new(Exit::Unreachable, rejection(status, &body))),
        }
    }
}

/// An id as one path segment. Flint's ids (`osp_…`, `evt_…`, `we_…`) are letters, digits and
/// `_`; anything else is refused before it can reach a URL (`..` would reach another route).
pub fn segment(value: &str) -> Result<String, Failure> {
    let valid = !value.is_empty()
        && value.len() <= 100
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Failure::usage(format!(
            "{value:?} is not an id (letters, digits and _, like osp_…, evt_…, we_…)"
        )))
    }
}

/// A query string from the given pairs (those with a value).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_a_url_and_queries_skip_what_is_unset() {
        assert_eq!(segment("osp_1").unwrap(), "osp_1");
        for bad in ["..", ".", "../x", "x y", "a/b", "", "osp_1?x=1"] {
            assert_eq!(segment(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[("customer", Some("cus 1".into())), ("limit", None)]),
            "?customer=cus+1"
        );
    }

    #[test]
    fn an_api_error_is_one_line_naming_the_field() {
        let body = serde_json::json!({"error": {"code": "parameter_invalid", "param": "amount.value", "message": "must be positive"}});
        assert_eq!(
            rejection(400, &body),
            "amount.value: must be positive (parameter_invalid, HTTP 400)"
        );
    }
}
