//! A date filter's bounds as instants: a day's start is Postgres' to tell, in the session's
//! time zone (`database.time_zone`).

use chrono::{DateTime, Utc};

use crate::calendar::{Instants, Period, TimeBound};
use crate::store::{Store, StoreError};

impl Store {
    /// The instants a period's bounds stand for; a day's start is Postgres' to tell, in the
    /// session's time zone (one round trip, only when a bound is a day).
    #[cfg_attr(feature = "test-support", visibility::make(pub))]
    pub(crate) async fn instants(&self, period: Period) -> Result<Instants, StoreError> {
        let day = |bound: Option<TimeBound>| match bound {
            Some(TimeBound::Day(day)) => Some(day),
            _ => None,
        };
        let at = |bound: Option<TimeBound>| match bound {
            Some(TimeBound::At(at)) => Some(at),
            _ => None,
        };
        let (from_day, to_day) = (day(period.from), day(period.to));
        if from_day.is_none() && to_day.is_none() {
            return Ok(Instants { from: at(period.from), to: at(period.to) });
        }
        let (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT $1::date::timestamptz, $2::date::timestamptz")
                .bind(from_day)
                .bind(to_day)
                .fetch_one(&self.pg)
                .await?;
        Ok(Instants { from: from.or(at(period.from)), to: to.or(at(period.to)) })
    }
}
