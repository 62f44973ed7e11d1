//! Time as the model stores it: UTC milliseconds since the Unix epoch.

use chrono::{DateTime, NaiveDate, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub fn opt_datetime(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(to_datetime)
}

/// Dates are stored as 'YYYY-MM-DD' text; anything else in the column is a bug upstream.
pub fn parse_date(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

pub fn format_date(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.format("%Y-%m-%d").to_string())
}
