//! [`Period`]: the calendar month usage is counted and billed by.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{TenantError, TenantResult};
use riptide_store::tenant_id::truncate_for_error;

/// Earliest billable year (the Unix epoch: timestamps before it are not usage).
const MIN_YEAR: i32 = 1970;
/// Latest billable year: periods are written with four-digit years.
const MAX_YEAR: i32 = 9999;

/// A calendar month in UTC, written `YYYY-MM` (`2026-11`): the unit of usage and billing.
///
/// Ordered chronologically. Only years 1970 to 9999 exist, so every period has exactly
/// one seven-character spelling and a numeric form `YYYYMM` ([`Period::as_number`]) that
/// sorts the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    year: u16,
    month: u8,
}

impl Period {
    /// The period `year`-`month`; refused unless 1970 ≤ year ≤ 9999 and 1 ≤ month ≤ 12.
    pub fn new(year: i32, month: u32) -> TenantResult<Self> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(period_err(format!(
                "year {year} is outside {MIN_YEAR}..={MAX_YEAR}"
            )));
        }
        if !(1..=12).contains(&month) {
            return Err(period_err(format!("month {month} is outside 1..=12")));
        }
        // Both fit: checked by the ranges above.
        Ok(Self {
            year: year as u16,
            month: month as u8,
        })
    }

    /// Parses exactly `YYYY-MM` (four digits, a dash, two digits).
    pub fn parse(raw: &str) -> TenantResult<Self> {
        let bytes = raw.as_bytes();
        let shape_ok = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().chain(&bytes[5..]).all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(period_err(format!(
                "{:?} is not a month written YYYY-MM",
                truncate_for_error(raw)
            )));
        }
        // Only ASCII digits remain, so these parses cannot fail; map anyway rather than panic.
        let year = raw[..4]
            .parse::<i32>()
            .map_err(|e| period_err(e.to_string()))?;
        let month = raw[5..]
            .parse::<u32>()
            .map_err(|e| period_err(e.to_string()))?;
        Self::new(year, month)
    }

    /// The month `ts` falls in (UTC).
    pub fn of(ts: &DateTime<Utc>) -> TenantResult<Self> {
        Self::new(ts.year(), ts.month()).map_err(|_| TenantError::InvalidField {
            field: "timestamp",
            reason: format!("{ts} is outside the billable years {MIN_YEAR}..={MAX_YEAR}"),
        })
    }

    /// The month of a Unix time in milliseconds (from a [`riptide_store::clock::Clock`]).
    pub fn of_unix_ms(ms: u64) -> TenantResult<Self> {
        let ts = i64::try_from(ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        match ts {
            Some(ts) => Self::of(&ts),
            None => Err(TenantError::InvalidField {
                field: "timestamp",
                reason: format!("{ms} ms since the epoch is not a representable time"),
            }),
        }
    }

    /// The year.
    pub fn year(&self) -> i32 {
        i32::from(self.year)
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u32 {
        u32::from(self.month)
    }

    /// `YYYYMM` as a number (`202611`): a sort key, used as the score of the months index.
    pub fn as_number(&self) -> i64 {
        i64::from(self.year) * 100 + i64::from(self.month)
    }
}

fn period_err(reason: String) -> TenantError {
    TenantError::InvalidField {
        field: "period",
        reason,
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Period {
    type Err = TenantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}
