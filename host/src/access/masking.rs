//! Masking of personal numbers for roles that do not need them (PIPL: least exposure).

/// `13812345678` → `138****5678`. Short numbers keep only their last two digits.
pub fn phone(p: &str) -> String {
    mask_middle(p, 3, 4)
}

/// A resident ID number keeps its first and last 4 characters: `1101**********123X`.
pub fn id_number(id: &str) -> String {
    mask_middle(id, 4, 4)
}

/// `zhang.wei@example.com` → `z********@example.com`: the domain stays, the name keeps its
/// first character.
pub fn email(e: &str) -> String {
    match e.split_once('@') {
        Some((name, domain)) => {
            let first: String = name.chars().take(1).collect();
            format!(
                "{first}{}@{domain}",
                "*".repeat(name.chars().count().saturating_sub(1))
            )
        }
        None => mask_middle(e, 1, 0),
    }
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
    fn emails_keep_their_domain_and_first_letter() {
        assert_eq!(email("zhang.wei@example.com"), "z********@example.com");
    }

    #[test]
    fn short_values_reveal_at_most_two_characters() {
        assert_eq!(phone("12345"), "***45");
        assert_eq!(phone("1"), "1");
    }
}
