//! ACME (RFC 8555) for hosts that already run an ACME client: the JSON Web Signatures every
//! request is (`jws`), with External Account Binding, and the problem documents every
//! refusal is (`problem`). The rules (accounts, orders, finalize) are in
//! `services::acme`; the routes in `web::acme`. See docs/DESIGN.md "ACME".

pub mod jws;
pub mod problem;
pub mod validate;

pub use problem::{Problem, ProblemKind};

/// The External Account Binding's HMAC key of a token: the token's own 120 random bits
/// (15 bytes), read back from its 24 Crockford base32 characters. `None` if `value` is
/// not a token value.
pub fn eab_mac_key(value: &str) -> Option<Vec<u8>> {
    let canonical = crate::token_value::canonical(value)?;
    let mut bits: u128 = 0;
    for c in canonical.bytes().filter(|&c| c != b'-') {
        let digit = crate::token_value::digit(c)?;
        bits = (bits << 5) | u128::from(digit);
    }
    Some(bits.to_be_bytes()[1..].to_vec())
}

/// The HMAC key as ACME clients take it (`--eab-hmac-key`): base64url without padding,
/// 20 characters.
pub fn eab_mac_key_text(value: &str) -> Option<String> {
    use base64::Engine;
    eab_mac_key(value).map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mac_key_is_the_tokens_own_bits() {
        // 24 zeros but a final 1 is the number 1: 14 zero bytes and a 1.
        let key = super::eab_mac_key("0000-0000-0000-0000-0000-0001").unwrap();
        assert_eq!(key.len(), 15);
        assert_eq!(key[14], 1);
        assert!(key[..14].iter().all(|&b| b == 0));
        // Any spelling of one value gives one key.
        let v = crate::token_value::generate();
        assert_eq!(
            super::eab_mac_key(&v),
            super::eab_mac_key(&v.to_lowercase().replace('-', ""))
        );
        assert_eq!(super::eab_mac_key_text(&v).unwrap().len(), 20);
        assert_eq!(super::eab_mac_key("not a token"), None);
    }
}
