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

/// Every certificate of a PEM bundle, as DER.
fn pem_ders(pem: &[u8], what: &str) -> CliResult<Vec<Vec<u8>>> {
    let ders: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect();
    if ders.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    Ok(ders)
}

fn parse(der: &[u8]) -> CliResult<x509_parser::certificate::X509Certificate<'_>> {
    x509_parser::certificate::X509Certificate::from_der(der)
        .map(|(_, x)| x)
        .map_err(|e| format!("a CA certificate cannot be read: {e}"))
}

/// Whether `child` is signed by `parent` (name and signature).
fn signed_by(child: &[u8], parent: &[u8]) -> bool {
    let (Ok(c), Ok(p)) = (parse(child), parse(parent)) else {
        return false;
    };
    c.issuer().as_raw() == p.subject().as_raw() && c.verify_signature(Some(p.public_key())).is_ok()
}

fn self_signed(der: &[u8]) -> bool {
    signed_by(der, der)
}

fn bundle_pem(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|d| crate::pki::crl::pem("CERTIFICATE", d))
        .collect()
}

/// The certificates of `offered` that `trusted` vouches for: already trusted, or signed
/// by one that is (checked again for each one added, so a chain of CAs is followed).
fn vouched(trusted: &[Vec<u8>], offered: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut kept: Vec<Vec<u8>> = trusted.to_vec();
    loop {
        let before = kept.len();
        for o in offered {
            if !kept.contains(o) && kept.iter().any(|t| signed_by(o, t)) {
                kept.push(o.clone());
            }
        }
        if kept.len() == before {
            return kept;
        }
    }
}

/// Downloads the trust bundle, shows each CA's SHA-256 fingerprint, and stores the root
/// the user confirmed (or the roots `--fingerprint` names) with the CAs it signed. A CA in
/// the bundle that no confirmed root vouches for is left out, and said.
pub fn get_ca_certificate(
    server: &str,
    dir: &Path,
    fingerprints: &[String],
    yes: bool,
) -> CliResult<()> {
    let pem = Client::unverified(server)?
        .as_host(own_host_id(dir))
        .bytes("/ca.pem")?;
    let ders = pem_ders(&pem, "the server's trust bundle")?;
    for der in &ders {
        let x = parse(der)?;
        println!(
            "{} {}\n  SHA-256 fingerprint:   {}",
            if self_signed(der) {
                "Root CA:"
            } else {
                "CA:     "
            },
            x.subject(),
            sha256_fingerprint(der)
        );
    }
    let roots: Vec<&Vec<u8>> = ders.iter().filter(|d| self_signed(d)).collect();
    let confirmed: Vec<Vec<u8>> = if !fingerprints.is_empty() {
        let wanted: Vec<String> = fingerprints.iter().map(|f| normalize_fp(f)).collect();
        let matched: Vec<Vec<u8>> = roots
            .iter()
            .filter(|d| wanted.contains(&normalize_fp(&sha256_fingerprint(d))))
            .map(|d| d.to_vec())
            .collect();
        if matched.is_empty() {
            return Err(
                "the CA's fingerprint does not match --fingerprint: refusing to trust it".into(),
            );
        }
        println!("The fingerprint matches --fingerprint.");
        matched
    } else if yes {
        roots.iter().map(|d| d.to_vec()).collect()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err("confirm the fingerprint: pass --fingerprint with the value shown on the server's Certificate authority page".into());
        }
        print!(
            "Does the root's fingerprint match the one on the hostca Certificate authority page? [y/N] "
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
        roots.iter().map(|d| d.to_vec()).collect()
    };
    let kept = vouched(&confirmed, &ders);
    for der in ders.iter().filter(|d| !kept.contains(d)) {
        println!(
            "Not trusted (no confirmed root signed it; confirm it with another --fingerprint): {}",
            sha256_fingerprint(der)
        );
    }
    let path = dir.join("ca.pem");
    write_file(&path, bundle_pem(&kept).as_bytes(), false)?;
    println!(
        "Stored {} CA certificate(s) in {}",
        kept.len(),
        path.display()
    );
    Ok(())
}

/// The host ID of the stored certificate, which this host names itself with.
fn own_host_id(dir: &Path) -> Option<String> {
    let local = Local::load(dir).ok()?;
    let x = local.parsed().ok()?;
    host_id_of(&x)
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

/// The client a host uses: verified against the pinned CA on https.
pub(super) fn client(server: &str, dir: &Path) -> CliResult<Client> {
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

/// Checks what the server issued before anything is written: signed by a CA the pinned
/// bundle vouches for, for this host's own key, valid now, and (on renewal) for the same
/// host ID. Returns the certificate with its chain (PEM) and the trust bundle to keep: the
/// pinned CAs still in the server's bundle, and the new CAs a pinned one signed (a CA
/// migration's new issuing CA). A new root is never taken from an answer.
fn check_issued(
    dir: &Path,
    answer: &serde_json::Value,
    key: &rcgen::KeyPair,
    host_id: Option<&str>,
) -> CliResult<(String, Option<String>)> {
    let cert = answer["certificate"]
        .as_str()
        .ok_or("the server's answer has no certificate")?;
    let pinned = pem_ders(&pinned_ca(dir)?, "ca.pem")?;
    let offered = answer["ca_certificate"]
        .as_str()
        .and_then(|b| pem_ders(b.as_bytes(), "the answer's trust bundle").ok())
        .unwrap_or_default();
    let chain = answer["chain"]
        .as_str()
        .and_then(|b| pem_ders(b.as_bytes(), "the answer's chain").ok())
        .unwrap_or_default();
    let mut trusted = vouched(&pinned, &offered);
    trusted = vouched(&trusted, &chain);
    let der = pem_der(cert.as_bytes(), "the issued certificate")?;
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|e| format!("the issued certificate cannot be read: {e}"))?;
    if !trusted.iter().any(|ca| signed_by(&der, ca)) {
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
    let mut full = cert.to_string();
    if !full.ends_with('\n') {
        full.push('\n');
    }
    for c in chain.iter().filter(|c| trusted.contains(c)) {
        full.push_str(&crate::pki::crl::pem("CERTIFICATE", c));
    }
    Ok((full, bundle_to_keep(&pinned, &offered, &trusted)))
}

/// The trust bundle to keep after the server offered `offered` (`trusted`: what the pinned
/// CAs vouch for of it): what the server still trusts of ours, plus what ours vouch for;
/// never without a root. `None`: keep ca.pem as it is.
fn bundle_to_keep(pinned: &[Vec<u8>], offered: &[Vec<u8>], trusted: &[Vec<u8>]) -> Option<String> {
    let bundle: Vec<Vec<u8>> = if offered.is_empty() {
        trusted.to_vec()
    } else {
        trusted
            .iter()
            .filter(|c| offered.contains(c))
            .cloned()
            .collect()
    };
    (bundle != pinned && bundle.iter().any(|c| self_signed(c))).then(|| {
        for c in bundle.iter().filter(|c| !pinned.contains(c)) {
            println!("Now trusting the CA with SHA-256 fingerprint {}", sha256_fingerprint(c));
        }
        for c in offered.iter().filter(|c| !trusted.contains(c)) {
            println!(
                "The server trusts a CA no pinned root vouches for (SHA-256 {}): confirm it with 'hostca get-ca-certificate --fingerprint'",
                sha256_fingerprint(c)
            );
        }
        bundle_pem(&bundle)
    })
}

/// Refreshes ca.pem from the server's trust bundle, accepting a new CA only as a renewal
/// does: one a pinned CA vouches for; a pinned CA the server dropped leaves (never the
/// last root). Returns whether ca.pem changed.
pub fn refresh_ca_bundle(server: &str, dir: &Path) -> CliResult<bool> {
    let pinned = pem_ders(&pinned_ca(dir)?, "ca.pem")?;
    let pem = client(server, dir)?
        .as_host(own_host_id(dir))
        .bytes("/ca.pem")?;
    let offered = pem_ders(&pem, "the server's trust bundle")?;
    let trusted = vouched(&pinned, &offered);
    match bundle_to_keep(&pinned, &offered, &trusted) {
        Some(b) => {
            write_file(&dir.join("ca.pem"), b.as_bytes(), false)?;
            Ok(true)
        }
        None => Ok(false),
    }
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
    let (cert, bundle) = check_issued(dir, &answer, &key, None)?;
    write_file(&dir.join("host.key"), key.serialize_pem().as_bytes(), true)?;
    write_file(&dir.join("host.pem"), cert.as_bytes(), false)?;
    if let Some(b) = bundle {
        write_file(&dir.join("ca.pem"), b.as_bytes(), false)?;
    }
    println!(
        "Certificate {} stored in {} (host ID {})",
        answer["serial"].as_str().unwrap_or_default(),
        dir.join("host.pem").display(),
        answer["host_id"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// What a host knows of its own certificate (host.pem).
pub struct LocalCert {
    pub serial: String,
    pub host_id: Option<String>,
    pub name: Option<String>,
    pub not_before: chrono::NaiveDateTime,
    pub not_after: chrono::NaiveDateTime,
    /// Whether host.key is the key of host.pem.
    pub key_matches: bool,
}

/// Reads host.pem (and checks host.key against it).
pub fn local_cert(dir: &Path) -> CliResult<LocalCert> {
    let local = Local::load(dir)?;
    let x = local.parsed()?;
    let key = read_key(&dir.join("host.key"))?;
    Ok(LocalCert {
        serial: crate::pki::serial_hex(x.raw_serial()),
        host_id: host_id_of(&x),
        name: dns_names(&x).into_iter().next(),
        not_before: crate::pki::from_asn1(x.validity().not_before),
        not_after: crate::pki::from_asn1(x.validity().not_after),
        key_matches: x.public_key().raw
            == rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
    })
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

/// What a renewal stored.
pub struct Renewed {
    pub serial: String,
    pub rekeyed: bool,
    pub ca_changed: bool,
}

/// Renews the certificate: with the same key (`rekey` false), the proof that this is the
/// host the certificate was for; or with a new key, whose CSR the current key signs over
/// (the `proof`, see `services::renewal::rekey_message`). The new files replace the old as
/// `replace_pair` describes.
pub fn renew(server: &str, dir: &Path, rekey: bool) -> CliResult<Renewed> {
    finish_replacement(dir)?;
    let local = Local::load(dir)?;
    let x = local.parsed()?;
    let host_id = host_id_of(&x).ok_or("host.pem carries no host ID")?;
    let name = dns_names(&x)
        .into_iter()
        .next()
        .ok_or("host.pem carries no DNS name")?;
    let key = read_key(&dir.join("host.key"))?;
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
    let (answer, new_key) = if rekey {
        let new_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        // Durable before the server supersedes the old certificate: an answer that
        // arrives is never for a key that is lost.
        write_file_synced(&dir.join(NEW_KEY), new_key.serialize_pem().as_bytes(), true)?;
        let csr = csr_for(&new_key, &name, Some(nonce))?;
        let csr_der = pem_der(csr.as_bytes(), "the CSR")?;
        let message = crate::services::renewal::rekey_message(nonce, &csr_der);
        let signature = rcgen::SigningKey::sign(&key, &message)
            .map_err(|e| format!("signing the proof with host.key: {e}"))?;
        let proof = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
        };
        let answer = c.json(
            "POST",
            "/api/v1/certificates/renew",
            Some(&json!({"host_id": host_id, "csr": csr, "proof": proof})),
        );
        (answer, Some(new_key))
    } else {
        let csr = csr_for(&key, &name, Some(nonce))?;
        let answer = c.json(
            "POST",
            "/api/v1/certificates/renew",
            Some(&json!({"host_id": host_id, "csr": csr})),
        );
        (answer, None)
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(dir.join(NEW_KEY));
            return Err(e);
        }
    };
    let (cert, bundle) = check_issued(
        dir,
        &answer,
        new_key.as_ref().unwrap_or(&key),
        Some(&host_id),
    )?;
    write_file_synced(&dir.join(NEW_CERT), cert.as_bytes(), false)?;
    replace_pair(dir)?;
    let ca_changed = bundle.is_some();
    if let Some(b) = bundle {
        write_file(&dir.join("ca.pem"), b.as_bytes(), false)?;
    }
    Ok(Renewed {
        serial: answer["serial"].as_str().unwrap_or_default().to_string(),
        rekeyed: rekey,
        ca_changed,
    })
}

/// The renew-certificate command.
pub fn renew_certificate(server: &str, dir: &Path, new_key: bool) -> CliResult<()> {
    let r = renew(server, dir, new_key)?;
    println!(
        "Renewed{}: certificate {} stored in {}",
        if r.rekeyed { " with a new key" } else { "" },
        r.serial,
        dir.join("host.pem").display()
    );
    Ok(())
}

const NEW_KEY: &str = "host.key.new";
const NEW_CERT: &str = "host.pem.new";

fn read_key(path: &Path) -> CliResult<rcgen::KeyPair> {
    let pem = String::from_utf8(read(path, "the key of host.pem is needed to renew")?)
        .map_err(|_| format!("{} is not PEM", path.display()))?;
    rcgen::KeyPair::from_pem(&pem).map_err(|e| format!("{} cannot be read: {e}", path.display()))
}

/// Like `write_file`, and flushed to the disk before the rename.
fn write_file_synced(path: &Path, data: &[u8], private: bool) -> CliResult<()> {
    write_file(path, data, private)?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot flush {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Puts a renewed pair in place. Order: host.key.new is written (and flushed) before the
/// request, host.pem.new (flushed) once the answer is checked; then host.key.new becomes
/// host.key and host.pem.new becomes host.pem, and the directory is flushed. A crash
/// between the two renames leaves host.pem.new, which `finish_replacement` puts in place
/// at the next start: host.pem.new is the marker of a complete renewal.
fn replace_pair(dir: &Path) -> CliResult<()> {
    let rename = |from: &str, to: &str| {
        std::fs::rename(dir.join(from), dir.join(to))
            .map_err(|e| format!("cannot replace {}: {e}", dir.join(to).display()))
    };
    if dir.join(NEW_KEY).exists() {
        rename(NEW_KEY, "host.key")?;
    }
    rename(NEW_CERT, "host.pem")?;
    sync_dir(dir);
    Ok(())
}

/// Finishes a replacement a crash interrupted: host.pem.new with the key it is for
/// (host.key.new or host.key) is put in place; a host.key.new without a certificate (the
/// request never answered) is removed. Returns whether anything was done.
pub fn finish_replacement(dir: &Path) -> CliResult<bool> {
    let (new_key, new_cert) = (dir.join(NEW_KEY), dir.join(NEW_CERT));
    if !new_cert.exists() {
        if new_key.exists() {
            std::fs::remove_file(&new_key)
                .map_err(|e| format!("cannot remove {}: {e}", new_key.display()))?;
            return Ok(true);
        }
        return Ok(false);
    }
    let cert_spki = std::fs::read(&new_cert)
        .ok()
        .and_then(|pem| pem_der(&pem, "host.pem.new").ok())
        .and_then(|der| {
            x509_parser::certificate::X509Certificate::from_der(&der)
                .ok()
                .map(|(_, x)| x.public_key().raw.to_vec())
        });
    let key_spki = |p: &Path| {
        read_key(p)
            .ok()
            .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
    };
    let matches_new = new_key.exists() && cert_spki.is_some() && key_spki(&new_key) == cert_spki;
    let matches_old = cert_spki.is_some() && key_spki(&dir.join("host.key")) == cert_spki;
    if matches_new || matches_old {
        if !matches_new {
            let _ = std::fs::remove_file(&new_key);
        }
        replace_pair(dir)?;
    } else {
        let _ = std::fs::remove_file(&new_cert);
        let _ = std::fs::remove_file(&new_key);
    }
    Ok(true)
}

/// Where the CRL of this host's certificate is, below the server: the path of its CRL
/// distribution point (`/crl/7` becomes `/crl/7.pem`), else `/crl.pem`.
fn own_crl_path(dir: &Path) -> String {
    let from_cert = Local::load(dir).ok().and_then(|local| {
        let x = local.parsed().ok()?;
        let uri = x
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::CRLDistributionPoints(points) => points
                    .points
                    .iter()
                    .find_map(|p| match &p.distribution_point {
                        Some(x509_parser::extensions::DistributionPointName::FullName(names)) => {
                            names.iter().find_map(|n| match n {
                                x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                                _ => None,
                            })
                        }
                        _ => None,
                    }),
                _ => None,
            })?;
        let path = uri.splitn(4, '/').nth(3).map(|p| format!("/{p}"))?;
        path.starts_with("/crl/").then(|| format!("{path}.pem"))
    });
    from_cert.unwrap_or_else(|| "/crl.pem".into())
}

/// Downloads the CRL of this host's CA, checks its signature against a CA of the pinned
/// bundle, and stores it.
pub fn get_crl(server: &str, dir: &Path) -> CliResult<()> {
    let (number, revoked) = fetch_crl(server, dir)?;
    println!(
        "CRL number {number} with {revoked} revoked certificate(s) stored in {}",
        dir.join("crl.pem").display()
    );
    Ok(())
}

/// `get_crl` without the printing: the stored CRL's number and how many it revokes.
pub fn fetch_crl(server: &str, dir: &Path) -> CliResult<(String, usize)> {
    let pem = client(server, dir)?
        .as_host(own_host_id(dir))
        .bytes(&own_crl_path(dir))?;
    let crl_der = pem_der(&pem, "the CRL")?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl_der)
        .map_err(|e| format!("the CRL cannot be read: {e}"))?;
    let bundle = pem_ders(&ca(dir)?, "ca.pem")?;
    let issuer = bundle
        .iter()
        .filter_map(|d| parse(d).ok())
        .find(|x| x.subject().as_raw() == crl.issuer().as_raw())
        .ok_or(
            "the CRL is not signed by a CA in ca.pem (none has its issuer's name): not storing it",
        )?;
    crl.verify_signature(issuer.public_key())
        .map_err(|_| "the CRL is not signed by the CA in ca.pem: not storing it")?;
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
    Ok((number.to_string(), crl.iter_revoked_certificates().count()))
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
