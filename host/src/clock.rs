//! Time as the model stores it: UTC milliseconds since the Unix epoch; and the one rule for
//! a business date: the calendar day at the dealer's offset from UTC
//! ([`crate::network::utc_offset_minutes`]; China Standard Time, UTC+8, unless the dealer
//! says otherwise). A car delivered at 07:00 in Beijing on the 1st is delivered on the 1st,
//! whatever the date in Greenwich.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

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

/// `[start, end)` of local days `from ..= to`, in UTC ms.
pub fn days_bounds_ms(from: NaiveDate, to: NaiveDate, offset_minutes: i32) -> (i64, i64) {
    let end = to.succ_opt().unwrap_or(to);
    (
        day_start_ms(from, offset_minutes),
        day_start_ms(end, offset_minutes),
    )
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

    #[test]
    fn local_days_run_from_midnight_to_midnight() {
        let (start, end) = days_bounds_ms(date(2026, 11, 1), date(2026, 11, 30), CST_MINUTES);
        assert_eq!(end - start, 30 * 24 * 3600 * 1000);
        assert_eq!(to_datetime(start).to_rfc3339(), "2026-10-31T16:00:00+00:00");
    }
}
