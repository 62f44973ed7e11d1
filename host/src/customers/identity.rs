//! Identifying people: mainland phone numbers and resident identity card numbers (GB 11643).

/// Normalises a phone number to digits (dropping a +86 / 0086 prefix) and checks that it is a
/// mainland mobile (11 digits, 1[3-9]...) or a landline with its area code (0 + 9 to 11 digits).
pub fn parse_phone(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    let mut digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '+'))
        .collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
        return Err(format!(
            "{trimmed:?} is not a phone number (digits, spaces, dashes and a leading +86 only)"
        ));
    }
    for prefix in ["0086", "86"] {
        if digits.len() == prefix.len() + 11 && digits.starts_with(prefix) {
            digits = digits[prefix.len()..].to_owned();
        }
    }
    let bytes = digits.as_bytes();
    let mobile = bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]);
    let landline = (10..=12).contains(&bytes.len()) && bytes[0] == b'0';
    if mobile || landline {
        Ok(digits)
    } else {
        Err(
            "a mobile number has 11 digits starting 13-19; a landline starts with its 0 area code"
                .into(),
        )
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Validates an 18-character resident identity number: 17 digits, a check character
/// (ISO 7064 MOD 11-2), and a real birth date in positions 7 to 14.
pub fn parse_id_number(input: &str) -> Result<String, String> {
    let id = input.trim().to_uppercase();
    let chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 || !chars[..17].iter().all(char::is_ascii_digit) {
        return Err("a resident ID number has 17 digits and a check character".into());
    }
    let sum: u32 = chars[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let expected = ID_CHECK[(sum % 11) as usize];
    if chars[17] != expected {
        return Err(format!(
            "the check character is {}, but the digits give {expected}",
            chars[17]
        ));
    }
    if chrono::NaiveDate::parse_from_str(&id[6..14], "%Y%m%d").is_err() {
        return Err("positions 7 to 14 are not a valid birth date".into());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_are_normalised() {
        assert_eq!(parse_phone("+86 138-1234-5678").unwrap(), "13812345678");
        assert_eq!(parse_phone("008613812345678").unwrap(), "13812345678");
        assert_eq!(parse_phone("010-62345678").unwrap(), "01062345678");
    }

    #[test]
    fn non_numbers_and_short_numbers_are_refused() {
        assert!(parse_phone("12345").is_err());
        assert!(parse_phone("12812345678").is_err());
        assert!(parse_phone("138abc45678").is_err());
    }

    #[test]
    fn id_numbers_need_their_check_character() {
        assert_eq!(
            parse_id_number("11010519491231002x").unwrap(),
            "11010519491231002X"
        );
        assert!(
            parse_id_number("110105194912310021")
                .unwrap_err()
                .contains("check")
        );
        assert!(
            parse_id_number("110105194913310021")
                .unwrap_err()
                .contains("birth")
        );
    }
}
