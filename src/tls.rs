//! HTTPS for the console and the API: a server certificate issued by hostca's own CA for
//! the configured names, held in memory and renewed before it expires or once revoked.
//! Every one is recorded in the certificates table and the audit trail like a host's.

use std::sync::{Arc, RwLock};

use chrono::{Duration, NaiveDateTime};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::db::Pool;
use crate::error::AppError;
use crate::pki::issue::{issue, IssuedCert, LeafRequest};
use crate::services::pki::PkiState;
use crate::services::Ctx;

pub const VALIDITY_DAYS: i64 = 30;
/// Renewed when less than this much validity is left.
pub const RENEW_BEFORE_DAYS: i64 = 10;

/// The names the server certificate is for by default: the machine's host name and localhost.
pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !names.contains(&h) {
            names.insert(0, h);
        }
    }
    names
}

struct Current {
    key: Arc<CertifiedKey>,
    not_after: NaiveDateTime,
    serial: String,
    /// The CA that signed it: a CA migration's activation makes the server re-issue.
    issuer_id: i64,
}

/// Hands the current certificate to every TLS handshake; `renew_if_due` replaces it.
pub struct ServerCert {
    names: Vec<String>,
    pool: Pool,
    public_url: String,
    current: RwLock<Current>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

fn make(
    pki: &PkiState,
    names: &[String],
    public_url: &str,
    now: NaiveDateTime,
) -> Result<(Current, IssuedCert), AppError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AppError::internal_from("TLS key", e))?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let issuers = pki.issuers();
    let cert = issue(
        issuers.signing(),
        &LeafRequest {
            names,
            host_id: None,
            spki_der: &spki,
            validity_days: VALIDITY_DAYS,
            validity_minutes: None,
            now,
            public_url,
        },
    )?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing =
        any_supported_type(&private).map_err(|e| AppError::internal_from("TLS key", e))?;
    let mut chain = vec![CertificateDer::from(cert.der.clone())];
    chain.extend(
        issuers
            .chain(cert.issuer_id)
            .into_iter()
            .map(|ca| CertificateDer::from(ca.cert_der.clone())),
    );
    log::info!(
        "TLS certificate {} issued for {} until {} UTC",
        cert.serial,
        names.join(", "),
        cert.not_after
    );
    let current = Current {
        key: Arc::new(CertifiedKey::new(chain, signing)),
        not_after: cert.not_after,
        serial: cert.serial.clone(),
        issuer_id: cert.issuer_id,
    };
    Ok((current, cert))
}

impl ServerCert {
    pub fn new(ctx: &Ctx, names: Vec<String>) -> Result<ServerCert, AppError> {
        if names.is_empty() {
            return Err(AppError::BadRequest(
                "--tls needs at least one --tls-name".into(),
            ));
        }
        for n in &names {
            if n.parse::<std::net::IpAddr>().is_err() {
                crate::services::hosts::normalize_hostname(n)
                    .map_err(|e| AppError::BadRequest(format!("--tls-name: {e}")))?;
            }
        }
        let public_url = ctx.site.public_url.clone();
        let (current, cert) = make(&ctx.pki, &names, &public_url, crate::db::now())?;
        crate::services::pki::record_server_certificate(&ctx.pool, &cert, &names, None)?;
        Ok(ServerCert {
            names,
            pool: ctx.pool.clone(),
            public_url,
            current: RwLock::new(current),
        })
    }

    /// Issues a fresh certificate when the current one nears its end, has been revoked,
    /// or comes from a CA that no longer signs.
    pub fn renew_if_due(&self, pki: &PkiState) -> Result<bool, AppError> {
        let now = crate::db::now();
        let signing = pki.signing().id;
        let (ending, serial) = self
            .current
            .read()
            .map(|c| {
                (
                    c.not_after - now < Duration::days(RENEW_BEFORE_DAYS) || c.issuer_id != signing,
                    c.serial.clone(),
                )
            })
            .unwrap_or((true, String::new()));
        if !ending && !crate::services::pki::is_revoked(&self.pool, &serial)? {
            return Ok(false);
        }
        let (fresh, cert) = make(pki, &self.names, &self.public_url, now)?;
        crate::services::pki::record_server_certificate(
            &self.pool,
            &cert,
            &self.names,
            Some(&serial).filter(|s| !s.is_empty()).map(String::as_str),
        )?;
        if let Ok(mut slot) = self.current.write() {
            *slot = fresh;
        }
        Ok(true)
    }

    /// The serial number of the certificate handed out now.
    pub fn serial(&self) -> Option<String> {
        self.current.read().ok().map(|c| c.serial.clone())
    }

    pub fn not_after(&self) -> Option<NaiveDateTime> {
        self.current.read().ok().map(|c| c.not_after)
    }

    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, AppError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| AppError::internal_from("TLS", e))?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.key.clone())
    }
}
