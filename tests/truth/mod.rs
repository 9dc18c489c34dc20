//! What the processor holds, for the fleet tests that compare it with Flint's records.

use std::collections::HashMap;

use flint_testkit::sandbox::TestSandbox;
use serde_json::{Value, json};

/// The processor's truth: every PaymentIntent of `customers`, by `metadata[flint_payment_id]`.
pub async fn intents_by_payment(
    sandbox: &TestSandbox,
    customers: &[String],
) -> HashMap<String, Vec<Value>> {
    let mut by_payment: HashMap<String, Vec<Value>> = Default::default();
    for customer in customers {
        let mut after: Option<String> = None;
        loop {
            let mut call = sandbox
                .get("/v1/payment_intents")
                .params(&[("customer", customer.as_str()), ("limit", "100")]);
            if let Some(a) = &after {
                call = call.param("starting_after", a);
            }
            let page = call.send().await.body;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            for pi in &data {
                let pid = pi["metadata"]["flint_payment_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                by_payment.entry(pid).or_default().push(pi.clone());
            }
            if page["has_more"] != json!(true) {
                break;
            }
            after = data
                .last()
                .and_then(|p| p["id"].as_str())
                .map(str::to_owned);
        }
    }
    by_payment
}
