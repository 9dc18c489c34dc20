//! Listing a tenant's payments and events: newest first, from the indexes whose union is the
//! filter's listing (one status's index, or every status's; likewise for event types), one
//! script call per partition and page whatever the filter. With several partitions each is
//! asked for a page after the same cursor and the pages are merged ([`merge`]).

use super::documents;
use super::{Layout, Store, StoreError};
use crate::payment::{Payment, Status};

/// A page of payments.
#[derive(Debug)]
pub struct Page {
    pub payments: Vec<Payment>,
    /// More payments follow the last one (pass its id as the next cursor).
    pub has_more: bool,
}

/// Records as stored (JSON), newest first, and whether more follow.
pub(super) type Records = (Vec<String>, bool);

/// Which indexes a listing reads, in every partition.
pub(super) struct Listing<'a> {
    /// Whose records: entries of another tenant's are skipped.
    pub tenant: &'a str,
    /// The indexes (ids by time) whose union is the filter's listing.
    pub indexes: &'a (dyn Fn(&Layout) -> Vec<String> + Sync),
    /// The tenant's indexes of such records, one per status (or event type), which together
    /// hold every one: where a cursor's position is looked up (a record that moved to another
    /// status since the page before is found all the same).
    pub all: &'a (dyn Fn(&Layout) -> Vec<String> + Sync),
    /// The prefix of the records' keys.
    pub prefix: &'a (dyn Fn(&Layout) -> String + Sync),
    /// Events: the prefix of the payments' keys, where an unchanged payment keeps its
    /// `created` event (`lua/events.lua`).
    pub created_in: Option<&'a (dyn Fn(&Layout) -> String + Sync)>,
    /// The partition the cursor must be in, when its id says (payments); `None` looks in
    /// every partition (events).
    pub cursor_home: Option<usize>,
}

impl Store {
    /// At most `limit` of the tenant's payments (of `customer`, in `status`), newest first,
    /// after the payment `starting_after`. `None` when the cursor is not one of the tenant's
    /// payments.
    pub async fn list(
        &self,
        tenant: &str,
        customer: Option<&str>,
        status: Option<Status>,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Option<Page>, StoreError> {
        let statuses = |l: &Layout, customer| {
            Status::ALL
                .iter()
                .map(|s| l.index(tenant, customer, Some(*s)))
                .collect()
        };
        let listing = Listing {
            tenant,
            indexes: &|l: &Layout| match status {
                Some(_) => vec![l.index(tenant, customer, status)],
                None => statuses(l, customer),
            },
            all: &|l: &Layout| statuses(l, None),
            prefix: &|l: &Layout| l.payment_prefix(),
            created_in: None,
            cursor_home: starting_after.map(|id| self.partitions.of_payment(id)),
        };
        let Some((records, has_more)) = self.page(&listing, limit, starting_after).await? else {
            return Ok(None);
        };
        let payments = records
            .iter()
            .map(|json| serde_json::from_str(json))
            .collect::<Result<_, _>>()?;
        Ok(Some(Page { payments, has_more }))
    }

    /// A page of `listing` after `starting_after`, merged over the partitions. `None` when the
    /// cursor is not one of the tenant's records.
    pub(super) async fn page(
        &self,
        listing: &Listing<'_>,
        limit: usize,
        starting_after: Option<&str>,
    ) -> Result<Option<Records>, StoreError> {
        let conn = self.conn().await?;
        if self.layouts.len() == 1 {
            // The script finds the cursor itself: one round trip.
            let part = self
                .page_of(conn, &self.layouts[0], listing, limit, starting_after, "")
                .await?;
            return Ok(part.map(|part| {
                let has_more = part.has_more;
                (part.entries.into_iter().map(|e| e.json).collect(), has_more)
            }));
        }
        let score = match starting_after {
            None => String::new(),
            Some(cursor) => match self.cursor_score(listing, cursor).await? {
                Some(score) => score,
                None => return Ok(None),
            },
        };
        let pages = self.layouts.iter().map(|layout| {
            self.page_of(conn.clone(), layout, listing, limit, starting_after, &score)
        });
        let mut parts = Vec::with_capacity(self.layouts.len());
        for part in futures::future::try_join_all(pages).await? {
            // The cursor's score is given, so no partition looks it up and none says missing.
            parts.push(part.unwrap_or_default());
        }
        Ok(Some(merge(parts, limit)))
    }

    /// The cursor's score in the tenant's indexes of all records, from the partition its id
    /// names or, when ids do not say, from whichever partition holds it.
    async fn cursor_score(
        &self,
        listing: &Listing<'_>,
        cursor: &str,
    ) -> Result<Option<String>, StoreError> {
        let homes: Vec<usize> = match listing.cursor_home {
            Some(p) => vec![p],
            None => (0..self.layouts.len()).collect(),
        };
        let conn = self.conn().await?;
        let scores = homes.into_iter().map(|p| {
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            for key in (listing.all)(&self.layouts[p]) {
                pipe.zscore(key, cursor);
            }
            async move { pipe.query_async::<Vec<Option<String>>>(&mut conn).await }
        });
        let scores = futures::future::try_join_all(scores).await?;
        Ok(scores.into_iter().flatten().flatten().next())
    }

    /// One partition's page (its `list.lua` call).
    async fn page_of(
        &self,
        mut conn: crate::redis_target::RedisConnection,
        layout: &Layout,
        listing: &Listing<'_>,
        limit: usize,
        starting_after: Option<&str>,
        cursor_score: &str,
    ) -> Result<Option<Part>, StoreError> {
        let indexes = (listing.indexes)(layout);
        // The indexes a cursor is looked up in, only when the script looks it up.
        let lookup = match (starting_after, cursor_score) {
            (Some(_), "") => (listing.all)(layout),
            _ => Vec::new(),
        };
        let mut invocation = self.scripts.list.prepare_invoke();
        for key in indexes.iter().chain(&lookup) {
            invocation.key(key);
        }
        let reply: Vec<redis::Value> = invocation
            .arg(listing.tenant)
            .arg(limit)
            .arg(starting_after.unwrap_or(""))
            .arg((listing.prefix)(layout))
            .arg(cursor_score)
            .arg(listing.created_in.map_or(String::new(), |f| f(layout)))
            .arg(indexes.len())
            .invoke_async(&mut conn)
            .await?;
        part(reply, listing.tenant)
    }
}

/// One record of a partition's page: its id and score (creation time, ms) order the merge.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub id: String,
    pub score: f64,
    pub json: String,
}

/// A partition's page, newest first, and whether it has more after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Part {
    pub entries: Vec<Entry>,
    pub has_more: bool,
}

/// Reads a `{'ok', has_more, id, score, form, document …}` reply of `tenant`'s records;
/// `None` for any other outcome.
fn part(reply: Vec<redis::Value>, tenant: &str) -> Result<Option<Part>, StoreError> {
    let Some((has_more, mut reply)) = ok_page(reply)? else {
        return Ok(None);
    };
    let mut entries = Vec::new();
    while let (Some(id), Some(score), Some(form), Some(doc)) =
        (reply.next(), reply.next(), reply.next(), reply.next())
    {
        let score: String = redis::from_redis_value(score)?;
        let id: String = redis::from_redis_value(id)?;
        let json = json_of(&id, tenant, form, doc)?;
        entries.push(Entry {
            id,
            score: score.parse().unwrap_or(0.0),
            json,
        });
    }
    Ok(Some(Part { entries, has_more }))
}

/// Reads a `{'ok', has_more, id, form, document …}` reply (one payment's events, of `tenant`);
/// `None` for any other outcome.
pub(super) fn records(
    reply: Vec<redis::Value>,
    tenant: &str,
) -> Result<Option<Records>, StoreError> {
    let Some((has_more, mut reply)) = ok_page(reply)? else {
        return Ok(None);
    };
    let mut records = Vec::new();
    while let (Some(id), Some(form), Some(doc)) = (reply.next(), reply.next(), reply.next()) {
        let id: String = redis::from_redis_value(id)?;
        records.push(json_of(&id, tenant, form, doc)?);
    }
    Ok(Some((records, has_more)))
}

/// The JSON of record `id` (a payment, or an event) from its form and document.
fn json_of(
    id: &str,
    tenant: &str,
    form: redis::Value,
    doc: redis::Value,
) -> Result<String, StoreError> {
    let form: Vec<u8> = redis::from_redis_value(form)?;
    let doc: Vec<u8> = redis::from_redis_value(doc)?;
    documents::json_of_document(id, tenant, &form, &doc)
}

/// The head of a page reply, `{'ok', has_more (0|1), …}`: whether more follow, and the rest.
/// `None` for any other outcome.
fn ok_page(
    reply: Vec<redis::Value>,
) -> Result<Option<(bool, std::vec::IntoIter<redis::Value>)>, StoreError> {
    let mut reply = reply.into_iter();
    let outcome: String = match reply.next() {
        Some(v) => redis::from_redis_value(v)?,
        None => return Ok(None),
    };
    if outcome != "ok" {
        return Ok(None);
    }
    let has_more: String = match reply.next() {
        Some(v) => redis::from_redis_value(v)?,
        None => String::new(),
    };
    Ok(Some((has_more == "1", reply)))
}

/// Whether `a` comes before `b` in a listing: newer first, and within one score the larger id
/// first (sorted sets order the members of one score by their bytes; a page walks them in
/// reverse).
fn newer(a: &Entry, b: &Entry) -> bool {
    a.score > b.score || (a.score == b.score && a.id.as_bytes() > b.id.as_bytes())
}

/// The first `limit` records of the partitions' pages merged newest first, and whether more
/// follow. A partition whose page ended with more after it holds only records older than its
/// page's last one, so the merge stops before anything older than that: what it returns is
/// exactly a prefix of the merged listing, and the last record is a sound next cursor.
pub(super) fn merge(parts: Vec<Part>, limit: usize) -> Records {
    let mut heads = vec![0usize; parts.len()];
    let mut out = Vec::with_capacity(limit);
    let mut stopped = false;
    while out.len() < limit {
        let best = (0..parts.len())
            .filter(|&p| heads[p] < parts[p].entries.len())
            .max_by(|&a, &b| {
                let (x, y) = (&parts[a].entries[heads[a]], &parts[b].entries[heads[b]]);
                if newer(x, y) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            });
        let Some(best) = best else { break };
        let candidate = &parts[best].entries[heads[best]];
        // A partition with more beyond its page: nothing older than its last record may pass.
        let blocked = parts.iter().enumerate().any(|(p, part)| {
            part.has_more
                && heads[p] == part.entries.len()
                && part
                    .entries
                    .last()
                    .is_none_or(|last| !newer(candidate, last))
        });
        if blocked {
            stopped = true;
            break;
        }
        out.push(candidate.json.clone());
        heads[best] += 1;
    }
    let more = stopped
        || parts
            .iter()
            .enumerate()
            .any(|(p, part)| part.has_more || heads[p] < part.entries.len());
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(entries: &[(f64, &str)], has_more: bool) -> Part {
        Part {
            entries: entries
                .iter()
                .map(|&(score, id)| Entry {
                    id: id.to_owned(),
                    score,
                    json: id.to_owned(),
                })
                .collect(),
            has_more,
        }
    }

    #[test]
    fn merges_partitions_newest_first() {
        struct Case {
            name: &'static str,
            parts: Vec<Part>,
            limit: usize,
            want: &'static [&'static str],
            more: bool,
        }
        let cases = [
            Case {
                name: "interleaved, all fits",
                parts: vec![
                    part(&[(5.0, "e"), (3.0, "c"), (1.0, "a")], false),
                    part(&[(4.0, "d"), (2.0, "b")], false),
                ],
                limit: 10,
                want: &["e", "d", "c", "b", "a"],
                more: false,
            },
            Case {
                name: "limit cuts the merge",
                parts: vec![
                    part(&[(5.0, "e"), (3.0, "c")], false),
                    part(&[(4.0, "d"), (2.0, "b")], false),
                ],
                limit: 3,
                want: &["e", "d", "c"],
                more: true,
            },
            Case {
                name: "exactly the limit, nothing after",
                parts: vec![part(&[(2.0, "b")], false), part(&[(1.0, "a")], false)],
                limit: 2,
                want: &["b", "a"],
                more: false,
            },
            Case {
                name: "same millisecond: larger id first",
                parts: vec![part(&[(7.0, "x")], false), part(&[(7.0, "y")], false)],
                limit: 5,
                want: &["y", "x"],
                more: false,
            },
            Case {
                name: "a partition with more holds back what is older than its last",
                parts: vec![
                    part(&[(9.0, "i"), (6.0, "f")], true),
                    part(&[(8.0, "h"), (5.0, "e"), (1.0, "a")], false),
                ],
                limit: 10,
                want: &["i", "h", "f"],
                more: true,
            },
            Case {
                name: "a partition with more and an empty page blocks everything",
                parts: vec![part(&[], true), part(&[(3.0, "c")], false)],
                limit: 10,
                want: &[],
                more: true,
            },
            Case {
                name: "a partition whose page is full says more",
                parts: vec![part(&[(3.0, "c"), (2.0, "b")], true), part(&[], false)],
                limit: 2,
                want: &["c", "b"],
                more: true,
            },
            Case {
                name: "no partitions hold anything",
                parts: vec![part(&[], false), part(&[], false), part(&[], false)],
                limit: 10,
                want: &[],
                more: false,
            },
        ];
        for case in cases {
            let (got, more) = merge(case.parts, case.limit);
            assert_eq!(got, case.want, "{}", case.name);
            assert_eq!(more, case.more, "{}", case.name);
        }
    }
}
