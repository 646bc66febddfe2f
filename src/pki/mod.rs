//! The certificate authority's cryptography: the CA itself, CSR verification, leaf
//! issuance, CRLs and fingerprints. Nothing here touches the database.

pub mod ca;
pub mod crl;
pub mod csr;
pub mod issue;
pub mod keyfile;
pub mod keys;
pub mod ocsp;
pub mod pkcs11;
pub mod signer;

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

/// What a certificate's page shows that only the certificate itself says.
#[derive(Clone, Debug)]
pub struct Described {
    pub issuer: String,
    pub key_algorithm: String,
    pub sha1: String,
}

/// Reads the issuer, key algorithm and SHA-1 fingerprint of a stored PEM certificate; a
/// certificate that cannot be read says "unknown" rather than failing the page.
pub fn describe(pem: &str) -> Described {
    use x509_parser::prelude::FromDer;
    let unknown = || Described {
        issuer: String::new(),
        key_algorithm: "unknown".into(),
        sha1: String::new(),
    };
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return unknown();
    };
    let Ok((_, x)) = x509_parser::certificate::X509Certificate::from_der(&p.contents) else {
        return unknown();
    };
    let key_algorithm = match x.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => format!("ECDSA ({} bits)", ec.key_size()),
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            format!("RSA ({} bits)", rsa.key_size())
        }
        Ok(_) => x.public_key().algorithm.algorithm.to_id_string(),
        Err(_) => "unknown".into(),
    };
    Described {
        issuer: x.issuer().to_string(),
        key_algorithm,
        sha1: sha1_fingerprint(&p.contents),
    }
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
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Option<crate::error::Cause>,
    },
}

impl PkiError {
    pub fn internal(context: impl Into<String>) -> Self {
        PkiError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// A failure of the signer or a library: what was being done, and what went wrong.
    pub fn failed(context: impl Into<String>, source: impl Into<crate::error::Cause>) -> Self {
        PkiError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

impl From<PkiError> for crate::error::AppError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::BadInput(m) => crate::error::AppError::BadRequest(m),
            PkiError::Internal { context, source } => {
                crate::error::AppError::Internal { context, source }
            }
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
/// A DER certificate's serial (as `serial_hex` writes it) and SubjectPublicKeyInfo (DER).
pub fn serial_and_spki(der: &[u8]) -> Option<(String, Vec<u8>)> {
    use x509_parser::prelude::FromDer;
    let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some((
        serial_hex(cert.raw_serial()),
        cert.tbs_certificate.subject_pki.raw.to_vec(),
    ))
}

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
