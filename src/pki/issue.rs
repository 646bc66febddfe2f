//! Leaf certificates for hosts: CN and DNS SANs from the approved names, the host ID as a
//! `urn:uuid:` URI SAN, server and client authentication, a random 128-bit serial.

use chrono::{Duration, NaiveDateTime};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};

use super::ca::Ca;
use super::{random_serial, serial_hex, sha256_fingerprint, to_offset, PkiError};

pub struct LeafRequest<'a> {
    /// The primary name first; every name must already be approved for the host.
    pub names: &'a [String],
    /// The host ID, written as a `urn:uuid:` URI SAN; `None` for the server's own TLS
    /// certificate.
    pub host_id: Option<&'a str>,
    pub spki_der: &'a [u8],
    pub validity_days: i64,
    pub now: NaiveDateTime,
}

#[derive(Clone, Debug)]
pub struct IssuedCert {
    pub pem: String,
    pub serial: String,
    pub subject: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub sha256: String,
    pub der: Vec<u8>,
}

/// Certificates are back-dated a little so that hosts with a slow clock accept them.
const BACKDATE_MINUTES: i64 = 5;

pub fn issue(ca: &Ca, req: &LeafRequest) -> Result<IssuedCert, PkiError> {
    let primary = req
        .names
        .first()
        .ok_or_else(|| PkiError::Internal("a certificate needs a name".into()))?;
    let key = SubjectPublicKeyInfo::from_der(req.spki_der)
        .map_err(|e| PkiError::BadInput(format!("unsupported public key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, primary.as_str());
    params.distinguished_name = dn;
    let mut sans = Vec::with_capacity(req.names.len() + 1);
    for n in req.names {
        if let Ok(ip) = n.parse::<std::net::IpAddr>() {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        let ia5 = n
            .clone()
            .try_into()
            .map_err(|_| PkiError::BadInput(format!("'{n}' is not a valid DNS name")))?;
        sans.push(SanType::DnsName(ia5));
    }
    if let Some(host_id) = req.host_id {
        let urn = format!("urn:uuid:{host_id}");
        sans.push(SanType::URI(urn.try_into().map_err(|_| {
            PkiError::Internal("host ID is not a valid URI".into())
        })?));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = req.now.and_utc().timestamp();
    let now = chrono::DateTime::from_timestamp(now, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(req.now);
    let not_before = now - Duration::minutes(BACKDATE_MINUTES);
    let not_after = now + Duration::days(req.validity_days);
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);
    let cert = params
        .signed_by(&key, ca.issuer())
        .map_err(|e| PkiError::Internal(format!("signing: {e}")))?;
    Ok(IssuedCert {
        pem: cert.pem(),
        serial: serial_hex(&serial),
        subject: format!("CN={primary}"),
        not_before,
        not_after,
        sha256: sha256_fingerprint(cert.der()),
        der: cert.der().to_vec(),
    })
}
