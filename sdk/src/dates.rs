//! Calendar dates as the contract writes them (`YYYY-MM-DD`), and durations for timestamps
//! (milliseconds since the Unix epoch, UTC).
//!
//! ```
//! use dealer_sdk::dates::{self, Date};
//!
//! let purchased: Date = "2024-01-31".parse().unwrap();
//! assert_eq!(purchased.add_months(1).to_string(), "2024-02-29");
//! assert_eq!(purchased.add_days(365).to_string(), "2025-01-30");
//! assert_eq!(purchased.days_until("2024-03-01".parse().unwrap()), 30);
//!
//! let opened_at = 1_700_000_000_000;
//! assert_eq!(opened_at + 4 * dates::HOUR, 1_700_014_400_000);
//! ```

use std::fmt;
use std::str::FromStr;

use crate::types::Timestamp;

/// One minute in milliseconds, to add to a [`Timestamp`].
pub const MINUTE: Timestamp = 60_000;
/// One hour in milliseconds.
pub const HOUR: Timestamp = 60 * MINUTE;
/// One day (24 hours) in milliseconds.
pub const DAY: Timestamp = 24 * HOUR;

/// A date of the proleptic Gregorian calendar between 0001-01-01 and 9999-12-31.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// The date, if it exists and its year is 1 to 9999.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day);
        valid.then_some(Date { year, month, day })
    }

    /// Parses `YYYY-MM-DD`, exactly (`2024-02-29`; not `2024-2-29`, not `2023-02-29`).
    pub fn parse(text: &str) -> Result<Date, ParseDateError> {
        let error = || ParseDateError {
            text: text.to_owned(),
        };
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes.iter().enumerate().all(|(index, &byte)| match index {
                4 | 7 => byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(error());
        }
        let number = |range: std::ops::Range<usize>| {
            text[range]
                .bytes()
                .fold(0, |value, digit| value * 10 + i32::from(digit - b'0'))
        };
        let month = u8::try_from(number(5..7)).map_err(|_| error())?;
        let day = u8::try_from(number(8..10)).map_err(|_| error())?;
        Date::new(number(0..4), month, day).ok_or_else(error)
    }

    /// The year, 1 to 9999.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u8 {
        self.day
    }

    /// The date `days` later (earlier when negative).
    ///
    /// # Panics
    ///
    /// If the result is outside 0001-01-01 to 9999-12-31.
    pub fn add_days(self, days: i64) -> Date {
        self.days_since_epoch()
            .checked_add(days)
            .and_then(Date::from_days_since_epoch)
            .expect("Date::add_days: the result is outside the years 1 to 9999")
    }

    /// The same day `months` later (earlier when negative), or the last day of that month when
    /// it is shorter: 01-31 plus one month is 02-28 (02-29 in a leap year). Whole years are
    /// `add_months(12 * years)`.
    ///
    /// # Panics
    ///
    /// If the result is outside the years 1 to 9999.
    pub fn add_months(self, months: i32) -> Date {
        let index = i64::from(self.year) * 12 + i64::from(self.month) - 1 + i64::from(months);
        let year = i32::try_from(index.div_euclid(12))
            .ok()
            .filter(|year| (1..=9999).contains(year))
            .expect("Date::add_months: the result is outside the years 1 to 9999");
        let month = u8::try_from(index.rem_euclid(12) + 1).expect("a month is 1 to 12");
        Date {
            year,
            month,
            day: self.day.min(days_in_month(year, month)),
        }
    }

    /// The number of days from `self` to `other`: positive when `other` is later.
    pub fn days_until(self, other: Date) -> i64 {
        other.days_since_epoch() - self.days_since_epoch()
    }

    /// Days since 1970-01-01 (negative before), after Howard Hinnant's `days_from_civil`.
    fn days_since_epoch(self) -> i64 {
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The inverse of [`Date::days_since_epoch`] (Hinnant's `civil_from_days`), `None` outside
    /// the years 1 to 9999.
    fn from_days_since_epoch(days: i64) -> Option<Date> {
        let days = days.checked_add(719_468)?;
        let era = days.div_euclid(146_097);
        let day_of_era = days.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Date::new(
            i32::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        )
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = ParseDateError;

    fn from_str(text: &str) -> Result<Date, ParseDateError> {
        Date::parse(text)
    }
}

/// The input of [`Date::parse`] was not a valid `YYYY-MM-DD` date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDateError {
    text: String,
}

impl fmt::Display for ParseDateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid date {:?}: expected YYYY-MM-DD", self.text)
    }
}

impl std::error::Error for ParseDateError {}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    #[test]
    fn parses_and_formats_yyyy_mm_dd() {
        let parsed = date("2024-02-29");
        assert_eq!((parsed.year(), parsed.month(), parsed.day()), (2024, 2, 29));
        assert_eq!(parsed.to_string(), "2024-02-29");
        assert_eq!(date("0001-01-01").to_string(), "0001-01-01");
        assert_eq!(date("9999-12-31").to_string(), "9999-12-31");
        assert_eq!("2000-02-29".parse::<Date>(), Ok(date("2000-02-29")));
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for text in [
            "",
            "2024-2-29",
            "2024-02-29T00:00",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-00",
            "0000-01-01",
            "2024/01/01",
            "+024-01-01",
            "２０２４-01-01",
        ] {
            assert!(Date::parse(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            Date::parse("2024-2-29").unwrap_err().to_string(),
            "invalid date \"2024-2-29\": expected YYYY-MM-DD"
        );
    }

    #[test]
    fn new_checks_the_calendar() {
        assert_eq!(Date::new(2024, 2, 29), Some(date("2024-02-29")));
        assert_eq!(Date::new(2023, 2, 29), None);
        assert_eq!(Date::new(10_000, 1, 1), None);
        assert_eq!(Date::new(2024, 6, 31), None);
    }

    #[test]
    fn adds_days_across_months_years_and_leap_days() {
        assert_eq!(date("2024-02-28").add_days(1), date("2024-02-29"));
        assert_eq!(date("2023-02-28").add_days(1), date("2023-03-01"));
        assert_eq!(date("2024-12-31").add_days(1), date("2025-01-01"));
        assert_eq!(date("2025-01-01").add_days(-1), date("2024-12-31"));
        assert_eq!(date("2024-01-01").add_days(366), date("2025-01-01"));
        assert_eq!(date("1970-01-01").add_days(19_723), date("2024-01-01"));
        assert_eq!(date("1969-12-31").add_days(0), date("1969-12-31"));
        assert_eq!(date("0001-01-01").add_days(3_652_058), date("9999-12-31"));
    }

    #[test]
    fn day_counts_match_the_epoch() {
        assert_eq!(date("1970-01-01").days_since_epoch(), 0);
        assert_eq!(date("2000-03-01").days_since_epoch(), 11_017);
        assert_eq!(date("1969-12-31").days_since_epoch(), -1);
        for days in (-719_162..=2_932_896).step_by(997) {
            let round_trip = Date::from_days_since_epoch(days).unwrap();
            assert_eq!(round_trip.days_since_epoch(), days);
        }
        assert_eq!(Date::from_days_since_epoch(-719_163), None);
        assert_eq!(Date::from_days_since_epoch(2_932_897), None);
    }

    #[test]
    #[should_panic(expected = "outside the years 1 to 9999")]
    fn add_days_panics_past_9999() {
        date("9999-12-31").add_days(1);
    }

    #[test]
    fn adds_months_clamping_to_the_end_of_the_month() {
        assert_eq!(date("2024-01-31").add_months(1), date("2024-02-29"));
        assert_eq!(date("2023-01-31").add_months(1), date("2023-02-28"));
        assert_eq!(date("2024-03-31").add_months(-1), date("2024-02-29"));
        assert_eq!(date("2024-05-15").add_months(0), date("2024-05-15"));
        assert_eq!(date("2024-11-30").add_months(3), date("2025-02-28"));
        assert_eq!(date("2024-01-15").add_months(-13), date("2022-12-15"));
        assert_eq!(date("2024-02-29").add_months(12), date("2025-02-28"));
        assert_eq!(date("2024-02-29").add_months(48), date("2028-02-29"));
    }

    #[test]
    #[should_panic(expected = "outside the years 1 to 9999")]
    fn add_months_panics_before_year_1() {
        date("0001-01-01").add_months(-1);
    }

    #[test]
    fn counts_days_between_dates() {
        assert_eq!(date("2024-01-31").days_until(date("2024-03-01")), 30);
        assert_eq!(date("2024-03-01").days_until(date("2024-01-31")), -30);
        assert_eq!(date("2024-01-01").days_until(date("2025-01-01")), 366);
    }

    #[test]
    fn orders_chronologically() {
        assert!(date("2024-12-31") < date("2025-01-01"));
        assert!(date("2024-02-01") > date("2024-01-31"));
    }

    #[test]
    fn durations_are_milliseconds() {
        assert_eq!(MINUTE, 60_000);
        assert_eq!(HOUR, 3_600_000);
        assert_eq!(DAY, 86_400_000);
    }
}
