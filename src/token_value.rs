//! Token values: 120 random bits written as 24 Crockford base32 characters in groups of
//! four, so that a value can be read aloud over a phone and typed back in any case, with
//! or without dashes and spaces.

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CHARS: usize = 24;

/// A fresh random value, formatted `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`.
pub fn generate() -> String {
    let mut bytes = [0u8; 15];
    rand::fill(&mut bytes[..]);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let chars: Vec<u8> = (0..CHARS)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize])
        .collect();
    format_groups(&chars)
}

fn format_groups(chars: &[u8]) -> String {
    chars
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("alphabet is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// The number a canonical character stands for (0..32).
pub fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// The canonical form of what a person typed: upper case, no separators, with Crockford's
/// look-alikes (I, L -> 1; O -> 0) folded. `None` if it cannot be a token value.
pub fn canonical(input: &str) -> Option<String> {
    if input.len() > 200 {
        return None;
    }
    let mut out = Vec::with_capacity(CHARS);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '\t' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c as u8);
    }
    if out.len() != CHARS {
        return None;
    }
    Some(format_groups(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_documented_shape() {
        let v = generate();
        assert_eq!(v.len(), 29);
        assert_eq!(v.split('-').count(), 6);
        assert_eq!(canonical(&v).as_deref(), Some(v.as_str()));
        assert_ne!(generate(), generate());
    }

    #[test]
    fn input_ignores_case_spaces_and_dashes() {
        let v = generate();
        let typed = v.to_lowercase().replace('-', " ");
        assert_eq!(canonical(&typed), Some(v.clone()));
        assert_eq!(canonical(&v.replace('-', "")), Some(v));
        assert_eq!(
            canonical("oooo-llll-iiii-0000-1111-2222").unwrap(),
            "0000-1111-1111-0000-1111-2222"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(canonical(""), None);
        assert_eq!(canonical("ABCD"), None);
        assert_eq!(canonical("UUUU-UUUU-UUUU-UUUU-UUUU-UUUU"), None);
        assert_eq!(canonical("ÄBCD-EFGH-JKMN-PQRS-TVWX-YZ01"), None);
        assert_eq!(canonical(&"A".repeat(1000)), None);
    }
}
