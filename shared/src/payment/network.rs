//! Card-network retry rules, per card (processor fingerprint) across all of a tenant's
//! payments (reference: payments-domain.md §6):
//! - Visa category-1 declines (the card can never succeed: lost, stolen, closed, …) are never
//!   retried on that card — `visa_category_1`;
//! - Visa allows at most 20 reattempts per card in 30 days — `visa_20_in_30_days`;
//! - Mastercard merchant advice codes 03 and 21 are never retried — `mastercard_advice_03`,
//!   `mastercard_advice_21`; 02 waits 72 hours — `mastercard_advice_02`;
//! - `card_decline_rate_limit_exceeded` waits 24 hours — `card_decline_rate_limit`.
//!
//! The decision ([`block_after_decline`]) is a pure function; [`CardRules`] keeps the state in
//! Redis under the queue's hash tag.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::processor::Decline;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const VISA_WINDOW_MS: i64 = 30 * DAY_MS;
const VISA_MAX_REATTEMPTS: usize = 20;

/// Visa category-1 decline codes (issuer will never approve).
const VISA_CATEGORY_1: &[&str] = &[
    "lost_card",
    "stolen_card",
    "pickup_card",
    "incorrect_number",
    "invalid_account",
    "restricted_card",
    "transaction_not_allowed",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
];

/// Why a card may not be charged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Never { rule: String },
    Until { at_ms: i64, rule: String },
}

impl Block {
    pub fn rule(&self) -> &str {
        match self {
            Block::Never { rule } | Block::Until { rule, .. } => rule,
        }
    }
}

/// The block a decline puts on its card, if any.
pub fn block_after_decline(brand: &str, decline: &Decline, now_ms: i64) -> Option<Block> {
    let code = decline
        .decline_code
        .as_deref()
        .unwrap_or(decline.code.as_str());
    if brand == "visa" && (VISA_CATEGORY_1.contains(&code) || decline.code == "incorrect_number") {
        return Some(Block::Never {
            rule: "visa_category_1".into(),
        });
    }
    if brand == "mastercard" {
        match decline.network_advice_code.as_deref() {
            Some("03") => {
                return Some(Block::Never {
                    rule: "mastercard_advice_03".into(),
                });
            }
            Some("21") => {
                return Some(Block::Never {
                    rule: "mastercard_advice_21".into(),
                });
            }
            Some("02") => {
                return Some(Block::Until {
                    at_ms: now_ms + 72 * HOUR_MS,
                    rule: "mastercard_advice_02".into(),
                });
            }
            Some(_) | None => {}
        }
    }
    if code == "card_decline_rate_limit_exceeded" {
        return Some(Block::Until {
            at_ms: now_ms + DAY_MS,
            rule: "card_decline_rate_limit".into(),
        });
    }
    None
}

#[derive(Debug)]
pub struct CardRules {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
}

impl CardRules {
    pub fn new(client: redis::Client, queue: &str) -> CardRules {
        CardRules {
            client,
            conn: OnceCell::new(),
            prefix: format!("flint:{{{queue}}}:card"),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, redis::RedisError> {
        Ok(self
            .conn
            .get_or_try_init(|| self.client.get_connection_manager())
            .await?
            .clone())
    }

    fn key(&self, tenant: &str, fingerprint: &str, what: &str) -> String {
        // Fingerprints are the processor's; hashed so keys never carry them verbatim.
        let card = hex::encode(&Sha256::digest(fingerprint.as_bytes())[..12]);
        format!("{}:{tenant}:{card}:{what}", self.prefix)
    }

    /// The rule that blocks charging this card now, if one does.
    pub async fn check(
        &self,
        tenant: &str,
        fingerprint: &str,
        brand: &str,
        now_ms: i64,
    ) -> Result<Option<Block>, redis::RedisError> {
        let mut conn = self.conn().await?;
        let stored: Option<String> = conn.get(self.key(tenant, fingerprint, "block")).await?;
        if let Some(stored) = stored {
            let mut parts = stored.splitn(3, '|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("never"), Some(rule), None) => {
                    return Ok(Some(Block::Never {
                        rule: rule.to_owned(),
                    }));
                }
                (Some("until"), Some(at), Some(rule)) => {
                    if let Ok(at_ms) = at.parse::<i64>()
                        && at_ms > now_ms
                    {
                        return Ok(Some(Block::Until {
                            at_ms,
                            rule: rule.to_owned(),
                        }));
                    }
                }
                _ => {}
            }
        }
        if brand == "visa" {
            let declines = self.key(tenant, fingerprint, "declines");
            let recent: Vec<(String, f64)> = conn
                .zrangebyscore_withscores(&declines, now_ms - VISA_WINDOW_MS, "+inf")
                .await?;
            if recent.len() >= VISA_MAX_REATTEMPTS {
                let oldest = recent.first().map_or(now_ms, |(_, at)| *at as i64);
                return Ok(Some(Block::Until {
                    at_ms: oldest + VISA_WINDOW_MS,
                    rule: "visa_20_in_30_days".into(),
                }));
            }
        }
        Ok(None)
    }

    /// Counts a decline against the card and stores the block it causes; returns that block.
    pub async fn record_decline(
        &self,
        tenant: &str,
        fingerprint: &str,
        brand: &str,
        decline: &Decline,
        now_ms: i64,
    ) -> Result<Option<Block>, redis::RedisError> {
        let mut conn = self.conn().await?;
        let declines = self.key(tenant, fingerprint, "declines");
        let member = format!("{now_ms}-{}", crate::ids::random_token(6));
        let () = redis::pipe()
            .zadd(&declines, member, now_ms)
            .ignore()
            .zrembyscore(&declines, "-inf", now_ms - VISA_WINDOW_MS)
            .ignore()
            .pexpire(&declines, VISA_WINDOW_MS + DAY_MS)
            .ignore()
            .query_async(&mut conn)
            .await?;
        let block = block_after_decline(brand, decline, now_ms);
        let key = self.key(tenant, fingerprint, "block");
        match &block {
            Some(Block::Never { rule }) => {
                // Kept for 13 months, longer than any card's retry story.
                let () = conn
                    .set_ex(key, format!("never|{rule}"), 400 * 24 * 3600)
                    .await?;
            }
            Some(Block::Until { at_ms, rule }) => {
                let ttl = Duration::from_millis(u64::try_from(at_ms - now_ms).unwrap_or(0).max(1));
                let () = conn
                    .pset_ex(
                        key,
                        format!("until|{at_ms}|{rule}"),
                        u64::try_from(ttl.as_millis()).unwrap_or(1),
                    )
                    .await?;
            }
            None => {}
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: &str, decline_code: Option<&str>, network_advice: Option<&str>) -> Decline {
        Decline {
            code: code.into(),
            decline_code: decline_code.map(Into::into),
            advice_code: None,
            network_advice_code: network_advice.map(Into::into),
            message: String::new(),
            charge: None,
            intent_id: None,
            request_id: None,
        }
    }

    #[test]
    fn each_network_rule_blocks_as_the_network_says() {
        let now = 1_000_000;
        let never = |rule: &str| Some(Block::Never { rule: rule.into() });
        assert_eq!(
            block_after_decline("visa", &d("card_declined", Some("lost_card"), None), now),
            never("visa_category_1")
        );
        assert_eq!(
            block_after_decline("visa", &d("incorrect_number", None, None), now),
            never("visa_category_1")
        );
        assert_eq!(
            block_after_decline(
                "visa",
                &d("card_declined", Some("insufficient_funds"), None),
                now
            ),
            None
        );
        assert_eq!(
            block_after_decline(
                "mastercard",
                &d("card_declined", Some("lost_card"), None),
                now
            ),
            None,
            "a Visa rule"
        );
        assert_eq!(
            block_after_decline(
                "mastercard",
                &d("card_declined", Some("do_not_honor"), Some("03")),
                now
            ),
            never("mastercard_advice_03")
        );
        assert_eq!(
            block_after_decline(
                "mastercard",
                &d("card_declined", Some("do_not_honor"), Some("21")),
                now
            ),
            never("mastercard_advice_21")
        );
        assert_eq!(
            block_after_decline(
                "mastercard",
                &d("card_declined", Some("insufficient_funds"), Some("02")),
                now
            ),
            Some(Block::Until {
                at_ms: now + 72 * HOUR_MS,
                rule: "mastercard_advice_02".into()
            })
        );
        assert_eq!(
            block_after_decline(
                "amex",
                &d(
                    "card_declined",
                    Some("card_decline_rate_limit_exceeded"),
                    None
                ),
                now
            ),
            Some(Block::Until {
                at_ms: now + DAY_MS,
                rule: "card_decline_rate_limit".into()
            })
        );
    }
}
