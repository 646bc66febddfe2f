//! The server's side of the challenges that prove control of a name: http-01 (RFC 8555
//! §8.3: the key authorization served at `http://NAME/.well-known/acme-challenge/TOKEN`)
//! and tls-alpn-01 (RFC 8737: a certificate for NAME with the SHA-256 of the key
//! authorization in a critical acmeIdentifier extension, served on port 443 to a client
//! offering ALPN `acme-tls/1`). Each returns why it failed, in words for the client.
//!
//! Where to connect can be redirected for tests and for sites that forward the ports:
//! `HOSTCA_ACME_HTTP_PORT` (default 80), `HOSTCA_ACME_TLS_PORT` (default 443) and
//! `HOSTCA_ACME_CHALLENGE_ADDRESS` (an address used instead of the name's own).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::models::kinds::ChallengeType;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks one challenge for `name`: `key_authorization` is `TOKEN.THUMBPRINT`.
pub fn check(
    kind: ChallengeType,
    name: &str,
    token: &str,
    key_authorization: &str,
) -> Result<(), String> {
    match kind {
        ChallengeType::Http01 => http01(name, token, key_authorization),
        ChallengeType::TlsAlpn01 => tls_alpn01(name, key_authorization),
    }
}

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// The first address to connect to for `name` on `port`.
fn address(name: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = std::env::var("HOSTCA_ACME_CHALLENGE_ADDRESS") {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("HOSTCA_ACME_CHALLENGE_ADDRESS ({a}) is not an address"))?;
        return Ok(SocketAddr::new(ip, port));
    }
    (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("{name} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{name} has no address"))
}

fn connect(name: &str, port: u16) -> Result<TcpStream, String> {
    let addr = address(name, port)?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("could not connect to {name} at {addr}: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
    Ok(stream)
}

fn http01(name: &str, token: &str, expected: &str) -> Result<(), String> {
    let mut stream = connect(name, port("HOSTCA_ACME_HTTP_PORT", 80))?;
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: hostca-acme\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("could not send to {name}: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| format!("no answer from {name}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{name} answered something that is not HTTP"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "{name} answered HTTP {status} for the challenge file, not 200"
        ));
    }
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    if body.trim() == expected {
        Ok(())
    } else {
        Err(format!(
            "{name} served {} for the challenge, not the key authorization",
            body.trim().chars().take(100).collect::<String>()
        ))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The acmeIdentifier extension's OID (RFC 8737 §6.1).
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

fn tls_alpn01(name: &str, key_authorization: &str) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name} is not a name TLS can ask for"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut sock = connect(name, port("HOSTCA_ACME_TLS_PORT", 443))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("the TLS handshake with {name} failed: {e}"))?;
    }
    if conn.alpn_protocol() != Some(b"acme-tls/1") {
        return Err(format!("{name} did not negotiate the acme-tls/1 protocol"));
    }
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("{name} sent no certificate"))?;
    check_certificate(cert.as_ref(), name, key_authorization)
}

/// RFC 8737 §3: exactly one subjectAltName, the name; a critical acmeIdentifier holding the
/// SHA-256 of the key authorization.
fn check_certificate(der: &[u8], name: &str, key_authorization: &str) -> Result<(), String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| format!("{name}'s challenge certificate cannot be read"))?;
    let mut names = Vec::new();
    let mut identifier = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    names.push(match n {
                        GeneralName::DNSName(d) => d.to_ascii_lowercase(),
                        other => format!("{other:?}"),
                    });
                }
            }
            _ if ext.oid.to_id_string() == ACME_IDENTIFIER => {
                if !ext.critical {
                    return Err("the acmeIdentifier extension must be critical".into());
                }
                identifier = Some(ext.value);
            }
            _ => {}
        }
    }
    if names != [name.to_string()] {
        return Err(format!(
            "the challenge certificate must name exactly {name}, not {}",
            names.join(", ")
        ));
    }
    let digest = Sha256::digest(key_authorization.as_bytes());
    // The extension's value is an OCTET STRING of the 32-byte digest.
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(&digest);
    match identifier {
        Some(v) if v == expected.as_slice() => Ok(()),
        Some(_) => {
            Err("the acmeIdentifier does not hold this challenge's key authorization".into())
        }
        None => Err("the challenge certificate has no acmeIdentifier extension".into()),
    }
}

/// Accepts any certificate chain: a tls-alpn-01 certificate is self-signed by design, and
/// what matters is checked afterwards (`check_certificate`). The TLS 1.3 handshake
/// signature is still verified, so the server holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered (`tls_alpn01`).
        Err(rustls::Error::General("TLS 1.2 is not used here".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // webpki refuses the critical acmeIdentifier, so the key is taken out by hand.
        use x509_parser::prelude::FromDer;
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
            .map_err(|_| rustls::Error::General("the certificate cannot be read".into()))?;
        let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from(
            parsed.tbs_certificate.subject_pki.raw,
        );
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &spki,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
