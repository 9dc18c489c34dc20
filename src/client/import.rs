//! `flint import FILE`: a billing run. One payment per row, each with its own idempotency key,
//! sent concurrently; a re-run of the same file creates nothing twice (the API answers a
//! replay, reported as already done). Rejected rows go to a report with the API's reason.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::api::{Api, Exit, Failure};
use super::args::{ImportArgs, ImportFormat};

/// One row, ready to send, or why it cannot be.
#[derive(Debug)]
struct Row {
    line: usize,
    key: Option<String>,
    body: Result<Value, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    AlreadyDone,
    Rejected,
    /// The API could not be reached or answered 5xx, after retries: run the file again.
    Failed,
}

/// The CSV columns a row may have; `metadata.<key>` columns add metadata.
const COLUMNS: &[&str] = &[
    "idempotency_key",
    "customer",
    "payment_method",
    "amount",
    "currency",
    "purpose",
    "initiated_by_type",
    "initiated_by_id",
    "reason",
    "order_id",
    "subscription_id",
    "invoice_id",
    "description",
    "statement_descriptor_suffix",
    "charge_at",
    "retry_strategy",
    "max_attempts",
    "window_hours",
    "fallback_to_other_cards",
];

/// The API takes keys of 1–255 printable ASCII characters; a row with another is refused here,
/// before anything is sent.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("idempotency_key must be 1–255 printable ASCII characters".to_owned());
    }
    Ok(())
}

fn format_of(args: &ImportArgs) -> Result<ImportFormat, Failure> {
    if let Some(f) = args.format {
        return Ok(f);
    }
    match args.file.extension().and_then(|e| e.to_str()) {
        Some("csv") => Ok(ImportFormat::Csv),
        Some("ndjson" | "jsonl") => Ok(ImportFormat::Ndjson),
        _ => Err(Failure::usage(format!(
            "{}: say --format csv or --format ndjson (the extension does not tell)",
            args.file.display()
        ))),
    }
}

/// A CSV row as a create request. Empty cells are absent fields.
fn csv_body(header: &[String], record: &csv::StringRecord) -> Result<(String, Value), String> {
    let mut cell = std::collections::HashMap::new();
    for (name, value) in header.iter().zip(record.iter()) {
        if !value.is_empty() {
            cell.insert(name.as_str(), value);
        }
    }
    let key = cell
        .get("idempotency_key")
        .ok_or("idempotency_key is empty")?
        .to_string();
    let need = |name: &str| {
        cell.get(name)
            .map(|v| v.to_string())
            .ok_or_else(|| format!("{name} is empty"))
    };
    let amount: i64 = need("amount")?
        .parse()
        .map_err(|_| "amount must be an integer in minor units".to_owned())?;
    let mut initiated_by = json!({
        "type": cell.get("initiated_by_type").copied().unwrap_or("service"),
        "id": cell.get("initiated_by_id").copied().unwrap_or("flint-import"),
    });
    if let Some(reason) = cell.get("reason") {
        initiated_by["reason"] = json!(reason);
    }
    let mut body = json!({
        "customer": need("customer")?,
        "amount": {"value": amount, "currency": need("currency")?},
        "purpose": need("purpose")?,
        "initiated_by": initiated_by,
    });
    let fields = body.as_object_mut().expect("an object");
    for name in [
        "payment_method",
        "description",
        "statement_descriptor_suffix",
        "charge_at",
    ] {
        if let Some(v) = cell.get(name) {
            fields.insert(name.to_owned(), json!(v));
        }
    }
    let context: Map<String, Value> = ["order_id", "subscription_id", "invoice_id"]
        .into_iter()
        .filter_map(|k| cell.get(k).map(|v| (k.to_owned(), json!(v))))
        .collect();
    if !context.is_empty() {
        fields.insert("context".into(), Value::Object(context));
    }
    let metadata: Map<String, Value> = cell
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata.")
                .map(|k| (k.to_owned(), json!(v)))
        })
        .collect();
    if !metadata.is_empty() {
        fields.insert("metadata".into(), Value::Object(metadata));
    }
    if [
        "retry_strategy",
        "max_attempts",
        "window_hours",
        "fallback_to_other_cards",
    ]
    .iter()
    .any(|k| cell.contains_key(k))
    {
        let mut policy =
            json!({"strategy": cell.get("retry_strategy").copied().unwrap_or("scheduled")});
        for name in ["max_attempts", "window_hours"] {
            if let Some(v) = cell.get(name) {
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number"))?;
                policy[name] = json!(n);
            }
        }
        if let Some(v) = cell.get("fallback_to_other_cards") {
            let b: bool = v
                .parse()
                .map_err(|_| "fallback_to_other_cards must be true or false".to_owned())?;
            policy["fallback_to_other_cards"] = json!(b);
        }
        fields.insert("retry_policy".into(), policy);
    }
    Ok((key, body))
}

fn read_rows(path: &Path, format: ImportFormat) -> Result<Vec<Row>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let mut rows = Vec::new();
    match format {
        ImportFormat::Ndjson => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let row = match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(mut fields)) => {
                        let key = fields
                            .remove("idempotency_key")
                            .and_then(|k| k.as_str().map(str::to_owned));
                        Row {
                            line: i + 1,
                            body: match &key {
                                Some(_) => Ok(Value::Object(fields)),
                                None => Err("idempotency_key is missing".to_owned()),
                            },
                            key,
                        }
                    }
                    Ok(_) => Row {
                        line: i + 1,
                        key: None,
                        body: Err("the line is not a JSON object".to_owned()),
                    },
                    Err(e) => Row {
                        line: i + 1,
                        key: None,
                        body: Err(format!("the line is not JSON: {e}")),
                    },
                };
                rows.push(row);
            }
        }
        ImportFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
                .iter()
                .map(str::to_owned)
                .collect();
            for name in &header {
                if !COLUMNS.contains(&name.as_str()) && !name.starts_with("metadata.") {
                    return Err(Failure::usage(format!(
                        "{}: unknown column {name:?} (columns: {}, metadata.<key>)",
                        path.display(),
                        COLUMNS.join(", ")
                    )));
                }
            }
            if !header.iter().any(|h| h == "idempotency_key") {
                return Err(Failure::usage(format!(
                    "{}: an idempotency_key column is required (it makes a re-run safe)",
                    path.display()
                )));
            }
            let key_at = header.iter().position(|h| h == "idempotency_key");
            let mut record = csv::StringRecord::new();
            loop {
                let before = reader.position().line() as usize;
                let row = match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        // The line the record starts on (a quoted cell may span lines).
                        let line = record.position().map_or(before, |p| p.line() as usize);
                        let key = key_at
                            .and_then(|i| record.get(i))
                            .filter(|k| !k.is_empty())
                            .map(str::to_owned);
                        let body = if record.len() == header.len() {
                            csv_body(&header, &record).map(|(_, body)| body)
                        } else {
                            Err(format!(
                                "{} cells, the header has {}",
                                record.len(),
                                header.len()
                            ))
                        };
                        Row { line, key, body }
                    }
                    Err(e) => {
                        // Nothing after an unreadable record can be trusted to line up.
                        rows.push(Row {
                            line: before,
                            key: None,
                            body: Err(format!("unreadable CSV from here on: {e}")),
                        });
                        break;
                    }
                };
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Worth trying again: the API unreachable or failing, or its rate limit.
fn transient(f: &Failure) -> bool {
    f.exit == Exit::Unreachable || f.message.contains("HTTP 429")
}

/// Sends one row; transient failures (unreachable, 5xx, 429) are tried again with backoff.
async fn send(api: &Api, key: &str, body: &Value) -> (Outcome, Option<String>) {
    let attempt = || async {
        api.send(
            reqwest::Method::POST,
            "/v1/off_session_payments",
            Some(body),
            Some(key),
        )
        .await
    };
    // Up to about a minute and a half per row: a rate limit or a restarting API is waited out.
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(12)
                .with_jitter(),
        )
        .when(transient)
        .await;
    match result {
        Ok(answer) if answer.replayed => (Outcome::AlreadyDone, None),
        Ok(_) => (Outcome::Created, None),
        Err(f) if transient(&f) || f.exit == Exit::Authentication => {
            (Outcome::Failed, Some(f.message))
        }
        Err(f) => (Outcome::Rejected, Some(f.message)),
    }
}

/// Shows progress: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    started: Instant,
    last_line: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            total,
            started: Instant::now(),
            last_line: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn step(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(5) || done == self.total {
            *last = Instant::now();
            eprintln!(
                "flint import: {done}/{} rows ({:.0} s)",
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn report_path(args: &ImportArgs) -> PathBuf {
    args.report.clone().unwrap_or_else(|| {
        let mut name = args.file.as_os_str().to_owned();
        name.push(".rejected.csv");
        PathBuf::from(name)
    })
}

pub async fn run(api: &Api, args: &ImportArgs) -> Result<(), Failure> {
    if !(1..=1024).contains(&args.concurrency) {
        return Err(Failure::usage("--concurrency must be from 1 to 1024"));
    }
    let rows = read_rows(&args.file, format_of(args)?)?;
    // The key and the API, before any row: a wrong key fails once, not once per row.
    api.get("/v1/off_session_payments?limit=1").await?;
    let total = rows.len();
    let progress = Arc::new(Progress::new(total));
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<(usize, Option<String>, Outcome, Option<String>)> =
        Vec::with_capacity(total);
    // The first row with a key is the one sent; a later one is the same payment (already
    // done) or a mistake (rejected), decided here so the outcome never depends on timing.
    let mut first: std::collections::HashMap<String, (usize, Value)> =
        std::collections::HashMap::new();
    for row in rows {
        let checked = match (row.key, row.body) {
            (Some(key), Ok(body)) => match check_key(&key) {
                Ok(()) => match first.get(&key) {
                    Some((line, sent)) if *sent == body => Err((
                        Some(key),
                        Outcome::AlreadyDone,
                        format!("the same row as line {line}"),
                    )),
                    Some((line, _)) => Err((
                        Some(key),
                        Outcome::Rejected,
                        format!("idempotency_key is also on line {line}, for another payment"),
                    )),
                    None => {
                        first.insert(key.clone(), (row.line, body.clone()));
                        Ok((key, body))
                    }
                },
                Err(reason) => Err((Some(key), Outcome::Rejected, reason)),
            },
            (key, Err(reason)) => Err((key, Outcome::Rejected, reason)),
            (None, Ok(_)) => Err((None, Outcome::Rejected, "idempotency_key is empty".into())),
        };
        let (key, body) = match checked {
            Ok(sendable) => sendable,
            Err((key, outcome, reason)) => {
                results.push((row.line, key, outcome, Some(reason)));
                progress.step(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                continue;
            }
        };
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .map_err(|e| Failure::internal(e.to_string()))?;
        let (api, progress, done) = (api.clone(), Arc::clone(&progress), Arc::clone(&done));
        tasks.spawn(async move {
            let (outcome, reason) = send(&api, &key, &body).await;
            drop(permit);
            progress.step(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            (row.line, Some(key), outcome, reason)
        });
    }
    while let Some(result) = tasks.join_next().await {
        results.push(result.map_err(|e| Failure::internal(format!("an import task failed: {e}")))?);
    }
    progress.finish();
    results.sort_by_key(|r| r.0);
    let count = |o: Outcome| results.iter().filter(|r| r.2 == o).count();
    let (created, already, rejected, failed) = (
        count(Outcome::Created),
        count(Outcome::AlreadyDone),
        count(Outcome::Rejected),
        count(Outcome::Failed),
    );
    let mut summary = format!(
        "{total} rows: {created} created, {already} already done, {rejected} rejected, {failed} failed"
    );
    let path = report_path(args);
    let report = if rejected + failed > 0 {
        let written = write_report(&path, &results);
        if written.is_ok() {
            summary.push_str(&format!(" (report: {})", path.display()));
        }
        written
    } else {
        // A clean run leaves no report of an earlier one behind.
        let _ = std::fs::remove_file(&path);
        Ok(())
    };
    if args.api.json {
        let report_file =
            (rejected + failed > 0 && report.is_ok()).then(|| path.display().to_string());
        println!(
            "{}",
            json!({
                "rows": total, "created": created, "already_done": already,
                "rejected": rejected, "failed": failed, "report": report_file,
            })
        );
    } else {
        println!("{summary}");
    }
    report?;
    if failed > 0 {
        let auth = results.iter().any(|r| {
            r.2 == Outcome::Failed
                && r.3
                    .as_deref()
                    .is_some_and(|m| m.contains("HTTP 401") || m.contains("HTTP 403"))
        });
        return Err(Failure::new(
            if auth {
                Exit::Authentication
            } else {
                Exit::Unreachable
            },
            format!(
                "{failed} rows could not be sent; run the same file again (rows already created are not created twice while the API keeps their idempotency keys, 24 h by default)"
            ),
        ));
    }
    if rejected > 0 {
        return Err(Failure::new(
            Exit::Rejected,
            format!("{rejected} rows were rejected; see the report"),
        ));
    }
    Ok(())
}

/// The rejected and failed rows, with the reason, as CSV.
fn write_report(
    path: &Path,
    results: &[(usize, Option<String>, Outcome, Option<String>)],
) -> Result<(), Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::internal(format!("{}: {e}", path.display()));
    let mut writer = csv::Writer::from_path(path).map_err(|e| failed(&e))?;
    writer
        .write_record(["line", "idempotency_key", "outcome", "reason"])
        .map_err(|e| failed(&e))?;
    for (line, key, outcome, reason) in results {
        let outcome = match outcome {
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Created | Outcome::AlreadyDone => continue,
        };
        writer
            .write_record([
                line.to_string().as_str(),
                key.as_deref().unwrap_or(""),
                outcome,
                reason.as_deref().unwrap_or(""),
            ])
            .map_err(|e| failed(&e))?;
    }
    writer.flush().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    #[test]
    fn a_csv_row_becomes_the_create_request() {
        let header: Vec<String> = [
            "idempotency_key",
            "customer",
            "amount",
            "currency",
            "purpose",
            "invoice_id",
            "metadata.plan",
            "max_attempts",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (key, body) = csv_body(
            &header,
            &record(&[
                "k1",
                "cus_1",
                "2000",
                "usd",
                "subscription",
                "in_1",
                "pro",
                "3",
            ]),
        )
        .unwrap();
        assert_eq!(key, "k1");
        assert_eq!(body["amount"], json!({"value": 2000, "currency": "usd"}));
        assert_eq!(body["context"], json!({"invoice_id": "in_1"}));
        assert_eq!(body["metadata"], json!({"plan": "pro"}));
        assert_eq!(
            body["retry_policy"],
            json!({"strategy": "scheduled", "max_attempts": 3})
        );
        assert_eq!(
            body["initiated_by"],
            json!({"type": "service", "id": "flint-import"})
        );
        let bad = csv_body(
            &header,
            &record(&["k2", "cus_1", "20.00", "usd", "subscription", "", "", ""]),
        );
        assert_eq!(bad.unwrap_err(), "amount must be an integer in minor units");
        let keyless = csv_body(
            &header,
            &record(&["", "cus_1", "1", "usd", "subscription", "", "", ""]),
        );
        assert_eq!(keyless.unwrap_err(), "idempotency_key is empty");
    }
}
