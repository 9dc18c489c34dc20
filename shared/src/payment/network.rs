//! Card-network retry rules, per card (the processor's fingerprint) across all of a tenant's
//! payments:
//! - Visa category-1 declines (the card can never succeed: lost, stolen, closed, …) are never
//!   retried on that card — [`NetworkRule::VisaCategory1`];
//! - Visa allows at most 20 reattempts per card in 30 days — [`NetworkRule::Visa20In30Days`];
//! - Mastercard merchant advice codes 03 and 21 are never retried; 02 waits 72 hours;
//! - `card_decline_rate_limit_exceeded` waits 24 hours.
//!
//! What a decline means is a pure function ([`block_after_decline`]). The state lives in Redis
//! under the queue's hash tag and every change is one script, because concurrent attempts on
//! one card (two payments of the same customer, a resumed payment and a scheduled one) must
//! neither slip past the Visa count together nor weaken each other's blocks:
//! - [`CardRules::reserve`] checks the card's block and, for a Visa card that has declined in the
//!   last 30 days, takes this attempt's place among the 20 reattempts in the same script
//!   (check-then-act across two calls let two attempts both take the 20th place). A card
//!   without a recent decline has no reattempts to count, so attempts on it reserve nothing;
//! - [`CardRules::record`] stores what the attempt's answer says; a block only ever gets
//!   stronger (a Mastercard 03 "never" from one attempt is not replaced by a 02 "72 hours" from
//!   another that finished later).

use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};

use crate::codes::string_codes;
use crate::payment::decline::{Decline, NetworkAdviceCode};
use crate::processor::{CardBrand, CardInfo};
use crate::redis_target::{LazyConnection, RedisConnection, RedisTarget, Timeouts};
use crate::time::Timestamp;

const VISA_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
const VISA_MAX_REATTEMPTS: u32 = 20;
/// How long a "never" block is kept: longer than any card's retry story.
const NEVER_KEPT: Duration = Duration::from_secs(400 * 24 * 3600);

string_codes! {
    /// The card-network rule behind a block (also the `rule` label of
    /// `flint_network_rule_blocks_total`).
    NetworkRule {
        VisaCategory1 => "visa_category_1",
        Visa20In30Days => "visa_20_in_30_days",
        MastercardAdvice02 => "mastercard_advice_02",
        MastercardAdvice03 => "mastercard_advice_03",
        MastercardAdvice21 => "mastercard_advice_21",
        CardDeclineRateLimit => "card_decline_rate_limit",
    }
}

/// Why a card may not be charged now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Never { rule: NetworkRule },
    Until { at: Timestamp, rule: NetworkRule },
}

impl Block {
    pub fn rule(&self) -> &NetworkRule {
        match self {
            Block::Never { rule } | Block::Until { rule, .. } => rule,
        }
    }

    /// As stored: `never|rule` or `until|ms|rule`.
    fn encode(&self) -> String {
        match self {
            Block::Never { rule } => format!("never|{rule}"),
            Block::Until { at, rule } => format!("until|{}|{rule}", at.unix_ms()),
        }
    }

    fn decode(stored: &str) -> Option<Block> {
        let mut parts = stored.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("never"), Some(rule), None) => Some(Block::Never {
                rule: NetworkRule::parse(rule),
            }),
            (Some("until"), Some(at), Some(rule)) => Some(Block::Until {
                at: Timestamp::from_unix_ms(at.parse().ok()?),
                rule: NetworkRule::parse(rule),
            }),
            _ => None,
        }
    }
}

/// The block a decline puts on its card, if any.
pub fn block_after_decline(brand: &CardBrand, decline: &Decline, now: Timestamp) -> Option<Block> {
    if *brand == CardBrand::Visa
        && (decline.reason().is_visa_category_1() || decline.code.is_visa_category_1())
    {
        return Some(Block::Never {
            rule: NetworkRule::VisaCategory1,
        });
    }
    if *brand == CardBrand::Mastercard {
        match &decline.network_advice_code {
            Some(NetworkAdviceCode::DoNotTryAgain) => {
                return Some(Block::Never {
                    rule: NetworkRule::MastercardAdvice03,
                });
            }
            Some(NetworkAdviceCode::StopRecurring) => {
                return Some(Block::Never {
                    rule: NetworkRule::MastercardAdvice21,
                });
            }
            Some(NetworkAdviceCode::TryLater) => {
                return Some(Block::Until {
                    at: now.plus(Duration::from_secs(72 * 3600)),
                    rule: NetworkRule::MastercardAdvice02,
                });
            }
            Some(NetworkAdviceCode::Other(_)) | None => {}
        }
    }
    if *decline.reason() == crate::payment::decline::DeclineCode::CardDeclineRateLimitExceeded {
        return Some(Block::Until {
            at: now.plus(Duration::from_secs(24 * 3600)),
            rule: NetworkRule::CardDeclineRateLimit,
        });
    }
    None
}

/// Check a card's block and, for a Visa card with declines in the window, take this attempt's
/// place among the reattempts.
/// KEYS: block, declines (member per declined attempt, score ms), reserved (member per running
///       reattempt, score ms)
/// ARGV: now_ms, attempt member, visa ('1'|'0'), window_ms, max reattempts
/// Returns '' when allowed, 'reserved' when allowed and counted (the record must give the place
/// back or keep it), else the block as stored (`never|rule`, `until|ms|rule`).
const RESERVE: &str = r"
local now = tonumber(ARGV[1])
local block = redis.call('GET', KEYS[1])
if block then
  if string.sub(block, 1, 6) == 'never|' then return block end
  local at = tonumber(string.match(block, '^until|(%d+)|'))
  if at and at > now then return block end
end
if ARGV[3] ~= '1' or redis.call('EXISTS', KEYS[2]) == 0 then return '' end
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local declines = redis.call('ZCARD', KEYS[2])
if declines == 0 then return '' end
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 'reserved' end
if declines + redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return 'until|' .. (tonumber(oldest[2]) + window) .. '|visa_20_in_30_days'
end
redis.call('ZADD', KEYS[3], now, ARGV[2])
redis.call('PEXPIRE', KEYS[3], window + 86400000)
return 'reserved'
";

/// Store what an attempt's answer says about its card.
/// KEYS: block, declines, reserved
/// ARGV: now_ms, attempt member, visa ('1'|'0'), window_ms, outcome ('declined'|'charged'|
///       'not_sent'), new block ('' | `never|rule` | `until|ms|rule`), never ttl ms
/// The attempt's reservation is released; a decline is counted. A new block is stored only if
/// it is stronger than the card's current one: `never` beats `until`; a later `until` beats an
/// earlier one. Returns the card's block after the change ('' for none).
const RECORD: &str = r"
local now = tonumber(ARGV[1])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  if ARGV[5] == 'declined' then
    redis.call('ZADD', KEYS[2], now, ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) + 86400000)
  end
end
local current = redis.call('GET', KEYS[1])
local function until_of(b)
  if not b then return nil end
  return tonumber(string.match(b, '^until|(%d+)|'))
end
local function live(b)
  if not b then return false end
  if string.sub(b, 1, 6) == 'never|' then return true end
  local at = until_of(b)
  return at ~= nil and at > now
end
if not live(current) then current = nil end
local new = ARGV[6]
if new == '' then return current or '' end
local stronger
if not current then
  stronger = true
elseif string.sub(current, 1, 6) == 'never|' then
  stronger = false
elseif string.sub(new, 1, 6) == 'never|' then
  stronger = true
else
  stronger = until_of(new) > until_of(current)
end
if not stronger then return current end
if string.sub(new, 1, 6) == 'never|' then
  redis.call('SET', KEYS[1], new, 'PX', ARGV[7])
else
  redis.call('SET', KEYS[1], new, 'PX', math.max(1, until_of(new) - now))
end
return new
";

/// What [`CardRules::reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Allowed, and nothing to give back (no reattempt is being counted on this card).
    Free,
    /// Allowed and counted: [`CardRules::record`] must say how the attempt ended.
    Counted,
    Blocked(Block),
}

impl Reservation {
    /// The block, if the card may not be charged now.
    pub fn block(self) -> Option<Block> {
        match self {
            Reservation::Blocked(block) => Some(block),
            Reservation::Free | Reservation::Counted => None,
        }
    }
}

/// What an attempt's answer says about its card, for [`CardRules::record`].
#[derive(Debug, Clone, Copy)]
pub enum CardOutcome<'a> {
    Declined(&'a Decline),
    /// Refused without a decline to read (authentication required): counted, no block.
    Refused,
    Charged,
    /// Nothing was sent after all (a cancel arrived): the reservation is released.
    NotSent,
}

#[derive(Debug)]
pub struct CardRules {
    redis: LazyConnection,
    prefix: String,
    reserve: Script,
    record: Script,
}

impl CardRules {
    pub fn new(target: RedisTarget, queue: &str) -> CardRules {
        CardRules {
            // A slow Redis costs an attempt at most this much per call (the rate limit then
            // lets the request go; a card rule call fails and the attempt is retried).
            redis: LazyConnection::new(
                target,
                Timeouts {
                    connect: Duration::from_secs(1),
                    response: Duration::from_millis(500),
                },
            ),
            prefix: format!("flint:{{{queue}}}:card"),
            reserve: Script::new(RESERVE),
            record: Script::new(RECORD),
        }
    }

    async fn conn(&self) -> Result<RedisConnection, redis::RedisError> {
        self.redis.get().await
    }

    /// Both scripts start the same: the card's keys, then now, the attempt, whether the card
    /// is a Visa, and the Visa window.
    fn invocation<'s>(
        &self,
        script: &'s Script,
        tenant: &str,
        card: &CardInfo,
        attempt: &str,
        now: Timestamp,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.keys(tenant, card)[..])
            .arg(now.unix_ms())
            .arg(attempt)
            .arg(if card.brand == CardBrand::Visa {
                "1"
            } else {
                "0"
            })
            .arg(window_ms());
        invocation
    }

    fn keys(&self, tenant: &str, card: &CardInfo) -> [String; 3] {
        // Fingerprints are the processor's; hashed so keys never carry them verbatim.
        let hash = hex::encode(&Sha256::digest(card.fingerprint.as_bytes())[..12]);
        ["block", "declines", "reserved"]
            .map(|what| format!("{}:{tenant}:{hash}:{what}", self.prefix))
    }

    /// The rule that forbids charging `card` now, if one does. Otherwise, when `card` is a Visa
    /// card that declined in the last 30 days, this attempt (`attempt`, unique per payment and
    /// attempt number) takes a place among its reattempts until [`CardRules::record`] says how
    /// it ended. Reserving the same attempt again is allowed and counts once.
    pub async fn reserve(
        &self,
        tenant: &str,
        card: &CardInfo,
        attempt: &str,
        now: Timestamp,
    ) -> Result<Reservation, redis::RedisError> {
        let mut conn = self.conn().await?;
        let stored: String = self
            .invocation(&self.reserve, tenant, card, attempt, now)
            .arg(VISA_MAX_REATTEMPTS)
            .invoke_async(&mut conn)
            .await?;
        Ok(match stored.as_str() {
            "" => Reservation::Free,
            "reserved" => Reservation::Counted,
            block => Block::decode(block).map_or(Reservation::Free, Reservation::Blocked),
        })
    }

    /// Stores what attempt `attempt`'s answer says about `card`; returns the block the card
    /// now has (the decline's own, or a stronger one already there).
    pub async fn record(
        &self,
        tenant: &str,
        card: &CardInfo,
        attempt: &str,
        outcome: CardOutcome<'_>,
        now: Timestamp,
    ) -> Result<Option<Block>, redis::RedisError> {
        let mut conn = self.conn().await?;
        let (kind, new) = match outcome {
            CardOutcome::Declined(d) => ("declined", block_after_decline(&card.brand, d, now)),
            CardOutcome::Refused => ("declined", None),
            CardOutcome::Charged => ("charged", None),
            CardOutcome::NotSent => ("not_sent", None),
        };
        let stored: String = self
            .invocation(&self.record, tenant, card, attempt, now)
            .arg(kind)
            .arg(new.as_ref().map_or_else(String::new, Block::encode))
            .arg(u64::try_from(NEVER_KEPT.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok(Block::decode(&stored))
    }
}

fn window_ms() -> u64 {
    u64::try_from(VISA_WINDOW.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::decline::DeclineCode;

    fn d(code: &str, decline_code: Option<&str>, network_advice: Option<&str>) -> Decline {
        Decline {
            code: DeclineCode::parse(code),
            decline_code: decline_code.map(DeclineCode::parse),
            advice_code: None,
            network_advice_code: network_advice.map(NetworkAdviceCode::parse),
            message: String::new(),
            charge: None,
            intent_id: None,
            request_id: None,
        }
    }

    #[test]
    fn each_network_rule_blocks_as_the_network_says() {
        let now = Timestamp::from_unix_ms(1_000_000);
        let (visa, mc, amex) = (
            CardBrand::Visa,
            CardBrand::Mastercard,
            CardBrand::parse("amex"),
        );
        let never = |rule| Some(Block::Never { rule });
        let until = |hours: u64, rule| {
            Some(Block::Until {
                at: now.plus(Duration::from_secs(hours * 3600)),
                rule,
            })
        };
        for (brand, decline, block) in [
            (
                &visa,
                d("card_declined", Some("lost_card"), None),
                never(NetworkRule::VisaCategory1),
            ),
            (
                &visa,
                d("incorrect_number", None, None),
                never(NetworkRule::VisaCategory1),
            ),
            (
                &visa,
                d("card_declined", Some("insufficient_funds"), None),
                None,
            ),
            // A Visa rule does not apply to Mastercard.
            (&mc, d("card_declined", Some("lost_card"), None), None),
            (
                &mc,
                d("card_declined", Some("do_not_honor"), Some("03")),
                never(NetworkRule::MastercardAdvice03),
            ),
            (
                &mc,
                d("card_declined", Some("do_not_honor"), Some("21")),
                never(NetworkRule::MastercardAdvice21),
            ),
            (
                &mc,
                d("card_declined", Some("insufficient_funds"), Some("02")),
                until(72, NetworkRule::MastercardAdvice02),
            ),
            (
                &amex,
                d(
                    "card_declined",
                    Some("card_decline_rate_limit_exceeded"),
                    None,
                ),
                until(24, NetworkRule::CardDeclineRateLimit),
            ),
        ] {
            assert_eq!(
                block_after_decline(brand, &decline, now),
                block,
                "{brand} {decline:?}"
            );
        }
    }

    #[test]
    fn blocks_round_trip_through_their_stored_form() {
        for block in [
            Block::Never {
                rule: NetworkRule::MastercardAdvice21,
            },
            Block::Until {
                at: Timestamp::from_unix_ms(1_800_000_000_000),
                rule: NetworkRule::Visa20In30Days,
            },
        ] {
            assert_eq!(Block::decode(&block.encode()), Some(block));
        }
        assert_eq!(Block::decode(""), None);
        assert_eq!(Block::decode("until|soon|x"), None);
    }
}
