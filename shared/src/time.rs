//! Time as Flint reasons about it: a [`Timestamp`] is unix milliseconds, and is written as
//! RFC 3339 (UTC, millisecond precision) wherever a person or another service reads it — the
//! stored record, the API, logs.
//!
//! One type, so that no module keeps its own `now_ms()` or parses RFC 3339 on its own: the
//! charge decisions compare and add `Timestamp`s, and the edges format them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;

/// An instant, in unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The system clock now.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    pub const fn from_unix_ms(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn from_system_time(at: SystemTime) -> Timestamp {
        Timestamp(match at.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        })
    }

    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// The same instant for APIs that take a [`SystemTime`] (the queue's retry times).
    pub fn system_time(self) -> SystemTime {
        match u64::try_from(self.0) {
            Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
            Err(_) => UNIX_EPOCH,
        }
    }

    /// `d` later, saturating.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `d` earlier, saturating.
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this is (zero when it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Parses RFC 3339 (any offset); sub-millisecond digits are dropped.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let at = time::OffsetDateTime::parse(text, &Rfc3339).ok()?;
        i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000))
            .ok()
            .map(Timestamp)
    }

    /// RFC 3339 in UTC with millisecond precision (`2027-01-15T08:00:00.123Z`).
    pub fn rfc3339(self) -> String {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        at.format(&Rfc3339).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_utc_rfc3339_with_milliseconds() {
        assert_eq!(Timestamp::EPOCH.rfc3339(), "1970-01-01T00:00:00Z");
        let t = Timestamp::from_unix_ms(1_800_000_000_123);
        assert_eq!(t.rfc3339(), "2027-01-15T08:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2027-01-15T09:00:00.123456+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("tomorrow"), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2027-01-15T08:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }

    #[test]
    fn arithmetic_saturates_and_round_trips_through_system_time() {
        let t = Timestamp::from_unix_ms(1_000);
        assert_eq!(t.plus(Duration::from_millis(500)).unix_ms(), 1_500);
        assert_eq!(t.minus(Duration::from_secs(2)).unix_ms(), -1_000);
        assert_eq!(
            t.plus(Duration::from_secs(1)).since(t),
            Duration::from_secs(1)
        );
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
        assert_eq!(Timestamp::from_system_time(t.system_time()), t);
        assert_eq!(
            Timestamp::from_unix_ms(i64::MAX).plus(Duration::from_secs(1)),
            Timestamp::from_unix_ms(i64::MAX)
        );
    }
}
