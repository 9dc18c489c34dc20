//! `flint payments …`.

use serde_json::{Map, Value, json};

use super::api::{Api, Failure, query, segment};
use super::args::{ActorArgs, CreateArgs, PaymentsCommand, PurposeArg, StrategyArg};
use super::show;

pub async fn run(api: &Api, as_json: bool, command: &PaymentsCommand) -> Result<(), Failure> {
    match command {
        PaymentsCommand::Create(args) => create(api, as_json, args).await,
        PaymentsCommand::Get { id } => {
            let p = api
                .get(&format!("/v1/off_session_payments/{}", segment(id)?))
                .await?;
            show::print(as_json, &p, show::payment);
            Ok(())
        }
        PaymentsCommand::List {
            customer,
            status,
            limit,
            starting_after,
        } => {
            let q = query(&[
                ("customer", customer.clone()),
                ("status", status.clone()),
                ("limit", limit.map(|l| l.to_string())),
                ("starting_after", starting_after.clone()),
            ]);
            let page = api.get(&format!("/v1/off_session_payments{q}")).await?;
            show::print(as_json, &page, show::payments);
            Ok(())
        }
        PaymentsCommand::Cancel { id, actor } => {
            change(api, as_json, id, "cancel", actor_body(actor)?).await
        }
        PaymentsCommand::Resume {
            id,
            payment_method,
            actor,
        } => {
            let mut body = actor_body(actor)?;
            if let Some(pm) = payment_method {
                body.insert("payment_method".into(), json!(pm));
            }
            change(api, as_json, id, "resume", body).await
        }
        PaymentsCommand::RetryNow { id, actor } => {
            let current = api
                .get(&format!("/v1/off_session_payments/{}", segment(id)?))
                .await?;
            if current["status"] != "pending" {
                return Err(Failure::new(
                    super::Exit::Rejected,
                    format!(
                        "retry-now is for a pending payment waiting for a retry; {} is {} (use resume)",
                        id,
                        current["status"].as_str().unwrap_or("unknown")
                    ),
                ));
            }
            change(api, as_json, id, "resume", actor_body(actor)?).await
        }
        PaymentsCommand::Timeline { id } => {
            let p = api
                .get(&format!("/v1/off_session_payments/{}", segment(id)?))
                .await?;
            if as_json {
                show::print(true, &p, show::payment);
            } else {
                print!("{}", show::timeline(&p));
            }
            Ok(())
        }
    }
}

async fn change(
    api: &Api,
    as_json: bool,
    id: &str,
    action: &str,
    body: Map<String, Value>,
) -> Result<(), Failure> {
    let p = api
        .post(
            &format!("/v1/off_session_payments/{}/{action}", segment(id)?),
            Some(&Value::Object(body)),
        )
        .await?;
    show::print(as_json, &p, show::payment);
    Ok(())
}

/// `initiated_by` and `reason` of a change; an operator must say why.
fn actor_body(actor: &ActorArgs) -> Result<Map<String, Value>, Failure> {
    let mut body = Map::new();
    if let Some(op) = &actor.operator {
        if actor.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(Failure::usage(
                "--operator needs --reason (why the operator acts)",
            ));
        }
        body.insert("initiated_by".into(), json!({"type": "operator", "id": op}));
    } else if let Some(service) = &actor.service {
        body.insert(
            "initiated_by".into(),
            json!({"type": "service", "id": service}),
        );
    }
    if let Some(reason) = &actor.reason {
        body.insert("reason".into(), json!(reason));
    }
    Ok(body)
}

/// The create request a command line describes.
pub fn create_body(args: &CreateArgs) -> Result<Value, Failure> {
    let purpose = match args.purpose {
        PurposeArg::Subscription => "subscription",
        PurposeArg::RepeatPurchase => "repeat_purchase",
        PurposeArg::BalanceRecovery => "balance_recovery",
        PurposeArg::Support => "support",
    };
    let initiated_by = match (&args.actor.operator, &args.actor.reason) {
        (Some(op), Some(reason)) if !reason.trim().is_empty() => {
            json!({"type": "operator", "id": op, "reason": reason})
        }
        (Some(_), _) => {
            return Err(Failure::usage(
                "--operator needs --reason (why the operator charges)",
            ));
        }
        (None, _) if args.purpose == PurposeArg::Support => {
            return Err(Failure::usage(
                "--purpose support needs --operator and --reason (who charges, and why)",
            ));
        }
        (None, _) => json!({
            "type": "service",
            "id": args.actor.service.clone().unwrap_or_else(|| "flint-cli".to_owned())
        }),
    };
    let mut metadata = Map::new();
    for pair in &args.metadata {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(Failure::usage(format!(
                "--metadata takes KEY=VALUE, not {pair:?}"
            )));
        };
        metadata.insert(k.to_owned(), json!(v));
    }
    let mut body = json!({
        "customer": args.customer,
        "amount": {"value": args.amount, "currency": args.currency},
        "purpose": purpose,
        "initiated_by": initiated_by,
    });
    let fields = body.as_object_mut().expect("an object");
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            fields.insert(k.to_owned(), v);
        }
    };
    put(
        "payment_method",
        args.payment_method.clone().map(Value::from),
    );
    put("description", args.description.clone().map(Value::from));
    put(
        "statement_descriptor_suffix",
        args.statement_descriptor_suffix.clone().map(Value::from),
    );
    put("charge_at", args.charge_at.clone().map(Value::from));
    if !metadata.is_empty() {
        fields.insert("metadata".into(), Value::Object(metadata));
    }
    let context: Map<String, Value> = [
        ("order_id", &args.order_id),
        ("subscription_id", &args.subscription_id),
        ("invoice_id", &args.invoice_id),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), Value::from(v))))
    .collect();
    if !context.is_empty() {
        fields.insert("context".into(), Value::Object(context));
    }
    if args.retry_strategy.is_some()
        || args.max_attempts.is_some()
        || args.window_hours.is_some()
        || args.fallback_to_other_cards
    {
        let strategy = match args.retry_strategy.unwrap_or(StrategyArg::Scheduled) {
            StrategyArg::Scheduled => "scheduled",
            StrategyArg::None => "none",
        };
        let mut policy = json!({"strategy": strategy});
        if let Some(n) = args.max_attempts {
            policy["max_attempts"] = json!(n);
        }
        if let Some(h) = args.window_hours {
            policy["window_hours"] = json!(h);
        }
        if args.fallback_to_other_cards {
            policy["fallback_to_other_cards"] = json!(true);
        }
        fields.insert("retry_policy".into(), policy);
    }
    Ok(body)
}

async fn create(api: &Api, as_json: bool, args: &CreateArgs) -> Result<(), Failure> {
    let body = create_body(args)?;
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("cli-{}", flint_shared::ids::random_token(24)));
    // Shown before anything is sent, on stderr (so also with --json): if the command fails or
    // times out, running it again with this key cannot create a second payment.
    eprintln!("idempotency key: {key}");
    let answer = api
        .send(
            reqwest::Method::POST,
            "/v1/off_session_payments",
            Some(&body),
            Some(&key),
        )
        .await
        .map_err(|f| Failure {
            message: format!("{} (to retry safely: --idempotency-key {key})", f.message),
            ..f
        })?;
    if as_json {
        show::print(true, &answer.body, show::payment);
    } else {
        if answer.replayed {
            println!("already created with this idempotency key:");
        }
        print!("{}", show::payment(&answer.body));
    }
    Ok(())
}
