//! The host side, like nbcertcmd: fetch and pin the CA, get, renew and inspect the host's
//! certificate, fetch the CRL. Files live in `--dir`: ca.pem, host.key (0600), host.pem,
//! crl.pem.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use x509_parser::prelude::FromDer;

use super::client::{CliResult, Client};
use crate::pki::sha256_fingerprint;

fn pem_der(pem: &[u8], what: &str) -> CliResult<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| format!("{what} is not PEM"))?;
    Ok(p.contents)
}

fn write_file(path: &Path, data: &[u8], private: bool) -> CliResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    if private {
        crate::secrets::write_private_file(&tmp, data)
    } else {
        std::fs::write(&tmp, data)
    }
    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path, hint: &str) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|_| format!("{} is missing: {hint}", path.display()))
}

fn normalize_fp(fp: &str) -> String {
    fp.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Downloads the CA certificate, shows its SHA-256 fingerprint, and stores it only once
/// the user confirmed it (or it matches `--fingerprint`).
pub fn get_ca_certificate(
    server: &str,
    dir: &Path,
    fingerprint: Option<&str>,
    yes: bool,
) -> CliResult<()> {
    let pem = Client::unverified(server)?.bytes("/ca.pem")?;
    let der = pem_der(&pem, "the server's CA certificate")?;
    let fp = sha256_fingerprint(&der);
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("the CA certificate cannot be read: {e}"))?;
    println!("CA subject:            {}", x.subject());
    println!("SHA-256 fingerprint:   {fp}");
    match fingerprint {
        Some(expected) if normalize_fp(expected) == normalize_fp(&fp) => {
            println!("The fingerprint matches --fingerprint.")
        }
        Some(_) => {
            return Err(
                "the CA's fingerprint does not match --fingerprint: refusing to trust it".into(),
            )
        }
        None if yes => {}
        None => {
            if !std::io::stdin().is_terminal() {
                return Err("confirm the fingerprint: pass --fingerprint with the value shown on the server's Certificate authority page".into());
            }
            print!(
                "Does this match the fingerprint on the hostca Certificate authority page? [y/N] "
            );
            std::io::stdout().flush().ok();
            let mut answer = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut answer)
                .map_err(|e| e.to_string())?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
                return Err("the CA certificate was not trusted".into());
            }
        }
    }
    let path = dir.join("ca.pem");
    write_file(&path, &pem, false)?;
    println!("Stored the CA certificate in {}", path.display());
    Ok(())
}

fn ca(dir: &Path) -> CliResult<Vec<u8>> {
    read(&dir.join("ca.pem"), "run 'hostca get-ca-certificate' first")
}

/// The CA pinned by `get-ca-certificate`. A CA is never taken from an enrollment answer:
/// whoever answered could have signed a certificate with a CA of their own.
fn pinned_ca(dir: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(dir.join("ca.pem")).map_err(|_| {
        format!(
            "no CA is pinned in {}: first run 'hostca get-ca-certificate --fingerprint SHA256' with the fingerprint shown on the server's Certificate authority page",
            dir.join("ca.pem").display()
        )
    })
}

fn client(server: &str, dir: &Path) -> CliResult<Client> {
    let ca = if server.starts_with("https://") {
        Some(ca(dir)?)
    } else {
        std::fs::read(dir.join("ca.pem")).ok()
    };
    Client::new(server, None, ca.as_deref())
}

/// The PKCS#9 challengePassword attribute (1.2.840.113549.1.9.7).
const CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A CSR for `hostname`; on renewal it carries the server's nonce as its challengePassword,
/// which the CSR's signature covers: the request cannot be replayed later.
fn csr_for(key: &rcgen::KeyPair, hostname: &str, nonce: Option<&str>) -> CliResult<String> {
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])
        .map_err(|e| format!("'{hostname}': {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let attributes = nonce
        .map(|n| {
            vec![rcgen::Attribute {
                oid: CHALLENGE_PASSWORD,
                // SET OF { UTF8String }
                values: der_tlv(0x31, &der_tlv(0x0c, n.as_bytes())),
            }]
        })
        .unwrap_or_default();
    params
        .serialize_request_with_attributes(key, attributes)
        .and_then(|c| c.pem())
        .map_err(|e| format!("making the CSR: {e}"))
}

/// Checks what the server issued before anything is written: signed by the pinned CA,
/// for this host's own key, valid now, and (on renewal) for the same host ID.
fn check_issued(
    dir: &Path,
    answer: &serde_json::Value,
    key: &rcgen::KeyPair,
    host_id: Option<&str>,
) -> CliResult<String> {
    let cert = answer["certificate"]
        .as_str()
        .ok_or("the server's answer has no certificate")?;
    let ca_der = pem_der(&pinned_ca(dir)?, "ca.pem")?;
    let (_, ca_x) = x509_parser::certificate::X509Certificate::from_der(&ca_der)
        .map_err(|e| format!("ca.pem: {e}"))?;
    let der = pem_der(cert.as_bytes(), "the issued certificate")?;
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("the issued certificate cannot be read: {e}"))?;
    if x.issuer().as_raw() != ca_x.subject().as_raw()
        || x.verify_signature(Some(ca_x.public_key())).is_err()
    {
        return Err(
            "the issued certificate is not signed by the CA pinned in ca.pem: not storing it"
                .into(),
        );
    }
    if x.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(key).as_slice() {
        return Err(
            "the issued certificate is not for this host's key (host.key): not storing it".into(),
        );
    }
    let now = chrono::Utc::now().naive_utc();
    let (from, until) = (
        crate::pki::from_asn1(x.validity().not_before),
        crate::pki::from_asn1(x.validity().not_after),
    );
    if until <= now || from > now + chrono::Duration::minutes(10) {
        return Err(format!(
            "the issued certificate is not valid now (valid from {from} to {until} UTC): not storing it"
        ));
    }
    if let Some(expected) = host_id {
        if host_id_of(&x).as_deref() != Some(expected) {
            return Err(format!(
                "the issued certificate is not for host ID {expected}: not storing it"
            ));
        }
    }
    Ok(cert.to_string())
}

pub struct TokenSource {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

impl TokenSource {
    fn value(&self) -> CliResult<Option<String>> {
        match (&self.token, &self.token_file, &self.token_env) {
            (Some(t), None, None) => {
                super::warn_secret_flag("--token", "named by --token-env", "--token-file");
                Ok(Some(t.clone()))
            }
            (None, Some(f), None) => std::fs::read_to_string(f)
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| format!("cannot read the token file {}: {e}", f.display())),
            (None, None, Some(v)) => std::env::var(v)
                .map(Some)
                .map_err(|_| format!("the environment variable {v} is not set")),
            (None, None, None) => Ok(None),
            _ => Err("give the token once: --token, --token-file or --token-env".into()),
        }
    }
}

/// Makes a key pair and CSR, asks for a certificate, keeps the key (0600) and the certificate.
pub fn get_certificate(
    server: &str,
    dir: &Path,
    hostname: &str,
    token: &TokenSource,
) -> CliResult<()> {
    let token = token.value()?;
    pinned_ca(dir)?;
    let c = client(server, dir)?;
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let csr = csr_for(&key, hostname, None)?;
    let mut body = json!({"hostname": hostname, "csr": csr});
    if let Some(t) = token {
        body["token"] = json!(t);
    }
    let answer = c.json("POST", "/api/v1/certificates", Some(&body))?;
    let cert = check_issued(dir, &answer, &key, None)?;
    write_file(&dir.join("host.key"), key.serialize_pem().as_bytes(), true)?;
    write_file(&dir.join("host.pem"), cert.as_bytes(), false)?;
    println!(
        "Certificate {} stored in {} (host ID {})",
        answer["serial"].as_str().unwrap_or_default(),
        dir.join("host.pem").display(),
        answer["host_id"].as_str().unwrap_or("?")
    );
    Ok(())
}

struct Local {
    der: Vec<u8>,
}

impl Local {
    fn load(dir: &Path) -> CliResult<Local> {
        let pem = read(&dir.join("host.pem"), "run 'hostca get-certificate' first")?;
        Ok(Local {
            der: pem_der(&pem, "host.pem")?,
        })
    }

    fn parsed(&self) -> CliResult<x509_parser::certificate::X509Certificate<'_>> {
        x509_parser::certificate::X509Certificate::from_der(&self.der)
            .map(|(_, x)| x)
            .map_err(|e| format!("host.pem cannot be read: {e}"))
    }
}

fn host_id_of(x: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let san = x.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|g| match g {
        x509_parser::extensions::GeneralName::URI(u) => {
            u.strip_prefix("urn:uuid:").map(str::to_string)
        }
        _ => None,
    })
}

fn dns_names(x: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    x.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renews with the same key: the proof that this is the host the certificate was for.
pub fn renew_certificate(server: &str, dir: &Path) -> CliResult<()> {
    let local = Local::load(dir)?;
    let x = local.parsed()?;
    let host_id = host_id_of(&x).ok_or("host.pem carries no host ID")?;
    let name = dns_names(&x)
        .into_iter()
        .next()
        .ok_or("host.pem carries no DNS name")?;
    let key_pem = String::from_utf8(read(
        &dir.join("host.key"),
        "the key of host.pem is needed to renew",
    )?)
    .map_err(|_| "host.key is not PEM")?;
    let key =
        rcgen::KeyPair::from_pem(&key_pem).map_err(|e| format!("host.key cannot be read: {e}"))?;
    pinned_ca(dir)?;
    let c = client(server, dir)?;
    let nonce = c.json(
        "POST",
        "/api/v1/certificates/renew/nonce",
        Some(&json!({ "host_id": host_id })),
    )?;
    let nonce = nonce["nonce"]
        .as_str()
        .ok_or("the server's answer has no nonce")?;
    let csr = csr_for(&key, &name, Some(nonce))?;
    let answer = c.json(
        "POST",
        "/api/v1/certificates/renew",
        Some(&json!({"host_id": host_id, "csr": csr})),
    )?;
    let cert = check_issued(dir, &answer, &key, Some(&host_id))?;
    write_file(&dir.join("host.pem"), cert.as_bytes(), false)?;
    println!(
        "Renewed: certificate {} stored in {}",
        answer["serial"].as_str().unwrap_or_default(),
        dir.join("host.pem").display()
    );
    Ok(())
}

/// Downloads the CRL, checks its signature against the pinned CA, and stores it.
pub fn get_crl(server: &str, dir: &Path) -> CliResult<()> {
    let pem = client(server, dir)?.bytes("/crl.pem")?;
    let crl_der = pem_der(&pem, "the CRL")?;
    let ca_der = pem_der(&ca(dir)?, "ca.pem")?;
    let (_, ca_x) = x509_parser::certificate::X509Certificate::from_der(&ca_der)
        .map_err(|e| format!("ca.pem: {e}"))?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl_der)
        .map_err(|e| format!("the CRL cannot be read: {e}"))?;
    crl.verify_signature(ca_x.public_key())
        .map_err(|_| "the CRL is not signed by the CA in ca.pem: not storing it")?;
    if crl.issuer().as_raw() != ca_x.subject().as_raw() {
        return Err("the CRL is not issued by the CA in ca.pem: not storing it".into());
    }
    // A CRL that is out of date, or older than the one already stored, is what someone
    // replaying an old answer would send: the host keeps what it has.
    let now = chrono::Utc::now().naive_utc();
    match crl.next_update() {
        Some(next) if crate::pki::from_asn1(next) > now => {}
        Some(next) => {
            return Err(format!(
            "the CRL's next update ({} UTC) has passed: it is out of date, keeping the stored CRL",
            crate::pki::from_asn1(next)
        ))
        }
        None => return Err("the CRL has no next update: keeping the stored CRL".into()),
    }
    let number = crl
        .crl_number()
        .cloned()
        .ok_or("the CRL has no CRL number: keeping the stored CRL")?;
    if let Some(stored) = stored_crl_number(dir) {
        if number < stored {
            return Err(format!(
                "the CRL's number {number} is lower than that of the stored CRL ({stored}): an older CRL, keeping the stored one"
            ));
        }
    }
    write_file(&dir.join("crl.pem"), &pem, false)?;
    println!(
        "CRL number {number} with {} revoked certificate(s) stored in {}",
        crl.iter_revoked_certificates().count(),
        dir.join("crl.pem").display()
    );
    Ok(())
}

/// The number of the CRL stored earlier, if there is a readable one.
fn stored_crl_number(dir: &Path) -> Option<x509_parser::num_bigint::BigUint> {
    let pem = std::fs::read(dir.join("crl.pem")).ok()?;
    let der = pem_der(&pem, "crl.pem").ok()?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
    crl.crl_number().cloned()
}

/// Prints the local certificate and whether the stored CRL revokes it.
pub fn list_cert_details(dir: &Path, json_out: bool) -> CliResult<()> {
    let local = Local::load(dir)?;
    let x = local.parsed()?;
    let serial = crate::pki::serial_hex(x.raw_serial());
    let revoked: Option<String> = match std::fs::read(dir.join("crl.pem")) {
        Err(_) => None,
        Ok(pem) => {
            let der = pem_der(&pem, "crl.pem")?;
            let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
                .map_err(|e| format!("crl.pem: {e}"))?;
            let hit = crl
                .iter_revoked_certificates()
                .find(|r| crate::pki::serial_hex(r.raw_serial()) == serial)
                .map(|r| {
                    r.reason_code()
                        .map(|(_, rc)| format!("revoked ({rc})"))
                        .unwrap_or_else(|| "revoked".to_string())
                });
            Some(hit.unwrap_or_else(|| "not revoked".to_string()))
        }
    };
    let status = revoked
        .clone()
        .unwrap_or_else(|| "unknown (run 'hostca get-crl')".into());
    let fields = vec![
        ("subject", x.subject().to_string()),
        ("names", dns_names(&x).join(", ")),
        ("host_id", host_id_of(&x).unwrap_or_default()),
        ("serial", serial.clone()),
        ("issuer", x.issuer().to_string()),
        (
            "not_before",
            crate::pki::from_asn1(x.validity().not_before)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
        (
            "not_after",
            crate::pki::from_asn1(x.validity().not_after)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
        ("sha256_fingerprint", sha256_fingerprint(&local.der)),
        ("crl_status", status),
    ];
    if json_out {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map).unwrap_or_default());
    } else {
        for (k, v) in fields {
            println!("{:<20} {v}", format!("{k}:"));
        }
    }
    Ok(())
}
