//! `flint webhooks …`.

use serde_json::{Map, Value, json};

use super::api::{Api, Failure, segment};
use super::args::WebhooksCommand;
use super::show;

pub async fn run(api: &Api, as_json: bool, command: &WebhooksCommand) -> Result<(), Failure> {
    match command {
        WebhooksCommand::Create {
            url,
            events,
            description,
        } => {
            let mut body = json!({"url": url, "enabled_events": events});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let e = api.post("/v1/webhook_endpoints", Some(&body)).await?;
            show::print(as_json, &e, show::endpoint);
        }
        WebhooksCommand::List => {
            let page = api.get("/v1/webhook_endpoints").await?;
            show::print(as_json, &page, show::endpoints);
        }
        WebhooksCommand::Update {
            id,
            url,
            events,
            description,
            disable,
            enable,
        } => {
            let mut body = Map::new();
            if let Some(url) = url {
                body.insert("url".into(), json!(url));
            }
            if let Some(events) = events {
                body.insert("enabled_events".into(), json!(events));
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            if *disable || *enable {
                body.insert("disabled".into(), json!(*disable));
            }
            if body.is_empty() {
                return Err(Failure::usage(
                    "nothing to change: give --url, --events, --description, --disable or --enable",
                ));
            }
            let e = api
                .post(
                    &format!("/v1/webhook_endpoints/{}", segment(id)?),
                    Some(&Value::Object(body)),
                )
                .await?;
            show::print(as_json, &e, show::endpoint);
        }
        WebhooksCommand::Delete { id } => {
            let r = api
                .delete(&format!("/v1/webhook_endpoints/{}", segment(id)?))
                .await?;
            show::print(as_json, &r, |r| {
                format!("{} deleted\n", r["id"].as_str().unwrap_or("-"))
            });
        }
        WebhooksCommand::RotateSecret {
            id,
            expire_current_in_secs,
        } => {
            let body = expire_current_in_secs.map(|s| json!({"expire_current_in_secs": s}));
            let e = api
                .post(
                    &format!("/v1/webhook_endpoints/{}/rotate_secret", segment(id)?),
                    body.as_ref(),
                )
                .await?;
            show::print(as_json, &e, show::endpoint);
        }
    }
    Ok(())
}
