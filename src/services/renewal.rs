//! Renewal: a host proves it holds the key of its active certificate by sending a CSR for
//! that same key, and proves the request is fresh by carrying a nonce it asked for just
//! before in the CSR's challengePassword attribute (the CSR's signature covers it). The
//! new certificate supersedes the old one and carries exactly the host's approved names.

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

/// Renews the certificate of `host_id` for the key of `csr_pem`; `peer` is where the
/// request came from (a refusal is recorded against it, not against the claimed host).
pub fn renew(
    ctx: &Ctx,
    host_id: &str,
    csr_pem: &str,
    peer: Option<std::net::IpAddr>,
) -> Result<Enrolled, AppError> {
    let shown: String = host_id.trim().chars().take(80).collect();
    let result = (|| {
        let host_id = host_id_of(host_id)?;
        let csr = csr::verify_pem(csr_pem)?;
        let nonce = challenge_password(csr_pem)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "the CSR carries no nonce, so it could be a recorded request replayed: {FRESH_NONCE}"
                ))
            })?;
        let job_ctx = ctx.clone();
        ctx.writer
            .write(move |c| renew_in(&job_ctx, c, &host_id, &csr, &nonce))
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
    if !same_key(&active.pem, &csr.spki_der) {
        return Err(AppError::Forbidden(
            "the CSR is not for the key of the host's active certificate: renewal needs the same key".into(),
        ));
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
            "certificate {} renewed as {} for {} (host ID {}){}",
            active.serial,
            enrolled.serial,
            host.primary_name,
            host.host_id,
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

fn same_key(cert_pem: &str, spki_der: &[u8]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, x509)) = x509_parser::certificate::X509Certificate::from_der(&pem.contents) else {
        return false;
    };
    x509.public_key().raw == spki_der
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
