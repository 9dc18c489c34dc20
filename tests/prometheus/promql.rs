//! Just enough PromQL and Grafana text handling for the test: the vector selectors an
//! expression reads, and Grafana's template variables substituted.

use std::collections::HashMap;

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The end (exclusive) of the quoted string starting at `start` (its opening quote).
fn skip_string(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != quote {
        if b[i] == b'\\' && quote != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The vector selectors of `expr` that read Flint's series: metric names `flint_…`, recorded
/// series `flint:…` and `up`, each with its label matchers as written (`flint_x{a="b"}`),
/// once each, in order of appearance. Strings and comments are skipped.
pub fn selectors(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = skip_string(b, i);
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_' || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !(name.starts_with("flint_") || name.starts_with("flint:") || name == "up") {
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut selector = name.to_owned();
        if j < b.len() && b[j] == b'{' {
            let mut k = j + 1;
            while k < b.len() && b[k] != b'}' {
                k = if matches!(b[k], b'"' | b'\'' | b'`') {
                    skip_string(b, k)
                } else {
                    k + 1
                };
            }
            let end = k.min(b.len() - 1);
            let matchers: String = expr[j..=end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            selector.push_str(&matchers);
            i = end + 1;
        } else if name == "up" {
            // `up` alone would be every target's, not Flint's: only with matchers.
            continue;
        }
        if !found.contains(&selector) {
            found.push(selector);
        }
    }
    found
}

/// `text` with Grafana's template variables (`$name`, `${name}`, `${name:format}`,
/// `[[name]]`) replaced by their values in `vars`; the names without a value are the error.
pub fn substitute(text: &str, vars: &HashMap<String, String>) -> Result<String, Vec<String>> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut unknown = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let (name, end) = if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' {
            match text[i + 2..].find('}') {
                Some(close) => {
                    let inner = &text[i + 2..i + 2 + close];
                    (inner.split(':').next().unwrap_or(inner), i + 3 + close)
                }
                None => break,
            }
        } else if b[i] == b'$'
            && i + 1 < b.len()
            && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_')
        {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            (&text[i + 1..j], j)
        } else if text[i..].starts_with("[[") {
            match text[i + 2..].find("]]") {
                Some(close) => (&text[i + 2..i + 2 + close], i + 4 + close),
                None => break,
            }
        } else {
            i += 1;
            continue;
        };
        out.push_str(&text[copied..i]);
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => {
                unknown.push(name.to_owned());
                out.push_str(&text[i..end]);
            }
        }
        i = end;
        copied = end;
    }
    out.push_str(&text[copied..]);
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(unknown)
    }
}

#[test]
fn selectors_are_found_with_their_matchers_outside_strings() {
    let expr = r#"sum by (queue) (rate(flint_queue_stale_outcomes_total{queue=~"charges|x}"}[5m]))
        / on() group_left flint:charge_attempts:rate5m # flint_in_a_comment
        and up {job="flint-worker"} == 0 or label_replace(vector(1), "a", "flint_not", "", "")
        or up == 1 or flint_jobs_in_flight and flint_jobs_in_flight"#;
    assert_eq!(
        selectors(expr),
        [
            r#"flint_queue_stale_outcomes_total{queue=~"charges|x}"}"#,
            "flint:charge_attempts:rate5m",
            r#"up{job="flint-worker"}"#,
            "flint_jobs_in_flight",
        ]
    );
}

#[test]
fn template_variables_are_substituted_and_unknown_ones_reported() {
    let vars: HashMap<String, String> = [("__rate_interval", "1m"), ("queue", "charges")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        substitute(
            r#"rate(x{queue="$queue",q="${queue:regex}"}[$__rate_interval]) [[queue]] "a$" $1"#,
            &vars
        ),
        Ok(r#"rate(x{queue="charges",q="charges"}[1m]) charges "a$" $1"#.to_owned())
    );
    assert_eq!(
        substitute("x{a=\"$nope\"}[${__range}]", &vars),
        Err(vec!["nope".to_owned(), "__range".to_owned()])
    );
}
