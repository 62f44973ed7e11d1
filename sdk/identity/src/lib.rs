//! What makes a vehicle identifiable: its VIN (ISO 3779 / GB 16735, with the check digit in
//! position 9) and its Chinese licence plate.

/// Letters never used in a VIN (too easily confused with 1 and 0).
const VIN_FORBIDDEN: [char; 3] = ['I', 'O', 'Q'];
const VIN_WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

fn vin_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => c.to_digit(10),
        'A' | 'J' => Some(1),
        'B' | 'K' | 'S' => Some(2),
        'C' | 'L' | 'T' => Some(3),
        'D' | 'M' | 'U' => Some(4),
        'E' | 'N' | 'V' => Some(5),
        'F' | 'W' => Some(6),
        'G' | 'P' | 'X' => Some(7),
        'H' | 'Y' => Some(8),
        'R' | 'Z' => Some(9),
        _ => None,
    }
}

/// The check digit (position 9) a VIN must carry, computed from the other 16 characters.
/// `None` if a character is not allowed in a VIN.
pub fn vin_check_digit(vin: &str) -> Option<char> {
    if vin.chars().count() != 17 {
        return None;
    }
    let mut sum = 0;
    for (i, c) in vin.chars().enumerate() {
        sum += vin_value(c)? * VIN_WEIGHTS[i];
    }
    Some(match sum % 11 {
        10 => 'X',
        d => char::from_digit(d, 10)?,
    })
}

/// Normalises (trim, upper-case) and validates a VIN, explaining what is wrong.
pub fn parse_vin(input: &str) -> Result<String, String> {
    let vin = input.trim().to_uppercase();
    let len = vin.chars().count();
    if len != 17 {
        return Err(format!("a VIN has 17 characters, this one has {len}"));
    }
    if let Some(c) = vin.chars().find(|c| VIN_FORBIDDEN.contains(c)) {
        return Err(format!(
            "a VIN never contains the letter {c} (I, O and Q are not used)"
        ));
    }
    if let Some(c) = vin.chars().find(|c| vin_value(*c).is_none()) {
        return Err(format!(
            "{c:?} is not allowed in a VIN (digits and letters only)"
        ));
    }
    let expected = vin_check_digit(&vin).expect("characters checked above");
    let actual = vin.chars().nth(8).expect("length checked above");
    if actual != expected {
        return Err(format!(
            "the check digit (9th character) is {actual}, but the other characters give {expected}"
        ));
    }
    Ok(vin)
}

/// Province abbreviations that start a civilian plate.
const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Plate types that end in a Chinese character instead of a fifth letter or digit.
const PLATE_SUFFIXES: &str = "学警港澳挂领";

/// GA 36-2018: a small new-energy car's serial starts with one of these letters (D, A, B, C, E
/// pure electric; F, G, H, J, K other new energy); a large one's ends with D or F.
const NEW_ENERGY_LETTERS: &str = "DABCEFGHJK";

/// A validated plate: `display` as people write it (京A·12345), `key` for look-ups (京A12345).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plate {
    pub display: String,
    pub key: String,
}

/// Normalises a plate for searching: no separators or spaces, upper-case.
pub fn plate_key(input: &str) -> String {
    input
        .chars()
        .filter(|c| !matches!(c, '·' | '•' | '.' | '-' | ' ' | '\u{3000}'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Validates a Chinese civilian plate: province, issuing-office letter, then 5 characters
/// (6 for new-energy vehicles, laid out as GA 36-2018 sets), letters I and O never used.
pub fn parse_plate(input: &str) -> Result<Plate, String> {
    let key = plate_key(input);
    let chars: Vec<char> = key.chars().collect();
    let Some(&province) = chars.first() else {
        return Err("the plate is empty".into());
    };
    if !PROVINCES.contains(province) {
        return Err(format!(
            "a plate starts with a province abbreviation such as 京 or 粤, not {province:?}"
        ));
    }
    match chars.get(1) {
        Some(c) if c.is_ascii_uppercase() && *c != 'I' && *c != 'O' => {}
        _ => {
            return Err(
                "the second character of a plate is the issuing office's letter (A-Z, not I or O)"
                    .into(),
            );
        }
    }
    let serial = &chars[2..];
    let serial_ok = |cs: &[char]| {
        cs.iter()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && *c != 'I' && *c != 'O'))
    };
    let digits = |cs: &[char]| cs.iter().all(char::is_ascii_digit);
    let valid = match serial.len() {
        5 => serial_ok(serial) || (serial_ok(&serial[..4]) && PLATE_SUFFIXES.contains(serial[4])),
        6 => {
            let small = NEW_ENERGY_LETTERS.contains(serial[0])
                && serial_ok(&serial[1..2])
                && digits(&serial[2..]);
            let large = digits(&serial[..5]) && matches!(serial[5], 'D' | 'F');
            if !(small || large) {
                return Err("a new-energy plate's serial is a letter D, A, B, C, E, F, G, H, J or K, a letter or digit, then 4 digits (a large vehicle's: 5 digits, then D or F)".into());
            }
            true
        }
        n => {
            return Err(format!(
                "after the province and office letter a plate has 5 characters (6 for new-energy vehicles), this one has {n}"
            ));
        }
    };
    if !valid {
        return Err("a plate's serial uses digits and letters other than I and O".into());
    }
    let display = format!(
        "{}{}·{}",
        chars[0],
        chars[1],
        serial.iter().collect::<String>()
    );
    Ok(Plate { display, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_vin_passes_and_is_upper_cased() {
        // The textbook example VIN with check digit X.
        assert_eq!(
            parse_vin(" 1m8gdm9axkp042788 ").unwrap(),
            "1M8GDM9AXKP042788"
        );
        assert_eq!(vin_check_digit("LSVAU2180N2183294"), Some('X'));
    }

    #[test]
    fn a_wrong_check_digit_is_explained() {
        let err = parse_vin("1M8GDM9A1KP042788").unwrap_err();
        assert!(err.contains("check digit"), "{err}");
    }

    #[test]
    fn letters_i_o_q_and_wrong_lengths_are_refused() {
        assert!(parse_vin("1M8GDM9AXKP04278").unwrap_err().contains("17"));
        assert!(parse_vin("1M8GDM9AXKPO42788").unwrap_err().contains('O'));
    }

    #[test]
    fn plates_are_normalised_for_search_and_display() {
        let p = parse_plate("京a 12345").unwrap();
        assert_eq!(p.display, "京A·12345");
        assert_eq!(p.key, "京A12345");
        assert_eq!(parse_plate("粤B·D12345").unwrap().key, "粤BD12345");
        assert_eq!(parse_plate("沪A·1234学").unwrap().display, "沪A·1234学");
    }

    #[test]
    fn malformed_plates_say_what_is_wrong() {
        assert!(parse_plate("XA12345").unwrap_err().contains("province"));
        assert!(parse_plate("京I12345").unwrap_err().contains("office"));
        assert!(parse_plate("京A123").unwrap_err().contains("5 characters"));
    }

    #[test]
    fn new_energy_plates_follow_the_ga_36_2018_layout() {
        assert_eq!(parse_plate("京AD12345").unwrap().display, "京A·D12345");
        assert_eq!(parse_plate("沪AFA1234").unwrap().key, "沪AFA1234");
        assert_eq!(parse_plate("粤B12345D").unwrap().display, "粤B·12345D");
        for wrong in [
            "沪AF0236X",
            "京AX12345",
            "京A123456",
            "粤B1234DF",
            "京AD1234I",
        ] {
            assert!(
                parse_plate(wrong).unwrap_err().contains("new-energy"),
                "{wrong} is accepted"
            );
        }
    }
}
