//! Where each slot's primary is, for durable acceptance on a Redis Cluster. A write that must
//! be followed by `WAIT` goes through a plain connection of its own to the primary of its
//! partition's slot ([`super::ack`]): a cluster connection would send the keyless `WAIT` to
//! every primary, and reconnect on its own between the write and the `WAIT`, after which a
//! `WAIT` covers nothing. The map comes from `CLUSTER SLOTS`, read through the cluster client,
//! and is read again after a node answers `MOVED` (the write was not run there; the slot it
//! named goes to the node it named) or a connection to a node breaks.

use std::sync::Mutex;

use crate::redis_target::RedisConnection;

/// A slot range and the `host:port` of its primary.
type Range = (u16, u16, String);

#[derive(Debug, Default)]
pub(super) struct SlotMap {
    ranges: Mutex<Option<Vec<Range>>>,
    /// Slots a node answered `MOVED` for, with the node it named: newer than any map read.
    moved: Mutex<std::collections::HashMap<u16, String>>,
}

impl SlotMap {
    fn ranges(&self) -> std::sync::MutexGuard<'_, Option<Vec<Range>>> {
        self.ranges.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address of `slot`'s primary, reading the map first when it is not known.
    pub(super) async fn primary(
        &self,
        slot: u16,
        conn: &mut RedisConnection,
    ) -> redis::RedisResult<String> {
        if let Some(address) = self.moved_to().get(&slot) {
            return Ok(address.clone());
        }
        if let Some(address) = lookup(self.ranges().as_deref().unwrap_or_default(), slot) {
            return Ok(address);
        }
        let ranges = read(conn).await?;
        let address = lookup(&ranges, slot);
        *self.ranges() = Some(ranges);
        address.ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "no primary serves the slot",
                format!("slot {slot}"),
            ))
        })
    }

    fn moved_to(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u16, String>> {
        self.moved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node answered `MOVED slot address`: the slot is served there now (kept apart, for
    /// the map read through the cluster client may come from a node that has not heard yet),
    /// and the rest of the map is read again, for a failover moves every slot of the node.
    pub(super) fn moved(&self, slot: u16, address: String) {
        self.moved_to().insert(slot, address);
        *self.ranges() = None;
    }

    /// The map is out of date (a node broke or died): read it again next time.
    pub(super) fn forget(&self) {
        *self.ranges() = None;
        self.moved_to().clear();
    }
}

fn lookup(ranges: &[Range], slot: u16) -> Option<String> {
    ranges
        .iter()
        .find(|(from, to, _)| (*from..=*to).contains(&slot))
        .map(|(_, _, address)| address.clone())
}

/// `CLUSTER SLOTS`: each range's first node is its primary.
async fn read(conn: &mut RedisConnection) -> redis::RedisResult<Vec<Range>> {
    let reply: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    Ok(flint_queue::slot_ranges(reply)
        .into_iter()
        .filter_map(|range| {
            let (host, port) = range.nodes.into_iter().next()?;
            Some((range.from, range.to, format!("{host}:{port}")))
        })
        .collect())
}

/// The `MOVED <slot> <host:port>` answer in a command's reply: the node does not serve the slot
/// (and ran nothing). A plain connection hands Redis's error replies back as values, not as
/// errors (they become errors only when the reply is converted), so both are looked at.
pub(super) fn moved(reply: &redis::RedisResult<redis::Value>) -> Option<(u16, String)> {
    match reply {
        Ok(value) => moved_value(value),
        Err(e) => moved_error(e),
    }
}

/// The first `MOVED` among a pipeline's replies (see [`moved`]).
pub(super) fn moved_any(replies: &redis::RedisResult<Vec<redis::Value>>) -> Option<(u16, String)> {
    match replies {
        Ok(values) => values.iter().find_map(moved_value),
        Err(e) => moved_error(e),
    }
}

fn moved_error(e: &redis::RedisError) -> Option<(u16, String)> {
    if e.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::Moved) {
        return None;
    }
    parse_moved(e.detail()?)
}

fn moved_value(value: &redis::Value) -> Option<(u16, String)> {
    match value {
        redis::Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::Moved) => {
            parse_moved(e.details()?)
        }
        _ => None,
    }
}

/// `<slot> <host:port>`, the details of a `MOVED`.
fn parse_moved(details: &str) -> Option<(u16, String)> {
    let mut words = details.split_ascii_whitespace();
    let slot = words.next()?.parse().ok()?;
    let address = words.next()?;
    let (host, port) = address.rsplit_once(':')?;
    (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| (slot, address.to_owned()))
}

/// `template` (a `cluster_nodes` URL, with its credentials) pointed at `address`.
pub(super) fn node_url(template: &str, address: &str) -> redis::RedisResult<String> {
    let invalid = |what: &str| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "cannot address a cluster node",
            what.to_owned(),
        ))
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("no port in the node's address"))?;
    let port: u16 = port.parse().map_err(|_| invalid("a bad port"))?;
    let mut url = url::Url::parse(template).map_err(|_| invalid("a bad cluster_nodes url"))?;
    // Redis names IPv6 nodes bare (`::1`, `fe80::1:6379` in a `MOVED`); a URL brackets them.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    url.set_host(Some(&host))
        .map_err(|_| invalid("a bad host in the node's address"))?;
    url.set_port(Some(port))
        .map_err(|()| invalid("a url that takes no port"))?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_found_in_its_range_and_nowhere_else() {
        let ranges = vec![
            (0, 5460, "10.0.0.1:6379".to_owned()),
            (5461, 10922, "10.0.0.2:6379".to_owned()),
            (10923, 16383, "10.0.0.3:6379".to_owned()),
        ];
        for (slot, want) in [
            (0, Some("10.0.0.1:6379")),
            (5460, Some("10.0.0.1:6379")),
            (5461, Some("10.0.0.2:6379")),
            (16383, Some("10.0.0.3:6379")),
        ] {
            assert_eq!(lookup(&ranges, slot).as_deref(), want, "{slot}");
        }
        assert_eq!(lookup(&ranges[..2], 12000), None);
    }

    #[test]
    fn a_moved_answer_is_found_as_a_reply_or_as_an_error() {
        let reply = |resp: &str| redis::parse_redis_value(resp.as_bytes()).unwrap();
        let to = Some((6904, "127.0.0.1:42191".to_owned()));
        type Case = (
            &'static str,
            redis::RedisResult<redis::Value>,
            Option<(u16, String)>,
        );
        let cases: Vec<Case> = vec![
            // What a plain connection answers a write to a slot served elsewhere.
            (
                "error reply",
                Ok(reply("-MOVED 6904 127.0.0.1:42191\r\n")),
                to.clone(),
            ),
            (
                "as an error",
                reply("-MOVED 6904 127.0.0.1:42191\r\n").extract_error(),
                to.clone(),
            ),
            (
                "ask is not moved",
                Ok(reply("-ASK 6904 127.0.0.1:42191\r\n")),
                None,
            ),
            ("other error", Ok(reply("-ERR unknown command\r\n")), None),
            ("no port", Ok(reply("-MOVED 6904 127.0.0.1\r\n")), None),
            ("no slot", Ok(reply("-MOVED 127.0.0.1:42191\r\n")), None),
            ("a plain reply", Ok(reply("+OK\r\n")), None),
        ];
        for (what, result, want) in cases {
            assert_eq!(moved(&result), want, "{what}");
        }
        let pipeline = Ok(vec![
            reply("+OK\r\n"),
            reply("-MOVED 6904 127.0.0.1:42191\r\n"),
        ]);
        assert_eq!(moved_any(&pipeline), to);
        assert_eq!(moved_any(&Ok(vec![reply("+OK\r\n")])), None);
    }

    #[test]
    fn a_node_url_keeps_the_credentials_and_takes_the_address() {
        assert_eq!(
            node_url("redis://flint:s3cret@10.0.0.9:7000", "10.0.0.2:6380").unwrap(),
            "redis://flint:s3cret@10.0.0.2:6380"
        );
        assert_eq!(
            node_url("redis://127.0.0.1:7000", "127.0.0.1:7001").unwrap(),
            "redis://127.0.0.1:7001"
        );
        assert!(node_url("redis://127.0.0.1:7000", "nowhere").is_err());
        // IPv6, as CLUSTER SLOTS and MOVED name it (bare) and already bracketed.
        assert_eq!(
            node_url("redis://:s3cret@[::1]:7000", "::1:7001").unwrap(),
            "redis://:s3cret@[::1]:7001"
        );
        assert_eq!(
            node_url("redis://10.0.0.9:7000", "fd00::2:6379").unwrap(),
            "redis://[fd00::2]:6379"
        );
        assert_eq!(
            node_url("redis://10.0.0.9:7000", "[fd00::2]:6379").unwrap(),
            "redis://[fd00::2]:6379"
        );
    }
}
