//! The certificate authority's cryptography: the CA itself, CSR verification, leaf
//! issuance, CRLs and fingerprints. Nothing here touches the database.

pub mod ca;
pub mod crl;
pub mod csr;
pub mod issue;
pub mod keys;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// `AB:CD:...` of the SHA-256 of a DER encoding.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    colon_hex(&Sha256::digest(der))
}

/// `AB:CD:...` of the SHA-1 of a DER encoding (shown because other tools still print it).
pub fn sha1_fingerprint(der: &[u8]) -> String {
    colon_hex(&Sha1::digest(der))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The RFC 5280 revocation reasons (defined with the other stored values).
pub use crate::models::kinds::RevocationReason as Reason;

/// Errors of the cryptography, phrased for the person who sent the input.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Internal(String),
}

impl From<PkiError> for crate::error::AppError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::BadInput(m) => crate::error::AppError::BadRequest(m),
            PkiError::Internal(m) => crate::error::AppError::Internal(m),
        }
    }
}

pub(crate) fn to_offset(t: chrono::NaiveDateTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.and_utc().timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn from_asn1(t: x509_parser::time::ASN1Time) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(t.timestamp(), 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// Upper-case hex of a serial number's bytes, without leading zero bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    hex::encode_upper(trimmed)
}

/// A serial of fixed length (16 bytes, positive): 0x40, the time in milliseconds (48
/// bits), then 72 random bits. Unguessable all the same (the CA/Browser Forum asks for
/// 64 random bits), and ascending, so each new certificate lands at the end of the
/// serial index instead of on a random page of it.
pub fn random_serial() -> Vec<u8> {
    let mut b = [0u8; 16];
    rand::fill(&mut b[7..]);
    let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
    b[1..7].copy_from_slice(&millis.to_be_bytes()[2..]);
    b[0] = 0x40;
    b.to_vec()
}
