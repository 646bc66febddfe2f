//! A CA certificate and, when this server holds it, its signing key: a root (self-signed,
//! signs issuing CAs), an issuing CA (signed by a root, signs hosts), or the one root of an
//! installation from before the hierarchy (`ca.pem` and `ca.key` in the data directory).

use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDateTime};
use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData, SerialNumber,
};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension};

use super::signer::{CaKey, CaKeyType};
use super::{from_asn1, random_serial, sha1_fingerprint, sha256_fingerprint, to_offset, PkiError};

pub const CERT_FILE: &str = "ca.pem";
pub const KEY_FILE: &str = "ca.key";
/// An upgraded installation's root was made for ten years.
pub const LEGACY_VALIDITY_DAYS: i64 = 3653;
/// A root: 20 years.
pub const ROOT_VALIDITY_DAYS: i64 = 7305;
/// An issuing CA: 5 years (never past its root).
pub const ISSUING_VALIDITY_DAYS: i64 = 1826;

pub struct Ca {
    /// Its row in the issuers table (0 before it is stored).
    pub id: i64,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// `None` when this server does not hold the key (a root taken offline).
    issuer: Option<Issuer<'static, CaKey>>,
    /// The key's type, when hostca knows it.
    pub key_type: Option<CaKeyType>,
    /// The DNS subtrees its name constraints permit (empty: unconstrained).
    pub permitted_dns: Vec<String>,
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
    /// A new self-signed root for `key`, valid `days` from now. It signs issuing CAs and
    /// CRLs (pathLen 1: one issuing CA below it).
    pub fn create_root(
        name: &str,
        key: CaKey,
        now: NaiveDateTime,
        days: i64,
    ) -> Result<Ca, PkiError> {
        let mut params = ca_params(name, now, now + Duration::days(days))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::failed("root CA certificate", e))?;
        Ca::from_pem(&cert.pem())?.with_key(key)
    }

    /// A new issuing CA for `key`, signed by `parent`: pathLen 0, valid `days` (never past
    /// the parent), and name constraints permitting only `permitted` DNS subtrees when
    /// there are any.
    pub fn create_issuing(
        name: &str,
        key: CaKey,
        parent: &Ca,
        now: NaiveDateTime,
        days: i64,
        permitted: &[String],
    ) -> Result<Ca, PkiError> {
        let not_after = (now + Duration::days(days)).min(parent.not_after);
        let mut params = ca_params(name, now, not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        if !permitted.is_empty() {
            let mut subtrees = Vec::with_capacity(permitted.len());
            for d in permitted {
                subtrees.push(GeneralSubtree::DnsName(d.clone()));
            }
            params.name_constraints = Some(NameConstraints {
                permitted_subtrees: subtrees,
                excluded_subtrees: Vec::new(),
            });
        }
        let cert = params
            .signed_by(&key, parent.issuer()?)
            .map_err(|e| PkiError::failed("issuing CA certificate", e))?;
        Ca::from_pem(&cert.pem())?.with_key(key)
    }

    /// The root of an installation from before the hierarchy: P-256, ten years, signing
    /// hosts itself (pathLen 0). Only tests make new ones, to prove the upgrade.
    pub fn create_legacy(name: &str, now: NaiveDateTime) -> Result<Ca, PkiError> {
        let key = super::signer::generate_file_key(CaKeyType::P256)?;
        let mut params = ca_params(name, now, now + Duration::days(LEGACY_VALIDITY_DAYS))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::failed("CA certificate", e))?;
        Ca::from_pem(&cert.pem())?.with_key(CaKey::File(key))
    }

    /// A CA certificate without its key.
    pub fn from_pem(cert_pem: &str) -> Result<Ca, PkiError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::failed("CA certificate is not PEM", e))?;
        let der = pem.contents;
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(&der)
            .map_err(|e| PkiError::failed("CA certificate cannot be read", e))?;
        let mut key_id = None;
        let mut permitted_dns = Vec::new();
        for e in x509.extensions() {
            match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => key_id = Some(id.0.to_vec()),
                ParsedExtension::NameConstraints(nc) => {
                    for t in nc.permitted_subtrees.iter().flatten() {
                        if let GeneralName::DNSName(d) = t.base {
                            permitted_dns.push(d.to_ascii_lowercase());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Ca {
            id: 0,
            subject: x509.subject().to_string(),
            not_before: from_asn1(x509.validity().not_before),
            not_after: from_asn1(x509.validity().not_after),
            sha1: sha1_fingerprint(&der),
            sha256: sha256_fingerprint(&der),
            spki_der: x509.public_key().raw.to_vec(),
            subject_der: x509.subject().as_raw().to_vec(),
            key_id,
            key_type: None,
            permitted_dns,
            cert_der: der,
            cert_pem: cert_pem.to_string(),
            issuer: None,
        })
    }

    /// Gives the CA its key, which must be the certificate's.
    pub fn with_key(mut self, key: CaKey) -> Result<Ca, PkiError> {
        if key.subject_public_key_info() != self.spki_der {
            return Err(PkiError::internal(format!(
                "the key ({}) does not belong to the CA certificate {}",
                key.describe(),
                self.subject
            )));
        }
        self.key_type = CaKeyType::of_algorithm(PublicKeyData::algorithm(&key), &self.spki_der);
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.clone().into(), key)
            .map_err(|e| PkiError::failed("CA issuer", e))?;
        self.issuer = Some(issuer);
        Ok(self)
    }

    /// Reads an upgraded installation's `ca.pem` and `ca.key` from `dir`.
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
        Ca::from_pem(&cert_pem)?.with_key(CaKey::File(key))
    }

    /// Writes `ca.pem` and `ca.key` (plain PKCS #8, as installations before the hierarchy
    /// kept them), both mode 0600; never overwrites. Only a file key can be saved so.
    pub fn save_legacy(&self, dir: &Path) -> Result<(), PkiError> {
        let write = |p: PathBuf, data: &str| {
            crate::secrets::write_private_file(&p, data.as_bytes())
                .map_err(|e| PkiError::internal(format!("cannot write {}: {e}", p.display())))
        };
        let Some(CaKey::File(key)) = self.signer() else {
            return Err(PkiError::internal("only a file key is saved as ca.key"));
        };
        write(key_path(dir), &key.serialize_pem())?;
        write(cert_path(dir), &self.cert_pem)
    }

    /// The rcgen issuer that signs with this CA's key, or an error saying the key is not
    /// on this server.
    pub fn issuer(&self) -> Result<&Issuer<'static, CaKey>, PkiError> {
        self.issuer.as_ref().ok_or_else(|| {
            PkiError::BadInput(format!(
                "the key of {} is not on this server (offline): give it with --root-key",
                self.subject
            ))
        })
    }

    pub fn signer(&self) -> Option<&CaKey> {
        self.issuer.as_ref().map(|i| i.key())
    }

    pub fn has_key(&self) -> bool {
        self.issuer.is_some()
    }

    /// The subject key identifier, hex (empty when the certificate has none).
    pub fn key_id_hex(&self) -> String {
        self.key_id.as_deref().map(hex::encode).unwrap_or_default()
    }

    /// Whether a DNS name is inside this CA's name constraints (always, without any).
    pub fn permits_dns(&self, name: &str) -> bool {
        self.permitted_dns.is_empty()
            || self.permitted_dns.iter().any(|d| {
                let d = d.trim_start_matches('.');
                name == d || name.ends_with(&format!(".{d}"))
            })
    }
}

/// What every CA certificate hostca makes has: the name, the validity, a fresh serial, and
/// key usages for certificates and CRLs only.
fn ca_params(
    name: &str,
    not_before: NaiveDateTime,
    not_after: NaiveDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name)?;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = to_offset(not_before - Duration::minutes(5));
    params.not_after = to_offset(not_after);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    Ok(params)
}
