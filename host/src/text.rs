//! The one check of a text field: trimmed, 1 to `max` characters (counted as characters, not
//! bytes), at least one visible character, and no control characters but line breaks and
//! tabs. [`check`] is the rule; the functions on top of it only say which error code a
//! caller's API has always answered.

use crate::error::FieldError;

/// What is wrong with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Empty,
    TooLong,
    ControlCharacter,
    /// Only zero-width, format or blank characters: it would show as nothing.
    Invisible,
}

/// A character that renders as nothing: zero-width spaces and joiners, bidirectional marks,
/// soft hyphens, variation selectors, Hangul fillers, tags, and every kind of space.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// `value` trimmed (also of zero-width characters at its ends), if it has 1 to `max`
/// characters, a visible one among them, and no control character (a line break or a tab is
/// not one here: notes and descriptions have lines).
pub fn check(value: &str, max: usize) -> Result<&str, Problem> {
    let original = value;
    let value = value.trim_matches(is_invisible);
    let len = value.chars().count();
    if len == 0 && !original.trim().is_empty() {
        Err(Problem::Invisible)
    } else if len == 0 {
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
/// `control_character`, `invisible_text`.
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
                Problem::Invisible => (
                    "invisible_text",
                    format!("{field} must have a visible character"),
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

/// Trims `value` in place; any problem is one error with the `code` that API has always
/// answered (`invalid_text` for vehicles, `invalid_name` for a customer's name, ...).
pub(crate) fn trim_or_invalid(
    errors: &mut Vec<FieldError>,
    field: &str,
    code: &'static str,
    value: &mut String,
    max: usize,
) {
    match check(value, max) {
        Ok(trimmed) => *value = trimmed.to_owned(),
        Err(problem) => {
            *value = value.trim().to_owned();
            let message = match problem {
                Problem::ControlCharacter => format!("{field} must not hold control characters"),
                Problem::Invisible => format!("{field} must have a visible character"),
                Problem::Empty | Problem::TooLong => format!("{field} has 1 to {max} characters"),
            };
            errors.push(FieldError::new(field, code, message));
        }
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

    #[test]
    fn a_text_of_only_invisible_characters_is_refused_and_trimmed_off_the_ends() {
        assert_eq!(
            check("\u{200B}\u{200D}\u{FEFF}", 5),
            Err(Problem::Invisible)
        );
        assert_eq!(
            check("\u{3000}\u{2060}\u{3164}", 5),
            Err(Problem::Invisible)
        );
        assert_eq!(check("\u{200B}王芳\u{200B}", 5), Ok("王芳"));
        assert_eq!(check("👨\u{200D}🔧", 5), Ok("👨\u{200D}🔧"));
    }
}
