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

fn client(server: &str, dir: &Path) -> CliResult<Client> {
    let ca = if server.starts_with("https://") {
        Some(ca(dir)?)
    } else {
        std::fs::read(dir.join("ca.pem")).ok()
    };
    Client::new(server, None, ca.as_deref())
}

fn csr_for(key: &rcgen::KeyPair, hostname: &str) -> CliResult<String> {
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])
        .map_err(|e| format!("'{hostname}': {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .serialize_request(key)
        .and_then(|c| c.pem())
        .map_err(|e| format!("making the CSR: {e}"))
}

/// Stores what the server issued, after checking it chains to the pinned CA.
fn store(dir: &Path, answer: &serde_json::Value) -> CliResult<String> {
    let cert = answer["certificate"]
        .as_str()
        .ok_or("the server's answer has no certificate")?;
    let issued_ca = answer["ca_certificate"].as_str().unwrap_or_default();
    if let Ok(pinned) = std::fs::read(dir.join("ca.pem")) {
        if pem_der(&pinned, "ca.pem")? != pem_der(issued_ca.as_bytes(), "the issuing CA")? {
            return Err("the certificate was issued by a CA other than the one stored in ca.pem: not storing it".into());
        }
    } else {
        write_file(&dir.join("ca.pem"), issued_ca.as_bytes(), false)?;
    }
    write_file(&dir.join("host.pem"), cert.as_bytes(), false)?;
    Ok(answer["serial"].as_str().unwrap_or_default().to_string())
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
    let c = client(server, dir)?;
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let csr = csr_for(&key, hostname)?;
    let mut body = json!({"hostname": hostname, "csr": csr});
    if let Some(t) = token {
        body["token"] = json!(t);
    }
    let answer = c.json("POST", "/api/v1/certificates", Some(&body))?;
    write_file(&dir.join("host.key"), key.serialize_pem().as_bytes(), true)?;
    let serial = store(dir, &answer)?;
    println!(
        "Certificate {serial} stored in {} (host ID {})",
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
    let csr = csr_for(&key, &name)?;
    let answer = client(server, dir)?.json(
        "POST",
        "/api/v1/certificates/renew",
        Some(&json!({"host_id": host_id, "csr": csr})),
    )?;
    let serial = store(dir, &answer)?;
    println!(
        "Renewed: certificate {serial} stored in {}",
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
    write_file(&dir.join("crl.pem"), &pem, false)?;
    println!(
        "CRL number {} with {} revoked certificate(s) stored in {}",
        crl.crl_number()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        crl.iter_revoked_certificates().count(),
        dir.join("crl.pem").display()
    );
    Ok(())
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
