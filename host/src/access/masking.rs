//! Masking of personal numbers for roles that do not need them (PIPL: least exposure).

/// `13812345678` → `138****5678`. Short numbers keep only their last two digits.
pub fn phone(p: &str) -> String {
    mask_middle(p, 3, 4)
}

/// A resident ID number keeps its first and last 4 characters: `1101**********123X`.
pub fn id_number(id: &str) -> String {
    mask_middle(id, 4, 4)
}

fn mask_middle(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        let keep = chars.len().min(2);
        let hidden = chars.len() - keep;
        return "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>();
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_keep_prefix_and_last_four() {
        assert_eq!(phone("13812345678"), "138****5678");
    }

    #[test]
    fn id_numbers_keep_region_and_check_digits() {
        assert_eq!(id_number("11010519491231002X"), "1101**********002X");
    }

    #[test]
    fn short_values_reveal_at_most_two_characters() {
        assert_eq!(phone("12345"), "***45");
        assert_eq!(phone("1"), "1");
    }
}
