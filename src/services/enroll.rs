//! Hosts get certificates: enrollment (with a token or by the security level) and renewal.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::{hosts, mappings, tokens, Ctx};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::certificate::Certificate;
use crate::models::host::Host;
use crate::models::host_mapping::{HostMapping, MappingState};
use crate::models::kinds::AuditCategory;
use crate::models::settings::SecurityLevel;
use crate::models::settings::Settings;
use crate::models::token::{Token, TokenKind, TokenState};
use crate::names::{self, Kind, NamePolicy};
use crate::pki::csr::{self, VerifiedCsr};
use crate::pki::issue::{self, IssuedCert, LeafRequest};
use crate::pki::Reason;
use crate::token_value;

pub struct EnrollRequest {
    pub hostname: String,
    pub csr: String,
    pub token: Option<String>,
    /// The address the request came from (for security level medium).
    pub peer: Option<IpAddr>,
}

#[derive(Clone, Debug)]
pub struct Enrolled {
    pub host_id: String,
    pub serial: String,
    pub certificate: String,
    pub ca_certificate: String,
    pub not_after: NaiveDateTime,
}

/// The outcome inside the transaction: the certificate and whether older ones were revoked.
struct Issued {
    enrolled: Enrolled,
    revoked_any: bool,
}

/// A request either gets its certificate, or is refused with something worth keeping
/// (a newly discovered mapping, and the refusal's own audit event) committed all the same.
enum Step {
    Issued(Issued),
    Refused(AppError),
}

/// Counts a refusal (aggregated per source and minute, see `audit::refused`).
fn refusal(
    ctx: &Ctx,
    peer: Option<IpAddr>,
    target: &str,
    e: AppError,
) -> Result<AppError, AppError> {
    audit::refused(
        ctx,
        peer,
        AuditCategory::Cert,
        "request",
        target,
        format!("certificate request refused ({}): {e}", e.status().as_u16()),
    );
    Ok(e)
}

/// A certificate signed before its request reaches the writer, so that the signing runs
/// in parallel on the request's own thread, for the common case: a new host whose
/// certificate carries only the requested name. The writer uses it only if its own
/// decision comes out exactly so (the same host ID, names and validity); otherwise it
/// signs again inside the transaction and this one is dropped, never stored or sent.
pub(super) struct Presigned {
    host_id: String,
    names: Vec<String>,
    validity_days: i64,
    cert: IssuedCert,
}

fn presign(ctx: &Ctx, hostname: &str, csr: &VerifiedCsr) -> Option<Presigned> {
    let host_id = hosts::new_host_id();
    let names = vec![hostname.to_string()];
    let validity_days = ctx.pki.validity_days.load(Ordering::Relaxed);
    let cert = issue::issue(
        &ctx.pki.ca,
        &LeafRequest {
            names: &names,
            host_id: Some(&host_id),
            spki_der: &csr.spki_der,
            validity_days,
            now: db::now(),
            public_url: &ctx.site.public_url,
        },
    )
    .ok()?;
    Some(Presigned {
        host_id,
        names,
        validity_days,
        cert,
    })
}

const NEEDS_REISSUE: &str = "renew it while its certificate is active (POST /api/v1/certificates/renew), or ask an administrator for a reissue token";

pub fn enroll(ctx: &Ctx, req: &EnrollRequest) -> Result<Enrolled, AppError> {
    let shown: String = req.hostname.trim().chars().take(80).collect();
    let result = (|| {
        let hostname = hosts::normalize_hostname(&req.hostname).map_err(AppError::BadRequest)?;
        let csr = csr::verify_pem(&req.csr)?;
        let presigned = presign(ctx, &hostname, &csr);
        let token = req
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let resolved = match (&token, req.peer) {
            (None, Some(peer)) => lookup_if_medium(ctx, &hostname, peer)?,
            _ => None,
        };
        let from = Origin {
            peer: req.peer,
            resolved,
        };
        let job_ctx = ctx.clone();
        ctx.writer.write(move |c| {
            enroll_in(
                &job_ctx,
                c,
                &hostname,
                &csr,
                token.as_deref(),
                from,
                presigned,
            )
        })
    })();
    finish(ctx, result, "request", &shown, req.peer)
}

/// Records a request that was refused before it could be read (a malformed body).
pub fn refuse(ctx: &Ctx, peer: Option<IpAddr>, action: &'static str, error: AppError) -> AppError {
    audit_refusal(ctx, peer, action, "unknown", "certificate request", &error);
    error
}

/// Audits a refused request for a certificate (`what`: "certificate request", "certificate
/// renewal"), aggregated per source and minute like every unauthenticated refusal.
pub(super) fn audit_refusal(
    ctx: &Ctx,
    peer: Option<IpAddr>,
    action: &'static str,
    target: &str,
    what: &str,
    error: &AppError,
) {
    audit::refused(
        ctx,
        peer,
        AuditCategory::Cert,
        action,
        target,
        format!("{what} refused ({}): {error}", error.status().as_u16()),
    );
}

/// Audits a refusal in its own transaction, or rebuilds the CRL after a supersession.
fn finish(
    ctx: &Ctx,
    result: Result<Step, AppError>,
    action: &'static str,
    target: &str,
    peer: Option<IpAddr>,
) -> Result<Enrolled, AppError> {
    match result {
        Ok(Step::Issued(issued)) => {
            if issued.revoked_any {
                super::pki::rebuild_crl_after_revocation(ctx);
            }
            Ok(issued.enrolled)
        }
        Ok(Step::Refused(e)) => Err(e),
        Err(e) => {
            if e.status().is_client_error() {
                audit_refusal(ctx, peer, action, target, "certificate request", &e);
            }
            Err(e)
        }
    }
}

/// At security level medium, whether the name resolves to the requesting address, asked
/// here on the request's own thread and never by the writer: a resolver that does not
/// answer delays this request alone, by `names::LOOKUP_TIMEOUT` at most. `None` when the
/// level is not medium (the writer then never consults it).
/// Where a request came from: its address, and whether its name resolved to it (looked
/// up before the writer, at level medium only).
struct Origin {
    peer: Option<IpAddr>,
    resolved: Option<bool>,
}

fn lookup_if_medium(ctx: &Ctx, hostname: &str, peer: IpAddr) -> Result<Option<bool>, AppError> {
    let level = Settings::load(&mut *db::get(&ctx.pool)?)?.security_level;
    if level != SecurityLevel::Medium {
        return Ok(None);
    }
    Ok(Some(
        names::kind(hostname) == Kind::Dns && ctx.site.resolver.resolves_to(hostname, peer),
    ))
}

/// Refuses, for a new host, a primary name the policy does not allow.
fn check_new_name(policy: &NamePolicy, hostname: &str) -> Result<(), AppError> {
    match policy.refuse_requested(hostname, false) {
        Some(why) => Err(AppError::Unprocessable(why)),
        None => Ok(()),
    }
}

fn has_had_certificate(c: &mut DbConn, host: &Host) -> Result<bool, AppError> {
    Ok(Certificate::host_has_any(c, &host.host_id)?)
}

fn enroll_in(
    ctx: &Ctx,
    c: &mut DbConn,
    hostname: &str,
    csr: &VerifiedCsr,
    token: Option<&str>,
    from: Origin,
    presigned: Option<Presigned>,
) -> Result<Step, AppError> {
    let Origin { peer, resolved } = from;
    let now = db::now();
    let new_host_id = presigned
        .as_ref()
        .map_or_else(hosts::new_host_id, |p| p.host_id.clone());
    let settings = Settings::load(c)?;
    let policy = mappings::policy(ctx, &settings);
    // Reserved names, addresses and all-digit names are refused whoever asks and however:
    // before anything else, so that nothing is written or consumed for them.
    if let Some(why) = policy.refuse_requested(hostname, true) {
        return Err(AppError::Unprocessable(why));
    }
    let known = hosts::find_by_name(c, hostname)?;
    let mut new_host = false;
    let (host, how, token_name, supersede) = match token {
        Some(value) => {
            let canonical = token_value::canonical(value).ok_or_else(|| {
                AppError::Unprocessable(
                    "the token is not a valid token value (24 characters like K7QF-3MZT-...)"
                        .into(),
                )
            })?;
            let found = Token::find_by_digest(c, &ctx.token_key.digest(&canonical))?;
            match found {
                Some(t) if t.kind == TokenKind::Reissue => {
                    let owner = match &t.host_id {
                        Some(id) => Host::find_by_host_id(c, id)?,
                        None => None,
                    }
                    .ok_or_else(|| {
                        AppError::Unprocessable(format!(
                            "the host of reissue token {} no longer exists",
                            t.name
                        ))
                    })?;
                    let host = match known {
                        Some(h) if h.host_id == owner.host_id => h,
                        Some(_) => {
                            return Err(AppError::Unprocessable(format!(
                                "the reissue token {} belongs to another host: {hostname} is an approved name of a different host",
                                t.name
                            )))
                        }
                        None => {
                            // An expired or used-up token is refused before the new name
                            // is recorded: the conditional update refuses it (writing
                            // nothing) with the usual message.
                            if t.state(now) != TokenState::Active {
                                tokens::consume_known(c, &t, hostname)?;
                            }
                            // A renamed host: its new name becomes one of its mappings.
                            let state = mappings::discover_with(
                                c,
                                &owner,
                                hostname,
                                &policy,
                                settings.auto_map_host_names,
                                hostname,
                                now,
                            )?;
                            if state != Some(MappingState::Approved) {
                                let state = state.map_or("ignored", MappingState::key);
                                return Ok(Step::Refused(refusal(
                                    ctx,
                                    peer,
                                    hostname,
                                    AppError::Conflict(format!(
                                        "{hostname} is now a mapping of host {} ({}) waiting for approval ({state}); once an administrator approves it, use the reissue token again",
                                        owner.primary_name, owner.host_id
                                    )),
                                )?));
                            }
                            owner
                        }
                    };
                    tokens::consume_known(c, &t, hostname)?;
                    (
                        host,
                        format!("reissue token {}", t.name),
                        Some(t.name),
                        true,
                    )
                }
                _ => {
                    if let Some(h) = &known {
                        if has_had_certificate(c, h)? {
                            return Err(AppError::Conflict(format!(
                                "{hostname} (host ID {}) has already been issued a certificate, so an authorization token cannot give it another: {NEEDS_REISSUE}",
                                h.host_id
                            )));
                        }
                    }
                    if known.is_none() {
                        check_new_name(&policy, hostname)?;
                    }
                    let t = match &found {
                        Some(t) => tokens::consume_known(c, t, hostname)?,
                        None => tokens::consume_in(ctx, c, value, hostname)?,
                    };
                    let host = match known {
                        Some(h) => h,
                        None => {
                            new_host = true;
                            hosts::create_row(c, &new_host_id, hostname, "enrollment", now)?
                        }
                    };
                    (
                        host,
                        format!("authorization token {}", t.name),
                        Some(t.name),
                        false,
                    )
                }
            }
        }
        None => {
            let window_open = |h: &Host| h.auto_reissue_open(now);
            match known {
                Some(h) if window_open(&h) => {
                    Host::set_auto_reissue(c, &h.host_id, None)?;
                    (h, "the host's auto-reissue window (now closed)".to_string(), None, true)
                }
                Some(h) if has_had_certificate(c, &h)? => {
                    return Err(AppError::Conflict(format!(
                        "{hostname} (host ID {}) has already been issued a certificate: {NEEDS_REISSUE}",
                        h.host_id
                    )))
                }
                known => match settings.security_level {
                    SecurityLevel::VeryHigh => {
                        return Err(AppError::Unauthorized(
                            "the security level is very high: every certificate request needs a token".into(),
                        ))
                    }
                    SecurityLevel::Medium => match known {
                        Some(h) => (h, "security level medium (known host)".to_string(), None, false),
                        None if resolved == Some(true) => (
                            {
                            check_new_name(&policy, hostname)?;
                            new_host = true;
                            hosts::create_row(c, &new_host_id, hostname, "enrollment", now)?
                        },
                            "security level medium (name resolves to the requesting address)".to_string(),
                            None,
                            false,
                        ),
                        None => {
                            return Err(AppError::Unauthorized(format!(
                                "a token is required: {hostname} is not a known host and does not resolve to the address this request came from"
                            )))
                        }
                    },
                    SecurityLevel::High => match known {
                        Some(h) => (h, "security level high (known host)".to_string(), None, false),
                        None => {
                            return Err(AppError::Unauthorized(format!(
                                "a token is required: {hostname} is not a known host at security level high"
                            )))
                        }
                    },
                },
            }
        }
    };
    let mut revoked_any = false;
    if supersede {
        for serial in Certificate::unrevoked_serials(c, &host.host_id)? {
            revoked_any |= Certificate::revoke(c, &serial, Reason::Superseded, "reissue", now)?;
        }
    }
    let (names, ignored) =
        enrollment_names(c, &policy, &host, new_host, hostname, csr, &settings, now)?;
    let enrolled = issue_and_store(
        ctx,
        c,
        &host,
        &names,
        csr,
        token_name.as_deref(),
        &settings,
        now,
        presigned,
    )?;
    audit::record(
        c,
        &Event::new(AuditCategory::Cert, "issue", hostname, &enrolled.serial).describe(
            format!(
                "certificate {} issued to {hostname} (host ID {}{}) via {how}",
                enrolled.serial,
                host.host_id,
                if new_host {
                    ", a new host registered with it"
                } else {
                    ""
                }
            ) + &ignored_text(&ignored),
        ),
    )?;
    Ok(Step::Issued(Issued {
        enrolled,
        revoked_any,
    }))
}

/// The names a certificate carries: the requested one first, then the host's other
/// approved mappings (an administrator allowed each: an approved address becomes an IP
/// SAN), then any other name the CSR asks for that is discovered now and approved at once
/// under the name policy. Pending and rejected names are never put in a certificate;
/// reserved names and all-digit names in the CSR are returned apart, to be audited.
#[allow(clippy::too_many_arguments)]
fn enrollment_names(
    c: &mut DbConn,
    policy: &NamePolicy,
    host: &Host,
    new_host: bool,
    requested: &str,
    csr: &VerifiedCsr,
    settings: &Settings,
    now: NaiveDateTime,
) -> Result<(Vec<String>, Vec<String>), AppError> {
    let mut names = vec![requested.to_string()];
    let mut ignored = Vec::new();
    // A host registered just now has no mapping but its primary name: spare the query.
    if !new_host {
        for m in HostMapping::for_host(c, &host.host_id)? {
            if m.state == MappingState::Approved
                && !names.contains(&m.name)
                && !policy.is_reserved(&m.name)
                && names::kind(&m.name) != Kind::Numeric
            {
                names.push(m.name);
            }
        }
    }
    for n in csr.dns_names.iter().take(20) {
        if names.contains(n) || ignored.contains(n) {
            continue;
        }
        if hosts::normalize_hostname(n).as_deref() != Ok(n.as_str()) {
            continue;
        }
        let state = mappings::discover_with(
            c,
            host,
            n,
            policy,
            settings.auto_map_host_names,
            requested,
            now,
        )?;
        match state {
            Some(MappingState::Approved) => names.push(n.clone()),
            None => ignored.push(n.clone()),
            Some(_) => {}
        }
    }
    Ok((names, ignored))
}

fn ignored_text(ignored: &[String]) -> String {
    if ignored.is_empty() {
        return String::new();
    }
    format!(
        "; not certified, reserved or not a host name: {}",
        ignored.join(", ")
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn issue_and_store(
    ctx: &Ctx,
    c: &mut DbConn,
    host: &Host,
    names: &[String],
    csr: &VerifiedCsr,
    token_name: Option<&str>,
    settings: &Settings,
    now: NaiveDateTime,
    presigned: Option<Presigned>,
) -> Result<Enrolled, AppError> {
    let validity_days = super::pki::validity_days(settings.certificate_validity_days);
    ctx.pki
        .validity_days
        .store(validity_days, Ordering::Relaxed);
    let fits = |p: &Presigned| {
        p.host_id == host.host_id && p.names == names && p.validity_days == validity_days
    };
    let cert = match presigned.filter(fits) {
        Some(p) => p.cert,
        None => issue::issue(
            &ctx.pki.ca,
            &LeafRequest {
                names,
                host_id: Some(&host.host_id),
                spki_der: &csr.spki_der,
                validity_days,
                now,
                public_url: &ctx.site.public_url,
            },
        )?,
    };
    super::certificates::store_issued(c, &cert, &host.host_id, names, token_name, now)?;
    Ok(Enrolled {
        host_id: host.host_id.clone(),
        serial: cert.serial,
        certificate: cert.pem,
        ca_certificate: ctx.pki.ca.cert_pem.clone(),
        not_after: cert.not_after,
    })
}
