//! Certificate signing requests: verified with x509-parser (rcgen's own parser refuses the
//! extensions openssl adds), and of everything a CSR asks for only the public key is used.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::keys::{self, Check, KeyKind};
use super::PkiError;

pub const MAX_CSR_PEM: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    /// DER SubjectPublicKeyInfo: the one thing the certificate takes from the CSR.
    pub spki_der: Vec<u8>,
    /// DNS names the CSR asks for (reported, never copied into a certificate unchecked).
    pub dns_names: Vec<String>,
    pub key: KeyKind,
}

fn bad(msg: impl Into<String>) -> PkiError {
    PkiError::BadInput(msg.into())
}

/// Parses a PEM CSR and checks that it is signed by the key it carries.
pub fn verify_pem(pem_text: &str) -> Result<VerifiedCsr, PkiError> {
    if pem_text.trim().is_empty() {
        return Err(bad(
            "the CSR is empty: send a PEM certificate signing request",
        ));
    }
    if pem_text.len() > MAX_CSR_PEM {
        return Err(bad(format!("the CSR is larger than {MAX_CSR_PEM} bytes")));
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|_| bad("the CSR is not PEM: expected -----BEGIN CERTIFICATE REQUEST-----"))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(bad(format!(
            "expected a CERTIFICATE REQUEST, got a PEM {}",
            pem.label
        )));
    }
    verify_der(&pem.contents)
}

pub fn verify_der(der: &[u8]) -> Result<VerifiedCsr, PkiError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| bad(format!("the CSR cannot be parsed: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("the CSR has trailing data"));
    }
    let info = &csr.certification_request_info;
    // Key and algorithm first: a refusal then names the real reason, not a failed check.
    let key = keys::classify(&info.subject_pki)?;
    let verified = match keys::signature_check(&csr.signature_algorithm, key)? {
        Check::Standard => csr.verify_signature().is_ok(),
        Check::Pss { hash, salt_len } => keys::verify_pss(
            &info.subject_pki,
            hash,
            salt_len,
            info.raw,
            &csr.signature_value.data,
        ),
    };
    if !verified {
        return Err(bad(
            "the CSR's signature does not verify: it must be signed by the key it carries",
        ));
    }
    let spki_der = info.subject_pki.raw.to_vec();
    rcgen::SubjectPublicKeyInfo::from_der(&spki_der).map_err(|_| {
        bad(format!(
            "the CSR's {} key cannot be used; {}",
            key.name(),
            keys::ACCEPTED
        ))
    })?;
    let mut dns_names = Vec::new();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    if let GeneralName::DNSName(d) = name {
                        dns_names.push(d.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    Ok(VerifiedCsr {
        spki_der,
        dns_names,
        key,
    })
}
