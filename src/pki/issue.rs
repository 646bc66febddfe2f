//! Leaf certificates for hosts: CN and DNS SANs from the approved names, the host ID as a
//! `urn:uuid:` URI SAN, server and client authentication, a random 128-bit serial, key
//! usages that fit the key type, and where to find the CRL and the CA certificate.

use chrono::{Duration, NaiveDateTime};
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, SanType, SerialNumber, SubjectPublicKeyInfo,
};

use super::ca::Ca;
use super::keys;
use super::{random_serial, serial_hex, sha256_fingerprint, to_offset, PkiError};

pub struct LeafRequest<'a> {
    /// The primary name first; every name must already be approved for the host.
    pub names: &'a [String],
    /// The host ID, written as a `urn:uuid:` URI SAN; `None` for the server's own TLS
    /// certificate.
    pub host_id: Option<&'a str>,
    pub spki_der: &'a [u8],
    pub validity_days: i64,
    /// Minutes instead of `validity_days` (the server's `--leaf-validity-minutes`, for
    /// drills and tests of renewal with certificates that expire in minutes).
    pub validity_minutes: Option<i64>,
    pub now: NaiveDateTime,
    /// The server's public base URL (`Site::public_url`): the certificate names
    /// `{public_url}/crl` as its CRL distribution point and `{public_url}/ca.crt` (DER) as
    /// its CA issuers location. Empty leaves both out.
    pub public_url: &'a str,
}

/// RFC 5280's ub-common-name: a longer primary name lives in the SAN only.
pub const MAX_COMMON_NAME: usize = 64;

/// Where the CRL of the oldest CA still publishing one is, below the public URL (what
/// certificates from before the CA hierarchy name).
pub const CRL_PATH: &str = "/crl";
/// Where that CA's certificate is published as DER (RFC 5280, 4.2.2.1: caIssuers over HTTP
/// is one DER certificate), below the public URL.
pub const CA_ISSUERS_PATH: &str = "/ca.crt";

/// Where the CRL of the CA with issuers row `id` is, below the public URL: what
/// certificates name as their CRL distribution point.
pub fn crl_path(id: i64) -> String {
    format!("{CRL_PATH}/{id}")
}

/// Where the certificate of the CA with issuers row `id` is, as DER: what certificates
/// name as their caIssuers.
pub fn ca_issuers_path(id: i64) -> String {
    format!("/ca/{id}.crt")
}

/// Where the OCSP responder is, below the public URL (RFC 6960, `POST` and `GET /ocsp/...`).
pub const OCSP_PATH: &str = "/ocsp";

/// The authorityInfoAccess extension (RFC 5280, 4.2.2.1): the OCSP responder, then the
/// caIssuers URI; rcgen has no type for it.
fn authority_info_access(ocsp: &str, ca_issuers: &str) -> CustomExtension {
    use super::crl::{tlv, SEQUENCE};
    // AccessDescription { id-ad-ocsp / id-ad-caIssuers, [6] IA5String uri }
    const OCSP: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    const CA_ISSUERS: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut descriptions = Vec::new();
    for (method, uri) in [(OCSP, ocsp), (CA_ISSUERS, ca_issuers)] {
        let mut description = method.to_vec();
        tlv(&mut description, 0x86, uri.as_bytes());
        tlv(&mut descriptions, SEQUENCE, &description);
    }
    let mut content = Vec::new();
    tlv(&mut content, SEQUENCE, &descriptions);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], content)
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
    /// The issuers row of the CA that signed it.
    pub issuer_id: i64,
}

/// Certificates are back-dated a little so that hosts with a slow clock accept them.
const BACKDATE_MINUTES: i64 = 5;

pub fn issue(ca: &Ca, req: &LeafRequest) -> Result<IssuedCert, PkiError> {
    let primary = req
        .names
        .first()
        .ok_or_else(|| PkiError::internal("a certificate needs a name"))?;
    let kind = keys::classify_der(req.spki_der)?;
    let key = SubjectPublicKeyInfo::from_der(req.spki_der)
        .map_err(|e| PkiError::BadInput(format!("unsupported public key: {e}")))?;
    let mut params = CertificateParams::default();
    // With no CN the subject is empty, and rcgen then marks the SAN critical (RFC 5280,
    // 4.2.1.6).
    let subject = if primary.len() <= MAX_COMMON_NAME {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, primary.as_str());
        params.distinguished_name = dn;
        format!("CN={primary}")
    } else {
        params.distinguished_name = DistinguishedName::new();
        String::new()
    };
    let mut sans = Vec::with_capacity(req.names.len() + 1);
    for n in req.names {
        if let Ok(ip) = n.parse::<std::net::IpAddr>() {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        if !ca.permits_dns(n) {
            return Err(PkiError::BadInput(format!(
                "'{n}' is outside the issuing CA's name constraints ({}): map the host to a name inside them",
                ca.permitted_dns.join(", ")
            )));
        }
        let ia5 = n
            .clone()
            .try_into()
            .map_err(|_| PkiError::BadInput(format!("'{n}' is not a valid DNS name")))?;
        sans.push(SanType::DnsName(ia5));
    }
    if let Some(host_id) = req.host_id {
        let urn = format!("urn:uuid:{host_id}");
        sans.push(SanType::URI(
            urn.try_into()
                .map_err(|_| PkiError::internal("host ID is not a valid URI"))?,
        ));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = kind.leaf_key_usages();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    if !req.public_url.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![format!("{}{}", req.public_url, crl_path(ca.id))],
        }];
        params.custom_extensions = vec![authority_info_access(
            &format!("{}{OCSP_PATH}", req.public_url),
            &format!("{}{}", req.public_url, ca_issuers_path(ca.id)),
        )];
    }
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = req.now.and_utc().timestamp();
    let now = chrono::DateTime::from_timestamp(now, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(req.now);
    // A certificate of a few minutes (`validity_minutes`) is backdated by a tenth of its
    // validity, not 5 minutes: otherwise its renewal window (the last third of the
    // lifetime) would open before it is issued.
    let backdate = match req.validity_minutes {
        Some(m) => Duration::seconds(m * 6).min(Duration::minutes(BACKDATE_MINUTES)),
        None => Duration::minutes(BACKDATE_MINUTES),
    };
    let not_before = now - backdate;
    let not_after = now
        + req
            .validity_minutes
            .map(Duration::minutes)
            .unwrap_or_else(|| Duration::days(req.validity_days));
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);
    let cert = params
        .signed_by(&key, ca.issuer()?)
        .map_err(|e| PkiError::failed("signing", e))?;
    Ok(IssuedCert {
        pem: cert.pem(),
        serial: serial_hex(&serial),
        subject,
        not_before,
        not_after,
        sha256: sha256_fingerprint(cert.der()),
        der: cert.der().to_vec(),
        issuer_id: ca.id,
    })
}
