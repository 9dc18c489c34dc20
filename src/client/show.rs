//! Human output: short summaries and plain tables of what the API answered.

use std::fmt::Write;

use serde_json::Value;

/// Prints `value` as JSON, or as `human` renders it.
pub fn print(as_json: bool, value: &Value, human: fn(&Value) -> String) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        print!("{}", human(value));
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn amount(p: &Value) -> String {
    format!(
        "{} {}",
        p["amount"]["value"].as_i64().unwrap_or(0),
        s(&p["amount"]["currency"]).to_uppercase()
    )
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(&mut out, row.clone());
    }
    out
}

pub fn payment(p: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}  {}", s(&p["id"]), s(&p["status"]), amount(p));
    let _ = writeln!(out, "  customer        {}", s(&p["customer"]));
    let _ = writeln!(out, "  payment method  {}", s(&p["payment_method"]));
    let _ = writeln!(out, "  purpose         {}", s(&p["purpose"]));
    if let Some(at) = p["next_attempt_at"].as_str() {
        let _ = writeln!(out, "  next attempt    {at}");
    }
    if p["cancel_requested"] == true {
        let _ = writeln!(
            out,
            "  cancel requested (the open attempt is settled first)"
        );
    }
    if let Some(reason) = p["attention"]["reason"].as_str() {
        let _ = writeln!(out, "  requires attention: {reason}");
    }
    if let Some(e) = p["last_error"].as_str() {
        let _ = writeln!(out, "  last error      {e}");
    }
    let _ = writeln!(
        out,
        "  attempts        {}",
        p["attempts"].as_array().map_or(0, Vec::len)
    );
    out
}

pub fn payments(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|p| {
                    vec![
                        s(&p["id"]).to_owned(),
                        s(&p["status"]).to_owned(),
                        amount(p),
                        s(&p["customer"]).to_owned(),
                        s(&p["created_at"]).to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(&["ID", "STATUS", "AMOUNT", "CUSTOMER", "CREATED"], &rows);
    if page["has_more"] == true
        && let Some(last) = rows.last()
    {
        let _ = writeln!(out, "more: --starting-after {}", last[0]);
    }
    out
}

fn who(v: &Value) -> String {
    match (v["type"].as_str(), v["id"].as_str()) {
        (Some(t), Some(id)) => format!("{t} {id}"),
        _ => "flint".to_owned(),
    }
}

/// A payment's story: its attempts (card, outcome, codes, the rule behind a block), then
/// every event with who acted and why.
pub fn timeline(p: &Value) -> String {
    let mut out = payment(p);
    let attempts: Vec<Vec<String>> = p["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    vec![
                        a["number"].to_string(),
                        s(&a["started_at"]).to_owned(),
                        s(&a["payment_method"]).to_owned(),
                        a["outcome"].as_str().unwrap_or("open").to_owned(),
                        s(&a["decline_code"]).to_owned(),
                        s(&a["advice_code"]).to_owned(),
                        s(&a["network_rule"]).to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !attempts.is_empty() {
        let _ = writeln!(out, "\nATTEMPTS");
        out.push_str(&table(
            &[
                "#", "STARTED", "CARD", "OUTCOME", "DECLINE", "ADVICE", "RULE",
            ],
            &attempts,
        ));
    }
    let events: Vec<Vec<String>> = p["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    vec![
                        s(&e["created_at"]).to_owned(),
                        s(&e["type"])
                            .trim_start_matches("off_session_payment.")
                            .to_owned(),
                        who(&e["initiated_by"]),
                        e["detail"]
                            .as_str()
                            .or_else(|| e["initiated_by"]["reason"].as_str())
                            .unwrap_or("-")
                            .to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "\nTIMELINE");
    out.push_str(&table(&["WHEN", "EVENT", "WHO", "WHY"], &events));
    out
}

pub fn event(e: &Value) -> String {
    format!(
        "{}  {}  {}  payment {} ({})  by {}{}\n",
        s(&e["id"]),
        s(&e["type"]),
        s(&e["created_at"]),
        s(&e["data"]["object"]["id"]),
        s(&e["data"]["object"]["status"]),
        who(&e["initiated_by"]),
        e["detail"]
            .as_str()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )
}

pub fn events(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| {
                    vec![
                        s(&e["id"]).to_owned(),
                        s(&e["type"]).to_owned(),
                        s(&e["data"]["object"]["id"]).to_owned(),
                        s(&e["created_at"]).to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(&["ID", "TYPE", "PAYMENT", "CREATED"], &rows);
    if page["has_more"] == true
        && let Some(last) = rows.last()
    {
        let _ = writeln!(out, "more: --starting-after {}", last[0]);
    }
    out
}

pub fn endpoint(e: &Value) -> String {
    let events: Vec<&str> = e["enabled_events"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let mut out = format!(
        "{}  {}  {}  events: {}\n",
        s(&e["id"]),
        s(&e["url"]),
        if e["disabled"] == true {
            "disabled"
        } else {
            "enabled"
        },
        events.join(",")
    );
    if let Some(secret) = e["secret"].as_str() {
        let _ = writeln!(out, "secret (shown only now): {secret}");
    }
    out
}

pub fn endpoints(page: &Value) -> String {
    page["data"]
        .as_array()
        .map(|d| d.iter().map(endpoint).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_timeline_names_each_attempt_decision_rule_and_actor() {
        let p = json!({
            "id": "osp_1", "status": "failed", "amount": {"value": 2000, "currency": "usd"},
            "customer": "cus_1", "payment_method": "pm_1", "purpose": "support",
            "attempts": [{"number": 1, "started_at": "t1", "payment_method": "pm_1",
                          "outcome": "blocked_by_network_rule", "network_rule": "visa_category_1"}],
            "events": [
                {"type": "off_session_payment.created", "created_at": "t0",
                 "initiated_by": {"type": "operator", "id": "ann"}},
                {"type": "off_session_payment.failed", "created_at": "t2", "detail": "lost card"}
            ]
        });
        let text = timeline(&p);
        assert!(text.contains("osp_1  failed  2000 USD"), "{text}");
        assert!(text.contains("blocked_by_network_rule"), "{text}");
        assert!(text.contains("visa_category_1"), "{text}");
        assert!(text.contains("operator ann"), "{text}");
        let failed_line = text
            .lines()
            .find(|l| l.contains("lost card"))
            .unwrap_or_default();
        let words: Vec<&str> = failed_line.split_whitespace().collect();
        assert_eq!(words, ["t2", "failed", "flint", "lost", "card"], "{text}");
    }
}
