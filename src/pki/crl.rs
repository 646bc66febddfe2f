//! The certificate revocation list (RFC 5280), signed by the CA.

use chrono::{Duration, NaiveDateTime};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use super::ca::Ca;
use super::{to_offset, PkiError, Reason};

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

pub fn build(
    ca: &Ca,
    number: i64,
    entries: &[RevokedEntry],
    now: NaiveDateTime,
) -> Result<SignedCrl, PkiError> {
    let now = chrono::DateTime::from_timestamp(now.and_utc().timestamp(), 0)
        .map(|d| d.naive_utc())
        .unwrap_or(now);
    let next = now + Duration::days(NEXT_UPDATE_DAYS);
    let revoked_certs = entries
        .iter()
        .map(|e| {
            let bytes = hex::decode(&e.serial_hex)
                .map_err(|_| PkiError::Internal(format!("bad serial {}", e.serial_hex)))?;
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: to_offset(e.revoked_at),
                reason_code: Some(e.reason.rcgen()),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = CertificateRevocationListParams {
        this_update: to_offset(now),
        next_update: to_offset(next),
        crl_number: SerialNumber::from_slice(&number.max(0).to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|e| PkiError::Internal(format!("signing the CRL: {e}")))?;
    Ok(SignedCrl {
        der: crl.der().to_vec(),
        pem: crl
            .pem()
            .map_err(|e| PkiError::Internal(format!("CRL PEM: {e}")))?,
        number,
        this_update: now,
        next_update: next,
        entries: entries.len(),
    })
}
