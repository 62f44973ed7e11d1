//! Time as the model stores it: UTC milliseconds since the Unix epoch; and the one rule for
//! a business date: the calendar day at the dealer's offset from UTC
//! ([`crate::network::utc_offset_minutes`]; China Standard Time, UTC+8, unless the dealer
//! says otherwise). A car delivered at 07:00 in Beijing on the 1st is delivered on the 1st,
//! whatever the date in Greenwich.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{Error, FieldError, Result};

/// China Standard Time (UTC+8), in minutes east of UTC: the offset of a dealer naming none.
pub const CST_MINUTES: i32 = 480;

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub fn opt_datetime(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_datetime)
}

/// The business date at `at_ms` for a dealer `offset_minutes` east of UTC.
pub fn business_date(at_ms: i64, offset_minutes: i32) -> NaiveDate {
    to_datetime(at_ms.saturating_add(i64::from(offset_minutes) * 60_000)).date_naive()
}

/// Today, at `offset_minutes` east of UTC.
pub fn today(offset_minutes: i32) -> NaiveDate {
    business_date(now_ms(), offset_minutes)
}

/// Today in China (UTC+8): the business date where no dealer is at hand.
pub fn today_cst() -> NaiveDate {
    today(CST_MINUTES)
}

/// The start of local day `day` (its midnight at `offset_minutes` east of UTC), in UTC ms.
pub fn day_start_ms(day: NaiveDate, offset_minutes: i32) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
        - i64::from(offset_minutes) * 60_000
}

/// `[start, end)` of the local month holding `day`, in UTC ms.
pub fn month_bounds_ms(day: NaiveDate, offset_minutes: i32) -> (i64, i64) {
    let first = day.with_day(1).unwrap_or(day);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    (
        day_start_ms(first, offset_minutes),
        day_start_ms(next, offset_minutes),
    )
}

/// A reporting period, as the query parameters `from` and `to`: whole local days
/// `from ..= to` at the dealer's offset (`from=2026-11-01&to=2026-11-30` is all of November in
/// Beijing), or exact RFC 3339 times, `to` excluded.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// First day `YYYY-MM-DD`, or an RFC 3339 time.
    pub from: String,
    /// Last day `YYYY-MM-DD` (included), or an RFC 3339 time (excluded).
    pub to: String,
}

impl Period {
    /// `[start, end)` in UTC ms, days read at `offset_minutes` east of UTC; refuses a bound
    /// that is neither a date nor a time (`invalid_time`) and a period that ends before it
    /// starts, or where it starts (`to`: `before_from`).
    pub fn bounds_ms(&self, offset_minutes: i32) -> Result<(i64, i64)> {
        let start = bound_ms("from", &self.from, false, offset_minutes)?;
        let end = bound_ms("to", &self.to, true, offset_minutes)?;
        if end <= start {
            return Err(Error::invalid(
                "to",
                "before_from",
                "the period ends before it starts",
            ));
        }
        Ok((start, end))
    }
}

/// A period bound in UTC ms: a date's local midnight (`end`: the next one), or a time.
pub fn bound_ms(field: &str, value: &str, end: bool, offset_minutes: i32) -> Result<i64> {
    let value = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end { date.succ_opt() } else { Some(date) };
        if let Some(day) = day {
            return Ok(day_start_ms(day, offset_minutes));
        }
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Error::Invalid(vec![FieldError::new(
                field,
                "invalid_time",
                format!("{field} is a date YYYY-MM-DD or an RFC 3339 time"),
            )])
        })
}

/// Dates are stored as 'YYYY-MM-DD' text; anything else in the column is a bug upstream.
pub fn parse_date(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

pub fn format_date(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn seven_in_the_morning_in_beijing_is_the_first_while_greenwich_is_still_on_the_last() {
        let at = date(2026, 2, 28)
            .and_hms_opt(23, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(business_date(at, CST_MINUTES), date(2026, 3, 1));
        assert_eq!(business_date(at, 0), date(2026, 2, 28));
        let (start, end) = month_bounds_ms(date(2026, 3, 15), CST_MINUTES);
        assert!(start <= at && at < end);
        assert_eq!(to_datetime(start).to_rfc3339(), "2026-02-28T16:00:00+00:00");
        assert_eq!(to_datetime(end).to_rfc3339(), "2026-03-31T16:00:00+00:00");
    }

    fn period(from: &str, to: &str) -> Period {
        Period {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    #[test]
    fn a_period_is_whole_local_days_or_exact_times_and_never_backwards() {
        let (from, to) = period("2026-11-01", "2026-11-30")
            .bounds_ms(CST_MINUTES)
            .unwrap();
        assert_eq!(to - from, 30 * 24 * 3600 * 1000);
        assert_eq!(to_datetime(from).to_rfc3339(), "2026-10-31T16:00:00+00:00");
        let (from, to) = period("2026-11-01T08:00:00Z", "2026-11-01T09:00:00+00:00")
            .bounds_ms(CST_MINUTES)
            .unwrap();
        assert_eq!(to - from, 3600 * 1000);
        let field_and_code = |e: Error| match e {
            Error::Invalid(errors) => (errors[0].field.clone(), errors[0].code.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field_and_code(period("2026-11-02", "2026-11-01").bounds_ms(0).unwrap_err()),
            ("to".to_owned(), "before_from".to_owned())
        );
        assert_eq!(
            field_and_code(period("yesterday", "2026-11-01").bounds_ms(0).unwrap_err()),
            ("from".to_owned(), "invalid_time".to_owned())
        );
    }
}
