//! The root CA: an ECDSA P-256 key and a self-signed certificate, kept as `ca.pem` and
//! `ca.key` (mode 0600) in the data directory.

use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDateTime};
use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use x509_parser::prelude::{FromDer, ParsedExtension};

use super::{from_asn1, random_serial, sha1_fingerprint, sha256_fingerprint, to_offset, PkiError};

pub const CERT_FILE: &str = "ca.pem";
pub const KEY_FILE: &str = "ca.key";
pub const VALIDITY_DAYS: i64 = 3653;

pub struct Ca {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    pub subject: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub sha1: String,
    pub sha256: String,
    /// The DER SubjectPublicKeyInfo of the CA key.
    pub spki_der: Vec<u8>,
    /// The DER subject name: the issuer of everything the CA signs.
    pub subject_der: Vec<u8>,
    /// The certificate's subject key identifier, named by the CRL's authority key
    /// identifier.
    pub key_id: Option<Vec<u8>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

pub fn cert_path(dir: &Path) -> PathBuf {
    dir.join(CERT_FILE)
}

pub fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

/// `CN=Foo,O=Bar` or a bare name (taken as the common name). Each value within RFC 5280's
/// upper bounds; the country is two letters (ISO 3166), encoded as a PrintableString as
/// X.520 requires.
fn distinguished_name(name: &str) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(PkiError::BadInput(
            "the CA name must be 1–200 characters".into(),
        ));
    }
    if !name.contains('=') {
        push_attribute(&mut dn, "CN", name)?;
        return Ok(dn);
    }
    for part in name.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| PkiError::BadInput(format!("'{part}' is not KEY=value")))?;
        push_attribute(&mut dn, &k.trim().to_ascii_uppercase(), v.trim())?;
    }
    Ok(dn)
}

fn push_attribute(dn: &mut DistinguishedName, key: &str, value: &str) -> Result<(), PkiError> {
    let (ty, upper_bound) = match key {
        "CN" => (DnType::CommonName, 64),
        "O" => (DnType::OrganizationName, 64),
        "OU" => (DnType::OrganizationalUnitName, 64),
        "C" => (DnType::CountryName, 2),
        "ST" => (DnType::StateOrProvinceName, 128),
        "L" => (DnType::LocalityName, 128),
        other => {
            return Err(PkiError::BadInput(format!(
                "unsupported name attribute '{other}': use CN, O, OU, C, ST or L"
            )))
        }
    };
    if value.is_empty() {
        return Err(PkiError::BadInput(format!(
            "the CA name's {key}= is empty: give it a value or leave it out"
        )));
    }
    if ty == DnType::CountryName {
        if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(PkiError::BadInput(format!(
                "C={value} is not a country code: use the two-letter ISO 3166 code, e.g. C=US or C=DE"
            )));
        }
        let code = PrintableString::try_from(value.to_ascii_uppercase())
            .map_err(|e| PkiError::BadInput(format!("C={value}: {e}")))?;
        dn.push(ty, DnValue::PrintableString(code));
        return Ok(());
    }
    if value.chars().count() > upper_bound {
        return Err(PkiError::BadInput(format!(
            "the CA name's {key}= is longer than {upper_bound} characters (RFC 5280's upper bound)"
        )));
    }
    dn.push(ty, value);
    Ok(())
}

impl Ca {
    /// A new root CA, valid ten years from now.
    pub fn create(name: &str, now: NaiveDateTime) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::failed("CA key generation", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        // The CA key signs certificates and CRLs, nothing else (no OCSP responses).
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = to_offset(now - Duration::minutes(5));
        params.not_after = to_offset(now + Duration::days(VALIDITY_DAYS));
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::failed("CA certificate", e))?;
        Ca::from_parts(cert.pem(), key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<Ca, PkiError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::failed("CA certificate is not PEM", e))?;
        let der = pem.contents;
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(&der)
            .map_err(|e| PkiError::failed("CA certificate cannot be read", e))?;
        if x509.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(PkiError::internal(
                "the CA key does not belong to the CA certificate",
            ));
        }
        let subject = x509.subject().to_string();
        let not_before = from_asn1(x509.validity().not_before);
        let not_after = from_asn1(x509.validity().not_after);
        let spki_der = x509.public_key().raw.to_vec();
        let subject_der = x509.subject().as_raw().to_vec();
        let key_id = x509
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|e| PkiError::failed("CA issuer", e))?;
        Ok(Ca {
            subject,
            not_before,
            not_after,
            sha1: sha1_fingerprint(&der),
            sha256: sha256_fingerprint(&der),
            spki_der,
            subject_der,
            key_id,
            cert_der: der,
            cert_pem,
            issuer,
        })
    }

    /// Reads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p)
                .map_err(|e| PkiError::internal(format!("cannot read {}: {e}", p.display())))
        };
        let cert_pem = read(cert_path(dir))?;
        let key_pem = read(key_path(dir))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            PkiError::internal(format!(
                "{} is not a usable key: {e}",
                key_path(dir).display()
            ))
        })?;
        Ca::from_parts(cert_pem, key)
    }

    /// Writes `ca.pem` and `ca.key`, both mode 0600; never overwrites.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        let write = |p: PathBuf, data: &str| {
            crate::secrets::write_private_file(&p, data.as_bytes())
                .map_err(|e| PkiError::internal(format!("cannot write {}: {e}", p.display())))
        };
        write(key_path(dir), &self.issuer.key().serialize_pem())?;
        write(cert_path(dir), &self.cert_pem)
    }

    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}
