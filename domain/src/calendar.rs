//! Dates as operators mean them: the bounds of the control center's filters. A date
//! (`2026-12-05`) is the start of that day in the marketplace's time zone
//! (`database.time_zone`, Asia/Jakarta by default, every Postgres session's `TimeZone`), so
//! "the 5th" is the 5th in Jakarta, not in UTC; a full RFC 3339 time is taken as it is.

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

// `Store::instants` (domain/src/store/calendar.rs) turns a `Period` into `Instants`.

/// One end of a date filter, as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    /// The start (00:00) of a day in the marketplace's time zone.
    Day(NaiveDate),
    At(DateTime<Utc>),
}

/// Neither a date (`YYYY-MM-DD`) nor an RFC 3339 time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected a date (YYYY-MM-DD) or an RFC 3339 time")]
pub struct BadTimeBound;

impl FromStr for TimeBound {
    type Err = BadTimeBound;

    fn from_str(value: &str) -> Result<Self, BadTimeBound> {
        // Years 1 to 9999: what Postgres and every reader of the answer can hold.
        let in_range = |day: NaiveDate| (1..=9999).contains(&day.year());
        if let Ok(at) = value.parse::<DateTime<Utc>>() {
            return if in_range(at.date_naive()) { Ok(Self::At(at)) } else { Err(BadTimeBound) };
        }
        match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(day) if in_range(day) => Ok(Self::Day(day)),
            _ => Err(BadTimeBound),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TimeBound {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A filter's `[from, to)` as given; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<TimeBound>,
    pub to: Option<TimeBound>,
}

/// A [`Period`] as instants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Instants {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::{BadTimeBound, TimeBound};

    #[test]
    fn bounds_are_days_or_times() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).map(TimeBound::Day);
        assert_eq!("2026-12-05".parse().ok(), day);
        assert!(matches!("2026-12-05T10:00:00+07:00".parse(), Ok(TimeBound::At(_))));
        for bad in
            ["", "2026-13-01", "05-12-2026", "2026-12-05 10:00", "yesterday", "-5000-01-01", "0000-01-01"]
        {
            assert_eq!(bad.parse::<TimeBound>(), Err(BadTimeBound), "{bad:?}");
        }
    }
}
