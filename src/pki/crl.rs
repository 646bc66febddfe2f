//! The certificate revocation list (RFC 5280), signed by the CA.
//!
//! Encoded here rather than by rcgen: a CRL is one flat list, and writing its DER
//! directly is several times faster for 100,000 entries than building it through a
//! general ASN.1 writer. The tests read every CRL back with the `openssl` command line.

use base64::Engine;
use chrono::{Datelike, Duration, NaiveDateTime, Timelike};
use rcgen::SigningKey;

use super::ca::Ca;
use super::{PkiError, Reason};

pub const NEXT_UPDATE_DAYS: i64 = 7;

pub struct RevokedEntry {
    pub serial_hex: String,
    pub revoked_at: NaiveDateTime,
    pub reason: Reason,
}

pub struct SignedCrl {
    pub der: Vec<u8>,
    pub pem: String,
    pub number: i64,
    pub this_update: NaiveDateTime,
    pub next_update: NaiveDateTime,
    pub entries: usize,
}

impl SignedCrl {
    /// No CRL (a CA whose key is not on this server cannot sign one).
    pub fn empty() -> SignedCrl {
        SignedCrl {
            der: Vec::new(),
            pem: String::new(),
            number: 0,
            this_update: NaiveDateTime::default(),
            next_update: NaiveDateTime::default(),
            entries: 0,
        }
    }
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const ENUMERATED: u8 = 0x0a;
const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const EXPLICIT_0: u8 = 0xa0;
const IMPLICIT_0: u8 = 0x80;
/// AlgorithmIdentifier { ecdsa-with-SHA256 }, without parameters (RFC 5758).
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier { ecdsa-with-SHA384 }, without parameters (RFC 5758).
const ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
/// AlgorithmIdentifier { sha256WithRSAEncryption, NULL } (RFC 4055).
const SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

/// The AlgorithmIdentifier of what a CA key signs with.
pub(crate) fn signature_algorithm(
    key: &impl rcgen::PublicKeyData,
) -> Result<&'static [u8], PkiError> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Ok(ECDSA_WITH_SHA256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Ok(ECDSA_WITH_SHA384)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        Ok(SHA256_WITH_RSA)
    } else {
        Err(PkiError::internal(format!(
            "hostca cannot sign a CRL with {alg:?}"
        )))
    }
}
const OID_REASON_CODE: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x15];
const OID_CRL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x14];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x23];

pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = (len as u64).to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

pub(crate) fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// A non-negative INTEGER from big-endian bytes.
pub(crate) fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let bytes = &bytes[skip.min(bytes.len().saturating_sub(1))..];
    let pad = bytes.first().is_none_or(|b| b & 0x80 != 0);
    out.push(INTEGER);
    push_len(out, bytes.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(bytes);
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5280, 4.1.2.5).
fn time(out: &mut Vec<u8>, t: NaiveDateTime) {
    time_as(out, t, false)
}

/// GeneralizedTime always (OCSP, RFC 6960, 4.2.1), to the second.
pub(crate) fn generalized_time(out: &mut Vec<u8>, t: NaiveDateTime) {
    time_as(out, t, true)
}

fn time_as(out: &mut Vec<u8>, t: NaiveDateTime, generalized: bool) {
    let year = t.year();
    let mut digits = [0u8; 15];
    let mut n = 0;
    let mut put = |v: u32, width: usize| {
        for i in (0..width).rev() {
            digits[n + i] = b'0' + (v / 10u32.pow((width - 1 - i) as u32) % 10) as u8;
        }
        n += width;
    };
    let utc = !generalized && (1950..2050).contains(&year);
    if utc {
        put(year.rem_euclid(100) as u32, 2);
    } else {
        put(year.clamp(0, 9999) as u32, 4);
    }
    for v in [t.month(), t.day(), t.hour(), t.minute(), t.second()] {
        put(v, 2);
    }
    out.push(if utc { UTC_TIME } else { GENERALIZED_TIME });
    push_len(out, n + 1);
    out.extend_from_slice(&digits[..n]);
    out.push(b'Z');
}

/// The CRL reasonCode of a reason (`None`: unspecified, left out).
pub fn reason_code(reason: Reason) -> Option<u8> {
    match reason {
        // RFC 5280, 5.3.1: "unspecified" is said by leaving the extension out.
        Reason::Unspecified => None,
        Reason::KeyCompromise => Some(1),
        Reason::CaCompromise => Some(2),
        Reason::AffiliationChanged => Some(3),
        Reason::Superseded => Some(4),
        Reason::CessationOfOperation => Some(5),
    }
}

/// One revokedCertificates entry: serial, date and (unless unspecified) the reason.
fn entry(out: &mut Vec<u8>, scratch: &mut Vec<u8>, e: &RevokedEntry) -> Result<(), PkiError> {
    let serial = hex::decode(&e.serial_hex)
        .map_err(|_| PkiError::internal(format!("bad serial {}", e.serial_hex)))?;
    scratch.clear();
    integer(scratch, &serial);
    time(scratch, e.revoked_at);
    if let Some(code) = reason_code(e.reason) {
        // Extensions ::= SEQUENCE { Extension { reasonCode, OCTET STRING { ENUMERATED } } }
        let extension_len = OID_REASON_CODE.len() + 5;
        scratch.extend_from_slice(&[SEQUENCE, extension_len as u8 + 2, SEQUENCE]);
        scratch.push(extension_len as u8);
        scratch.extend_from_slice(OID_REASON_CODE);
        scratch.extend_from_slice(&[OCTET_STRING, 3, ENUMERATED, 1, code]);
    }
    tlv(out, SEQUENCE, scratch);
    Ok(())
}

fn extension(out: &mut Vec<u8>, oid: &[u8], value: &[u8]) {
    let mut content = oid.to_vec();
    tlv(&mut content, OCTET_STRING, value);
    tlv(out, SEQUENCE, &content);
}

pub fn build(
    ca: &Ca,
    number: i64,
    entries: &[RevokedEntry],
    now: NaiveDateTime,
) -> Result<SignedCrl, PkiError> {
    build_for(ca, number, entries, now, Duration::days(NEXT_UPDATE_DAYS))
}

/// A root's ARL (RFC 5280's CRL of CA certificates) runs a year: the root's key may be
/// offline, and is brought back to sign the next.
pub const ARL_NEXT_UPDATE_DAYS: i64 = 365;

/// A CRL whose next update is `lifetime` after now.
pub fn build_for(
    ca: &Ca,
    number: i64,
    entries: &[RevokedEntry],
    now: NaiveDateTime,
    lifetime: Duration,
) -> Result<SignedCrl, PkiError> {
    let now = chrono::DateTime::from_timestamp(now.and_utc().timestamp(), 0)
        .map(|d| d.naive_utc())
        .unwrap_or(now);
    let next = now + lifetime;
    let key = ca
        .signer()
        .ok_or_else(|| PkiError::internal(format!("the key of {} is offline", ca.subject)))?;
    let algorithm = signature_algorithm(key)?;

    let mut tbs = Vec::with_capacity(256 + entries.len() * 48);
    tbs.extend_from_slice(&[INTEGER, 1, 1]); // v2
    tbs.extend_from_slice(algorithm);
    tbs.extend_from_slice(&ca.subject_der);
    time(&mut tbs, now);
    time(&mut tbs, next);
    if !entries.is_empty() {
        let mut list = Vec::with_capacity(entries.len() * 46);
        let mut scratch = Vec::with_capacity(64);
        for e in entries {
            entry(&mut list, &mut scratch, e)?;
        }
        tlv(&mut tbs, SEQUENCE, &list);
    }
    let mut extensions = Vec::new();
    if let Some(key_id) = &ca.key_id {
        let mut aki = Vec::new();
        tlv(&mut aki, IMPLICIT_0, key_id);
        let mut value = Vec::new();
        tlv(&mut value, SEQUENCE, &aki);
        extension(&mut extensions, OID_AUTHORITY_KEY_ID, &value);
    }
    let mut crl_number = Vec::new();
    integer(&mut crl_number, &number.max(0).to_be_bytes());
    extension(&mut extensions, OID_CRL_NUMBER, &crl_number);
    let mut wrapped = Vec::new();
    tlv(&mut wrapped, SEQUENCE, &extensions);
    tlv(&mut tbs, EXPLICIT_0, &wrapped);

    let mut tbs_der = Vec::with_capacity(tbs.len() + 8);
    tlv(&mut tbs_der, SEQUENCE, &tbs);
    drop(tbs);
    let signature = key
        .sign(&tbs_der)
        .map_err(|e| PkiError::failed("signing the CRL", e))?;
    let mut signature_bits = Vec::with_capacity(signature.len() + 1);
    signature_bits.push(0); // no unused bits
    signature_bits.extend_from_slice(&signature);
    tbs_der.extend_from_slice(algorithm);
    tlv(&mut tbs_der, BIT_STRING, &signature_bits);
    let mut der = Vec::with_capacity(tbs_der.len() + 8);
    tlv(&mut der, SEQUENCE, &tbs_der);

    Ok(SignedCrl {
        pem: pem("X509 CRL", &der),
        der,
        number,
        this_update: now,
        next_update: next,
        entries: entries.len(),
    })
}

/// PEM with 64-character lines (RFC 7468).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        // Base64 is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(encoded(|v| push_len(v, 0x7f)), [0x7f]);
        assert_eq!(encoded(|v| push_len(v, 0x80)), [0x81, 0x80]);
        assert_eq!(encoded(|v| push_len(v, 0x1234)), [0x82, 0x12, 0x34]);
        assert_eq!(
            encoded(|v| push_len(v, 5_000_000)),
            [0x83, 0x4c, 0x4b, 0x40]
        );
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(encoded(|v| integer(v, &[0, 0, 5])), [2, 1, 5]);
        assert_eq!(encoded(|v| integer(v, &[0x80])), [2, 2, 0, 0x80]);
        assert_eq!(encoded(|v| integer(v, &[0, 0])), [2, 1, 0]);
    }

    #[test]
    fn times_switch_to_generalized_time_in_2050() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            encoded(|v| time(v, t("2026-11-23 07:05:09"))),
            b"\x17\x0d261123070509Z"
        );
        assert_eq!(
            encoded(|v| time(v, t("2050-01-01 00:00:00"))),
            b"\x18\x0f20500101000000Z"
        );
    }
}
