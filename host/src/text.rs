//! The one check of a text field: trimmed, 1 to `max` characters (counted as characters, not
//! bytes), and no control characters but line breaks and tabs. [`check`] is the rule; the
//! functions on top of it only say which error code a caller's API has always answered.

use crate::error::FieldError;

/// What is wrong with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Empty,
    TooLong,
    ControlCharacter,
}

/// `value` trimmed, if it has 1 to `max` characters and no control character (a line break or
/// a tab is not one here: notes and descriptions have lines).
pub fn check(value: &str, max: usize) -> Result<&str, Problem> {
    let value = value.trim();
    let len = value.chars().count();
    if len == 0 {
        Err(Problem::Empty)
    } else if len > max {
        Err(Problem::TooLong)
    } else if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Err(Problem::ControlCharacter)
    } else {
        Ok(value)
    }
}

/// A required text: trimmed, or `None` with an error pushed: `required` (empty), `too_long`,
/// `control_character`.
pub(crate) fn required(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    max: usize,
) -> Option<String> {
    match check(value, max) {
        Ok(value) => Some(value.to_owned()),
        Err(problem) => {
            let (code, message) = match problem {
                Problem::Empty => ("required", format!("{field} must not be empty")),
                Problem::TooLong => ("too_long", format!("{field} is at most {max} characters")),
                Problem::ControlCharacter => (
                    "control_character",
                    format!("{field} must not hold control characters"),
                ),
            };
            errors.push(FieldError::new(field, code, message));
            None
        }
    }
}

/// An optional text: absent or blank is `None`, otherwise checked like [`required`].
pub(crate) fn optional(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Option<String> {
    value
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| required(errors, field, v, max))
}

/// Trims `value` in place; any problem is one error, `invalid_text` (what the vehicle API has
/// always answered).
pub(crate) fn trim_or_invalid(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &mut String,
    max: usize,
) {
    let problem = check(value, max).err();
    *value = value.trim().to_owned();
    if let Some(problem) = problem {
        let message = match problem {
            Problem::ControlCharacter => format!("{field} must not hold control characters"),
            Problem::Empty | Problem::TooLong => format!("{field} has 1 to {max} characters"),
        };
        errors.push(FieldError::new(field, "invalid_text", message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_counted_in_characters_and_free_of_control_characters() {
        assert_eq!(check("  京A 红旗  ", 5), Ok("京A 红旗"));
        assert_eq!(check("   ", 5), Err(Problem::Empty));
        assert_eq!(check("红旗红旗红旗", 5), Err(Problem::TooLong));
        assert_eq!(check("a\u{7}b", 5), Err(Problem::ControlCharacter));
        assert_eq!(check("a\nb\tc", 5), Ok("a\nb\tc"));
    }
}
