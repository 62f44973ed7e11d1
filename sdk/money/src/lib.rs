//! Money in integer fen (1 yuan = 100 fen), never a float.
//!
//! ```
//! use dealer_money::{self as money, Rounding};
//!
//! assert_eq!(money::format_yuan(25_800_050), "258000.50");
//! assert_eq!(money::parse_yuan("258000.5"), Ok(25_800_050));
//! assert_eq!(money::percent(12_345, 10), 1_235); // 1234.5 fen, half rounds up
//! assert_eq!(money::basis_points(12_345, 1_000), 1_235); // 1000 bp = 10%
//! assert_eq!(money::ratio(12_345, 1, 10, Rounding::Down), 1_234);
//! ```

use std::fmt;

/// An amount in fen, as the WIT's `fen` carries it.
pub type Fen = i64;

/// Fen in one yuan.
pub const FEN_PER_YUAN: Fen = 100;

/// How [`ratio`] rounds a result that is not a whole number of fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// To the nearest fen, halves away from zero (1.5 → 2, −1.5 → −2).
    HalfUp,
    /// Towards zero, dropping the fraction (1.9 → 1, −1.9 → −1).
    Down,
}

/// `amount × numerator / denominator`, rounded as asked; computed without intermediate
/// overflow.
///
/// # Panics
///
/// If `denominator` is zero or the result does not fit in an `i64`.
pub fn ratio(amount: Fen, numerator: i64, denominator: i64, rounding: Rounding) -> Fen {
    assert!(denominator != 0, "money::ratio: zero denominator");
    let product = i128::from(amount) * i128::from(numerator);
    let denominator = i128::from(denominator);
    let quotient = product / denominator;
    let remainder = product % denominator;
    let rounded = match rounding {
        Rounding::Down => quotient,
        Rounding::HalfUp if 2 * remainder.abs() >= denominator.abs() => {
            quotient + product.signum() * denominator.signum()
        }
        Rounding::HalfUp => quotient,
    };
    Fen::try_from(rounded).expect("money::ratio: the result overflows i64 fen")
}

/// `percent` per cent of `amount`, rounded half up.
///
/// # Panics
///
/// If the result does not fit in an `i64`.
pub fn percent(amount: Fen, percent: i64) -> Fen {
    ratio(amount, percent, 100, Rounding::HalfUp)
}

/// `basis_points` hundredths of a per cent of `amount` (10 000 bp = all of it), rounded half
/// up.
///
/// # Panics
///
/// If the result does not fit in an `i64`.
pub fn basis_points(amount: Fen, basis_points: i64) -> Fen {
    ratio(amount, basis_points, 10_000, Rounding::HalfUp)
}

/// The amount in yuan with exactly two decimals and no grouping: `-1234.05`.
pub fn format_yuan(amount: Fen) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let fen = amount.unsigned_abs();
    let per_yuan = FEN_PER_YUAN.unsigned_abs();
    format!("{sign}{}.{:02}", fen / per_yuan, fen % per_yuan)
}

/// Parses yuan written as digits with at most two decimals and an optional leading `-`
/// (`1234`, `1234.5`, `-0.05`) into fen.
pub fn parse_yuan(text: &str) -> Result<Fen, ParseYuanError> {
    let error = |reason| ParseYuanError {
        text: text.to_owned(),
        reason,
    };
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(error("expected digits with an optional `-` and `.`"));
    }
    if unsigned.ends_with('.') {
        return Err(error("a `.` must be followed by digits"));
    }
    if fraction.len() > 2 {
        return Err(error("more than two decimals"));
    }
    let yuan: i64 = whole.parse().map_err(|_| error("too large"))?;
    let fen: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| error("too large"))?;
    let total = yuan
        .checked_mul(FEN_PER_YUAN)
        .and_then(|whole_fen| whole_fen.checked_add(fen))
        .ok_or_else(|| error("too large"))?;
    Ok(if negative { -total } else { total })
}

/// Why [`parse_yuan`] refused its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseYuanError {
    text: String,
    reason: &'static str,
}

impl fmt::Display for ParseYuanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid yuan amount {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseYuanError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_yuan_with_two_decimals() {
        assert_eq!(format_yuan(0), "0.00");
        assert_eq!(format_yuan(5), "0.05");
        assert_eq!(format_yuan(100), "1.00");
        assert_eq!(format_yuan(123_456), "1234.56");
        assert_eq!(format_yuan(-5), "-0.05");
        assert_eq!(format_yuan(-123_450), "-1234.50");
        assert_eq!(format_yuan(i64::MIN), "-92233720368547758.08");
        assert_eq!(format_yuan(i64::MAX), "92233720368547758.07");
    }

    #[test]
    fn parses_yuan_into_fen() {
        assert_eq!(parse_yuan("0"), Ok(0));
        assert_eq!(parse_yuan("12"), Ok(1_200));
        assert_eq!(parse_yuan("12.3"), Ok(1_230));
        assert_eq!(parse_yuan("12.34"), Ok(1_234));
        assert_eq!(parse_yuan("0.05"), Ok(5));
        assert_eq!(parse_yuan("-0.05"), Ok(-5));
        assert_eq!(parse_yuan("-1234.50"), Ok(-123_450));
        assert_eq!(parse_yuan("92233720368547758.07"), Ok(i64::MAX));
    }

    #[test]
    fn refuses_malformed_yuan() {
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1.234",
            "1,000",
            "+1",
            " 1",
            "1e3",
            "¥1",
            "--1",
            "1.2.3",
            "92233720368547758.08",
            "99999999999999999999",
        ] {
            assert!(parse_yuan(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            parse_yuan("1.234").unwrap_err().to_string(),
            "invalid yuan amount \"1.234\": more than two decimals"
        );
    }

    #[test]
    fn format_and_parse_round_trip() {
        for fen in [0, 1, -1, 99, 100, 101, 25_800_050, -25_800_050, i64::MAX] {
            assert_eq!(parse_yuan(&format_yuan(fen)), Ok(fen));
        }
    }

    #[test]
    fn percent_rounds_half_up_away_from_zero() {
        assert_eq!(percent(10_000, 3), 300);
        assert_eq!(percent(12_345, 10), 1_235); // 1234.5
        assert_eq!(percent(12_344, 10), 1_234); // 1234.4
        assert_eq!(percent(12_346, 10), 1_235); // 1234.6
        assert_eq!(percent(-12_345, 10), -1_235);
        assert_eq!(percent(-12_344, 10), -1_234);
        assert_eq!(percent(1, 50), 1); // 0.5
        assert_eq!(percent(1, 49), 0); // 0.49
        assert_eq!(percent(12_345, 0), 0);
        assert_eq!(percent(12_345, 100), 12_345);
        assert_eq!(percent(12_345, -10), -1_235);
    }

    #[test]
    fn basis_points_are_hundredths_of_a_percent() {
        assert_eq!(basis_points(1_000_000, 500), 50_000);
        assert_eq!(basis_points(1_000_000, 1), 100);
        assert_eq!(basis_points(10_000, 10_000), 10_000);
        assert_eq!(basis_points(1, 5_000), 1); // 0.5
        assert_eq!(basis_points(1, 4_999), 0);
        assert_eq!(basis_points(-1, 5_000), -1);
        assert_eq!(basis_points(33_333, 3_333), 11_110); // 11109.8889
    }

    #[test]
    fn ratio_rounds_down_towards_zero() {
        assert_eq!(ratio(199, 1, 100, Rounding::Down), 1);
        assert_eq!(ratio(-199, 1, 100, Rounding::Down), -1);
        assert_eq!(ratio(199, 1, -100, Rounding::Down), -1);
        assert_eq!(ratio(199, 1, -100, Rounding::HalfUp), -2);
        assert_eq!(ratio(-150, 1, -100, Rounding::HalfUp), 2);
    }

    #[test]
    fn ratio_does_not_overflow_in_between() {
        assert_eq!(ratio(i64::MAX, 3, 3, Rounding::Down), i64::MAX);
        assert_eq!(percent(i64::MAX / 2, 200), i64::MAX - 1);
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn ratio_panics_when_the_result_overflows() {
        percent(i64::MAX, 101);
    }

    #[test]
    #[should_panic(expected = "zero denominator")]
    fn ratio_panics_on_a_zero_denominator() {
        ratio(1, 1, 0, Rounding::HalfUp);
    }
}
