//! Name resolution for deliveries that refuses addresses outside the public internet, so that
//! an endpoint's host name cannot lead the workers to a service inside the platform's network
//! (`[webhooks] allow_private_networks` lifts it, for local receivers). reqwest resolves each
//! connection through this; a name with only private addresses fails the delivery like an
//! unreachable host.

use std::net::SocketAddr;

use flint_shared::webhook::endpoint::public_address;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| public_address(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}
