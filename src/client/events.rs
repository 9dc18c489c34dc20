//! `flint events …`.

use super::api::{Api, Failure, query, segment};
use super::args::EventsCommand;
use super::show;

pub async fn run(api: &Api, as_json: bool, command: &EventsCommand) -> Result<(), Failure> {
    match command {
        EventsCommand::List {
            kind,
            payment,
            limit,
            starting_after,
        } => {
            let q = query(&[
                ("type", kind.clone()),
                ("payment", payment.clone()),
                ("limit", limit.map(|l| l.to_string())),
                ("starting_after", starting_after.clone()),
            ]);
            let page = api.get(&format!("/v1/events{q}")).await?;
            show::print(as_json, &page, show::events);
        }
        EventsCommand::Get { id } => {
            let e = api.get(&format!("/v1/events/{}", segment(id)?)).await?;
            show::print(as_json, &e, show::event);
        }
        EventsCommand::Redeliver { id } => {
            let r = api
                .post(&format!("/v1/events/{}/redeliver", segment(id)?), None)
                .await?;
            show::print(as_json, &r, |r| {
                format!(
                    "{} queued for {} endpoint(s)\n",
                    r["event"].as_str().unwrap_or("-"),
                    r["endpoints"]
                )
            });
        }
    }
    Ok(())
}
