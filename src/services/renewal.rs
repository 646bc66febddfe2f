//! Renewal: a host proves it holds the key of its active certificate by sending a CSR for
//! that same key — or a CSR for a new key together with a `proof`, a signature by the
//! current key over `rekey_message` (the nonce and the new CSR) — and proves the request
//! is fresh by carrying a nonce it asked for just before in the CSR's challengePassword
//! attribute (the CSR's signature covers it). The new certificate supersedes the old one
//! and carries exactly the host's approved names.

use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;

use super::audit::{self, Event};
use super::certificates::Provenance;
use super::enroll::{self, Enrolled};
use super::{hosts, mappings, Actor, Ctx};
use crate::db::{self, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::certificate::{Certificate, REVOKED_BY_RENEWAL};
use crate::models::host::Host;
use crate::models::host_mapping::{HostMapping, MappingSource, MappingState, NewHostMapping};
use crate::models::kinds::AuditCategory;
use crate::models::kinds::IssuedVia;
use crate::models::nonce::Nonce;
use crate::models::settings::Settings;
use crate::models::user::Role;
use crate::pki::csr::{self, VerifiedCsr};
use crate::pki::Reason;

/// The `purpose` of renewal nonces in the shared `nonces` table.
pub const NONCE_PURPOSE: &str = "renew";
/// How long a renewal nonce can be used.
pub const NONCE_MINUTES: i64 = 5;
/// Unexpired nonces one host may hold; asking for more drops the oldest, so that
/// unauthenticated requests cannot grow the table without bound.
pub const NONCES_PER_HOST: usize = 8;
/// How long an administrator's "allow an early renewal" stays usable.
pub const EARLY_RENEWAL_HOURS: i64 = 24;
/// The interval an administrator can set, in minutes (0 turns the limit off; at most 7 days).
pub const INTERVAL_MINUTES: (i32, i32) = (0, 10_080);

const FRESH_NONCE: &str =
    "ask for a fresh nonce (POST /api/v1/certificates/renew/nonce) and put it in the CSR's challengePassword attribute";

/// A nonce as handed to the host: the value exists only in this answer.
#[derive(Clone, Debug)]
pub struct IssuedNonce {
    pub value: String,
    pub expires_at: NaiveDateTime,
}

/// The digest a nonce is stored and looked up under.
pub fn nonce_digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn host_id_of(raw: &str) -> Result<String, AppError> {
    if let Some(host_id) = crate::names::host_id(raw) {
        Ok(host_id)
    } else {
        let shown: String = raw.trim().chars().take(80).collect();
        Err(AppError::BadRequest(format!(
            "'{shown}' is not a host ID (a UUID)"
        )))
    }
}

/// A fresh nonce for one host's next renewal: 128 random bits, base64url.
pub fn new_nonce(ctx: &Ctx, host_id: &str) -> Result<IssuedNonce, AppError> {
    use base64::Engine;
    let host_id = host_id_of(host_id)?;
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = nonce_digest(&value);
    let expires_at = ctx.writer.write(move |c| {
        let now = db::now();
        Host::find_by_host_id(c, &host_id)?.ok_or_else(|| {
            AppError::NotFound(format!("there is no host with host ID {host_id}"))
        })?;
        let live = Nonce::live_for_host(c, NONCE_PURPOSE, &host_id, now)?;
        let surplus = (live.len() + 1).saturating_sub(NONCES_PER_HOST);
        for (old, _) in live.iter().take(surplus) {
            Nonce::delete(c, old)?;
        }
        let expires_at = now + Duration::minutes(NONCE_MINUTES);
        Nonce::insert(
            c,
            &Nonce {
                digest,
                purpose: NONCE_PURPOSE.into(),
                host_id: Some(host_id),
                created_at: now,
                expires_at,
            },
        )?;
        Ok(expires_at)
    })?;
    Ok(IssuedNonce { value, expires_at })
}

/// The challengePassword of a CSR that `csr::verify_pem` has already accepted.
fn challenge_password(csr_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).ok()?;
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents).ok()?;
    let found = csr
        .certification_request_info
        .iter_attributes()
        .find_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(p) => Some(p.0.trim().to_string()),
            _ => None,
        });
    found
}

/// What a re-keying renewal's `proof` signs: SHA-256 of "hostca-rekey-v1" || nonce ||
/// the new CSR's DER. The nonce makes it single-use, the CSR binds it to the new key.
pub fn rekey_message(nonce: &str, csr_der: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(REKEY_CONTEXT);
    h.update(nonce.as_bytes());
    h.update(csr_der);
    h.finalize().to_vec()
}

/// The domain separator of `rekey_message`.
pub const REKEY_CONTEXT: &[u8] = b"hostca-rekey-v1";

/// The proof of a re-keying renewal, checked against the active certificate's key.
struct Rekey {
    csr_der: Vec<u8>,
    signature: Option<Vec<u8>>,
}

fn decode_proof(proof: Option<&str>) -> Result<Option<Vec<u8>>, AppError> {
    use base64::Engine;
    let Some(p) = proof.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .map(Some)
        .map_err(|_| {
            AppError::BadRequest(
                "proof: not base64url; send the signature by the current key over SHA-256(\"hostca-rekey-v1\" || nonce || new CSR DER), base64url".into(),
            )
        })
}

/// Renews the certificate of `host_id` for the key of `csr_pem` (the current key, or a new
/// one with `proof` by the current key); `peer` is where the request came from (a refusal
/// is recorded against it, not against the claimed host).
pub fn renew(
    ctx: &Ctx,
    host_id: &str,
    csr_pem: &str,
    proof: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Result<Enrolled, AppError> {
    let shown: String = host_id.trim().chars().take(80).collect();
    let result = (|| {
        let host_id = host_id_of(host_id)?;
        let csr = csr::verify_pem(csr_pem)?;
        let rekey = Rekey {
            csr_der: x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
                .map(|(_, p)| p.contents)
                .unwrap_or_default(),
            signature: decode_proof(proof)?,
        };
        let nonce = challenge_password(csr_pem)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "the CSR carries no nonce, so it could be a recorded request replayed: {FRESH_NONCE}"
                ))
            })?;
        let job_ctx = ctx.clone();
        ctx.writer
            .write(move |c| renew_in(&job_ctx, c, &host_id, &csr, &rekey, &nonce))
    })();
    match result {
        Ok(enrolled) => {
            super::pki::rebuild_crl_soon(ctx);
            Ok(enrolled)
        }
        Err(e) => {
            if e.status().is_client_error() {
                enroll::audit_refusal(ctx, peer, "renew", &shown, "certificate renewal", &e);
            }
            Err(e)
        }
    }
}

fn renew_in(
    ctx: &Ctx,
    c: &mut WriteTx,
    host_id: &str,
    csr: &VerifiedCsr,
    rekey: &Rekey,
    nonce: &str,
) -> Result<Enrolled, AppError> {
    let now = db::now();
    let host = Host::find_by_host_id(c, host_id)?
        .ok_or_else(|| AppError::NotFound(format!("there is no host with host ID {host_id}")))?;
    let active = Certificate::active_for_host(c, host_id, now)?.ok_or_else(|| {
        AppError::Conflict(format!(
            "{} has no active certificate to renew (it was revoked or has expired): ask an administrator for a reissue token",
            host.primary_name
        ))
    })?;
    let active_spki = spki_of(&active.pem).unwrap_or_default();
    let rekeyed = active_spki != csr.spki_der;
    if rekeyed {
        let Some(signature) = &rekey.signature else {
            return Err(AppError::Forbidden(
                "the CSR is not for the key of the host's active certificate: renew with the same key, or prove the current key with \"proof\" (its signature over SHA-256(\"hostca-rekey-v1\" || nonce || new CSR DER), base64url)".into(),
            ));
        };
        if !crate::pki::keys::verify_signature(
            &active_spki,
            &rekey_message(nonce, &rekey.csr_der),
            signature,
        ) {
            return Err(AppError::Forbidden(
                "the proof does not verify with the key of the host's active certificate over this nonce and this CSR: sign SHA-256(\"hostca-rekey-v1\" || nonce || new CSR DER) with the current key (host.key)".into(),
            ));
        }
    }
    take_nonce(c, nonce, host_id, now)?;
    let settings = c.settings()?;
    let allowed_early = host.renewal_allowed_until.is_some_and(|u| u > now);
    if let Some(next) = next_renewal(c, &host, &settings)? {
        if next > now && !allowed_early {
            return Err(AppError::TooManyRequests(format!(
                "{} renewed less than {} minute(s) ago: the next renewal is allowed at {} UTC (or sooner if an administrator allows an early renewal on the host's page)",
                host.primary_name,
                settings.renewal_interval_minutes,
                next.format("%Y-%m-%d %H:%M:%S")
            )));
        }
    }
    if host.renewal_allowed_until.is_some() {
        // The allowance is for one renewal: this one.
        Host::set_renewal_allowed(c, host_id, None)?;
    }
    if !Certificate::revoke(
        c,
        &active.serial,
        Reason::Superseded,
        REVOKED_BY_RENEWAL,
        now,
    )? {
        return Err(AppError::Conflict(format!(
            "certificate {} was renewed or revoked at the same moment by another request: {FRESH_NONCE}, and try again",
            active.serial
        )));
    }
    let names = renewal_names(ctx, c, &host, csr, &settings, now)?;
    let from = Provenance {
        replaces: Some(&active.serial),
        ..Provenance::via(IssuedVia::Renewal)
    };
    let enrolled =
        enroll::issue_and_store(ctx, c, &host, &names, csr, &from, &settings, now, None)?;
    audit::record(
        c,
        &Event::new(
            AuditCategory::Cert,
            "renew",
            &host.primary_name,
            &enrolled.serial,
        )
        .describe(format!(
            "certificate {} renewed as {} for {} (host ID {}){}{}",
            active.serial,
            enrolled.serial,
            host.primary_name,
            host.host_id,
            if rekeyed {
                " with a new key (proved by the old one)"
            } else {
                ""
            },
            if allowed_early {
                ", using the early renewal an administrator allowed"
            } else {
                ""
            }
        )),
    )?;
    Ok(enrolled)
}

/// Consumes the nonce for this host, or says why it cannot be used.
fn take_nonce(
    c: &mut DbConn,
    nonce: &str,
    host_id: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let digest = nonce_digest(nonce);
    if Nonce::consume(c, &digest, NONCE_PURPOSE, Some(host_id), now)? {
        return Ok(());
    }
    Err(match Nonce::find(c, &digest)? {
        Some(n) if n.purpose != NONCE_PURPOSE || n.host_id.as_deref() != Some(host_id) => {
            AppError::Forbidden(format!(
                "the CSR's nonce was not issued for host {host_id}: {FRESH_NONCE}"
            ))
        }
        Some(n) => AppError::Unprocessable(format!(
            "the CSR's nonce expired at {} UTC (nonces last {NONCE_MINUTES} minutes): {FRESH_NONCE}",
            n.expires_at.format("%Y-%m-%d %H:%M:%S")
        )),
        None => AppError::Unprocessable(format!(
            "the CSR's nonce is unknown or was already used (a replayed request?): {FRESH_NONCE}"
        )),
    })
}

/// When the host may renew next without an administrator's allowance; `None` when it may
/// now (it never renewed, or the limit is off).
fn next_renewal(
    c: &mut DbConn,
    host: &Host,
    settings: &Settings,
) -> Result<Option<NaiveDateTime>, AppError> {
    if settings.renewal_interval_minutes <= 0 {
        return Ok(None);
    }
    Ok(Certificate::last_renewal(c, &host.host_id)?
        .map(|last| last + Duration::minutes(i64::from(settings.renewal_interval_minutes))))
}

/// The names the renewed certificate carries: the primary name, then every approved
/// mapping, all read from the database. Names the CSR asks for beyond those never enter
/// the certificate: a new one becomes at most a pending mapping for an administrator to
/// decide on; one that is reserved or already another host's is ignored.
fn renewal_names(
    ctx: &Ctx,
    c: &mut WriteTx,
    host: &Host,
    csr: &VerifiedCsr,
    settings: &Settings,
    now: NaiveDateTime,
) -> Result<Vec<String>, AppError> {
    // Reserved: the server's own names and the administrator's list.
    let policy = mappings::policy(ctx, settings);
    let reserved = |name: &str| policy.is_reserved(name);
    let mut names = vec![host.primary_name.clone()];
    for name in mappings::certifiable(c, &policy, host)? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mappings = HostMapping::for_host(c, &host.host_id)?;
    for n in csr.dns_names.iter().take(20) {
        if mappings.iter().any(|m| &m.name == n)
            || hosts::normalize_hostname(n).as_deref() != Ok(n.as_str())
            || reserved(n)
            || crate::names::kind(n) == crate::names::Kind::Numeric
            || !HostMapping::by_name(c, n)?.is_empty()
        {
            continue;
        }
        HostMapping::insert(
            c,
            &NewHostMapping {
                host_id: &host.host_id,
                name: n,
                state: MappingState::Pending,
                source: MappingSource::Auto,
                created_at: now,
            },
        )?;
        audit::record(
            c,
            &Event::new(AuditCategory::Host, "discover_mapping", &host.primary_name, n).describe(format!(
                "name {n} seen in a renewal request of host {} ({}): pending, a renewal never approves a name",
                host.primary_name, host.host_id
            )),
        )?;
    }
    Ok(names)
}

/// The DER SubjectPublicKeyInfo of a stored PEM certificate.
fn spki_of(cert_pem: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(&pem.contents).ok()?;
    Some(x509.public_key().raw.to_vec())
}

/// An administrator lets a host renew once before its renewal interval is over.
pub fn allow_early_renewal(
    ctx: &Ctx,
    actor: &Actor,
    host_id: &str,
) -> Result<NaiveDateTime, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Host,
        "allow_renewal",
        host_id,
    )?;
    db::write_tx(&mut conn, |c| {
        let host = Host::find_by_host_id(c, host_id)?.ok_or_else(|| {
            AppError::NotFound(format!("there is no host with host ID {host_id}"))
        })?;
        let until = db::now() + Duration::hours(EARLY_RENEWAL_HOURS);
        Host::set_renewal_allowed(c, &host.host_id, Some(until))?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::Host,
                "allow_renewal",
                &actor.username,
                &host.primary_name,
            )
            .describe(format!(
                "one early renewal allowed for {} ({}) until {} UTC",
                host.primary_name,
                host.host_id,
                until.format("%Y-%m-%d %H:%M")
            )),
        )?;
        Ok(until)
    })
}

/// Removes expired nonces; run hourly.
pub fn sweep_nonces(ctx: &Ctx) -> Result<usize, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    db::write_tx(&mut conn, |c| Ok(Nonce::sweep(c, db::now())?))
}

/// The suggested renewal window (RFC 9773), for ACME's renewalInfo and the host agent's
/// renewal-info alike: the last third of the lifetime; now, when the certificate is
/// revoked or its host is marked for renewal (an administrator's allow-renewal, a CA
/// migration's mark-renewal, "renew every host now").
pub fn renewal_window(
    cert: &Certificate,
    host: Option<&Host>,
    now: NaiveDateTime,
) -> (NaiveDateTime, NaiveDateTime) {
    let marked = host.is_some_and(|h| h.renewal_allowed_until.is_some_and(|u| u > now));
    if cert.revoked_at.is_some() || marked {
        return (now - Duration::minutes(1), now + Duration::minutes(10));
    }
    lifetime_window(cert.not_before, cert.not_after)
}

/// The window of a certificate nothing pulled forward: the last third of its lifetime
/// (what a host agent assumes when it cannot reach the server).
pub fn lifetime_window(
    not_before: NaiveDateTime,
    not_after: NaiveDateTime,
) -> (NaiveDateTime, NaiveDateTime) {
    let life = not_after - not_before;
    (not_before + life * 2 / 3, not_after)
}

/// What a host asks before renewing: the suggested window and the state of its certificate.
#[derive(Clone, Debug)]
pub struct RenewalInfo {
    pub serial: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// Seconds until asking again is worthwhile (RFC 9773's Retry-After).
    pub retry_after: u64,
    /// `active`, `revoked` or `expired`: a host whose certificate is not active needs a
    /// reissue token.
    pub status: &'static str,
    pub not_after: NaiveDateTime,
    /// The domain's security level: a host refreshes its CRL at its interval.
    pub security_level: crate::models::kinds::SecurityLevel,
}

/// The renewal window of the certificate with this serial (no session: the serial is in
/// every CRL and TLS handshake anyway, and the answer changes nothing).
pub fn renewal_info(ctx: &Ctx, serial: &str) -> Result<RenewalInfo, AppError> {
    let serial = serial.trim().to_ascii_uppercase();
    if serial.is_empty() || serial.len() > 64 || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::BadRequest(format!(
            "'{}' is not a certificate serial: give it in hexadecimal, as host.pem shows it",
            serial.chars().take(64).collect::<String>()
        )));
    }
    let mut conn = db::get(&ctx.pool)?;
    let cert = Certificate::find_by_serial(&mut conn, &serial)?
        .filter(|c| c.host_id != super::pki::SERVER_HOST_ID)
        .ok_or_else(|| AppError::NotFound(format!("there is no host certificate {serial}")))?;
    let host = Host::find_by_host_id(&mut conn, &cert.host_id)?;
    let settings = Settings::load(&mut conn)?;
    let now = db::now();
    let (start, end) = renewal_window(&cert, host.as_ref(), now);
    let status = if cert.revoked_at.is_some() {
        "revoked"
    } else if cert.not_after <= now {
        "expired"
    } else {
        "active"
    };
    Ok(RenewalInfo {
        serial: cert.serial,
        start,
        end,
        retry_after: super::acme::RENEWAL_INFO_RETRY_SECONDS,
        status,
        not_after: cert.not_after,
        security_level: settings.security_level,
    })
}

/// Marks hosts for one early renewal until `until`: their renewal window opens now and
/// the renewal interval does not hold them back. Returns how many were marked.
pub fn mark_for_renewal(
    conn: &mut DbConn,
    host_ids: &[String],
    until: NaiveDateTime,
) -> Result<usize, AppError> {
    use crate::db::schema::hosts;
    use diesel::prelude::*;
    let mut n = 0;
    // Within every backend's limit on bound parameters.
    for chunk in host_ids.chunks(500) {
        n += diesel::update(hosts::table.filter(hosts::host_id.eq_any(chunk)))
            .set(hosts::renewal_allowed_until.eq(Some(until)))
            .execute(conn)?;
    }
    Ok(n)
}

/// "Renew every host now": every host with an active certificate may renew once, at once
/// (its renewal window says now), for a drill or after a suspected compromise. Agents
/// renew with a new key at their next poll. Audited with its reason.
pub fn renew_all(ctx: &Ctx, actor: &Actor, reason: &str) -> Result<usize, AppError> {
    use crate::db::schema::{certificates, hosts};
    use diesel::prelude::*;
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Host,
        "renew_all",
        "every host",
    )?;
    let reason = super::ca_migration::required_reason(reason, "renewing every host")?;
    let now = db::now();
    let until = now + Duration::hours(EARLY_RENEWAL_HOURS);
    let active = certificates::table
        .filter(certificates::host_id.eq(hosts::host_id))
        .filter(certificates::revoked_at.is_null())
        .filter(certificates::not_after.gt(now));
    let ids: Vec<String> = hosts::table
        .filter(hosts::host_id.ne(super::pki::SERVER_HOST_ID))
        .filter(diesel::dsl::exists(active))
        .select(hosts::host_id)
        .load(&mut *conn)?;
    db::write_tx(&mut conn, |c| {
        let n = mark_for_renewal(c, &ids, until)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::Host,
                "renew_all",
                &actor.username,
                "every host",
            )
            .reason(reason.as_str())
            .describe(format!(
                "{n} host(s) with an active certificate marked to renew now (once, until {} UTC)",
                until.format("%Y-%m-%d %H:%M")
            )),
        )?;
        Ok(n)
    })
}
