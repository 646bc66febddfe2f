//! Hosts get their first certificate, or a reissued one: enrollment with a token, by the
//! auto-reissue window or by the security level. Renewal is in `renewal.rs`.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::certificates::Provenance;
use super::{hosts, mappings, tokens, Ctx};
use crate::db::{self, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::acme::{AcmeAccount, AcmeBinding, AcmeOrder, AcmeOrderStatus};
use crate::models::certificate::Certificate;
use crate::models::host::Host;
use crate::models::host_mapping::MappingState;
use crate::models::kinds::{AuditCategory, IssuedVia};
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
    /// The CA certificates between the certificate and the root (PEM): what a server
    /// sends after its own certificate.
    pub chain: String,
    /// The trust bundle: every CA certificate hosts should trust now.
    pub ca_certificate: String,
    pub not_after: NaiveDateTime,
    /// The CA that signed it.
    pub issuer_id: i64,
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
        &ctx.pki.signing(),
        &LeafRequest {
            names: &names,
            host_id: Some(&host_id),
            spki_der: &csr.spki_der,
            validity_days,
            validity_minutes: ctx.pki.leaf_minutes(),
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
        let new_host_id = presigned
            .as_ref()
            .map_or_else(hosts::new_host_id, |p| p.host_id.clone());
        ctx.writer.write(move |c| {
            let request = Request {
                hostname: &hostname,
                csr: &csr,
                token: token.as_deref(),
                origin: from,
                new_host_id,
            };
            enroll_in(&job_ctx, c, &request, presigned)
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

/// Where a request came from: its address, and whether its name resolved to it (looked
/// up before the writer, at level medium only).
struct Origin {
    peer: Option<IpAddr>,
    resolved: Option<bool>,
}

/// At security level medium, whether the name resolves to the requesting address, asked
/// here on the request's own thread and never by the writer: a resolver that does not
/// answer delays this request alone, by `names::LOOKUP_TIMEOUT` at most. `None` when the
/// level is not medium (the writer then never consults it).
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

/// A certificate request on its way through the writer's transaction.
struct Request<'a> {
    hostname: &'a str,
    csr: &'a VerifiedCsr,
    token: Option<&'a str>,
    origin: Origin,
    /// The host ID a new host gets (the pre-signed certificate's, if there is one).
    new_host_id: String,
}

/// The steps of an enrollment, in order, inside the writer's transaction. A step that
/// refuses returns before the next one runs, so a refused request consumes nothing; the
/// one exception is a renamed host's new name, recorded as a pending mapping for an
/// administrator and kept (`Step::Refused`). Renewal (`renewal.rs`) authorizes its own way
/// (nonce, same key, interval) and shares the names (`mappings::certifiable`) and
/// `issue_and_store`.
fn enroll_in(
    ctx: &Ctx,
    c: &mut WriteTx,
    req: &Request,
    presigned: Option<Presigned>,
) -> Result<Step, AppError> {
    let settings = c.settings()?;
    let rules = Rules {
        policy: mappings::policy(ctx, &settings),
        settings,
        now: db::now(),
    };
    let now = rules.now;
    refuse_forbidden_name(&rules.policy, req.hostname)?;
    let grant = match authorize(ctx, c, req, &rules)? {
        Ok(grant) => grant,
        Err(kept) => return Ok(Step::Refused(kept)),
    };
    let admitted = consume(ctx, c, grant, req, now)?;
    let revoked_any = if admitted.supersedes {
        supersede(c, &admitted.host, now)?
    } else {
        false
    };
    let names = enrollment_names(c, &rules, &admitted, req)?;
    let enrolled = issue_and_store(
        ctx,
        c,
        &admitted.host,
        &names.certified,
        req.csr,
        &Provenance {
            token_name: admitted.token_name(),
            ..Provenance::via(IssuedVia::Enrollment)
        },
        &rules.settings,
        now,
        presigned,
    )?;
    audit_issued(c, req.hostname, &admitted, &enrolled, &names.ignored)?;
    Ok(Step::Issued(Issued {
        enrolled,
        revoked_any,
    }))
}

/// What every step reads: the settings, the name policy made of them, and the time.
struct Rules {
    settings: Settings,
    policy: NamePolicy,
    now: NaiveDateTime,
}

/// Reserved names, addresses and all-digit names are refused whoever asks and however:
/// before anything else, so that nothing is written or consumed for them.
fn refuse_forbidden_name(policy: &NamePolicy, hostname: &str) -> Result<(), AppError> {
    match policy.refuse_requested(hostname, true) {
        Some(why) => Err(AppError::Unprocessable(why)),
        None => Ok(()),
    }
}

/// What lets a request in, decided before anything is consumed.
enum Grant {
    /// A reissue token for this host (the token is used at `consume`).
    Reissue { token: Token, host: Host },
    /// An authorization token (`None`: no token has this value; `consume` says so), for
    /// a known host that never had a certificate or for a new one.
    Authorization {
        token: Option<Token>,
        value: String,
        host: Option<Host>,
    },
    /// The host's auto-reissue window, closed at `consume`.
    AutoReissue(Host),
    /// The security level lets the host in without a token (`None`: a new host).
    Level {
        host: Option<Host>,
        why: &'static str,
    },
}

/// Who may have the certificate: the token, the host's auto-reissue window, or the
/// security level. `Ok(Err(e))` is a refusal whose record (a renamed host's pending name)
/// must be kept.
fn authorize(
    ctx: &Ctx,
    c: &mut WriteTx,
    req: &Request,
    rules: &Rules,
) -> Result<Result<Grant, AppError>, AppError> {
    let hostname = req.hostname;
    let known = hosts::find_by_name(c, hostname)?;
    let Some(value) = req.token else {
        return authorize_without_token(c, known, req, rules).map(Ok);
    };
    let canonical = token_value::canonical(value).ok_or_else(|| {
        AppError::Unprocessable(
            "the token is not a valid token value (24 characters like K7QF-3MZT-...)".into(),
        )
    })?;
    let found = Token::find_by_digest(c, &ctx.token_key.digest(&canonical))?;
    match found {
        Some(t) if t.kind == TokenKind::Reissue => authorize_reissue(ctx, c, t, known, req, rules),
        found => {
            if let Some(h) = &known {
                if has_had_certificate(c, h)? {
                    return Err(AppError::Conflict(format!(
                        "{hostname} (host ID {}) has already been issued a certificate, so an authorization token cannot give it another: {NEEDS_REISSUE}",
                        h.host_id
                    )));
                }
            } else {
                check_new_name(&rules.policy, hostname)?;
            }
            Ok(Ok(Grant::Authorization {
                token: found,
                value: value.to_string(),
                host: known,
            }))
        }
    }
}

/// A reissue token names its host; a new name for that host (a renamed host) becomes one
/// of its mappings first, and only an approved one gets the certificate.
fn authorize_reissue(
    ctx: &Ctx,
    c: &mut WriteTx,
    token: Token,
    known: Option<Host>,
    req: &Request,
    rules: &Rules,
) -> Result<Result<Grant, AppError>, AppError> {
    let (hostname, now) = (req.hostname, rules.now);
    let owner = match &token.host_id {
        Some(id) => Host::find_by_host_id(c, id)?,
        None => None,
    }
    .ok_or_else(|| {
        AppError::Unprocessable(format!(
            "the host of reissue token {} no longer exists",
            token.name
        ))
    })?;
    match known {
        Some(h) if h.host_id == owner.host_id => Ok(Ok(Grant::Reissue { token, host: h })),
        Some(_) => Err(AppError::Unprocessable(format!(
            "the reissue token {} belongs to another host: {hostname} is an approved name of a different host",
            token.name
        ))),
        None => {
            // An expired or used-up token is refused before the new name is recorded: the
            // conditional update refuses it (writing nothing) with the usual message.
            if token.state(now) != TokenState::Active {
                tokens::consume_known(c, &token, hostname)?;
            }
            let state = mappings::discover_with(
                c,
                &owner,
                hostname,
                &rules.policy,
                rules.settings.auto_map_host_names,
                hostname,
                now,
            )?;
            if state != Some(MappingState::Approved) {
                return Ok(Err(refusal(
                    ctx,
                    req.origin.peer,
                    hostname,
                    AppError::Conflict(format!(
                        "{hostname} is now a mapping of host {} ({}) waiting for approval ({}); once an administrator approves it, use the reissue token again",
                        owner.primary_name,
                        owner.host_id,
                        state.map_or("not recorded", |s| s.key())
                    )),
                )?));
            }
            Ok(Ok(Grant::Reissue { token, host: owner }))
        }
    }
}

/// Without a token: the host's open auto-reissue window, or what the security level allows
/// (very high: nothing; high: known hosts; medium: known hosts and names that resolve to
/// the requesting address).
fn authorize_without_token(
    c: &mut DbConn,
    known: Option<Host>,
    req: &Request,
    rules: &Rules,
) -> Result<Grant, AppError> {
    let hostname = req.hostname;
    if let Some(h) = &known {
        if h.auto_reissue_open(rules.now) {
            return Ok(Grant::AutoReissue(known.expect("checked")));
        }
        if has_had_certificate(c, h)? {
            return Err(AppError::Conflict(format!(
                "{hostname} (host ID {}) has already been issued a certificate: {NEEDS_REISSUE}",
                h.host_id
            )));
        }
    }
    match (rules.settings.security_level, known) {
        (SecurityLevel::VeryHigh, _) => Err(AppError::Unauthorized(
            "the security level is very high: every certificate request needs a token".into(),
        )),
        (SecurityLevel::Medium, Some(h)) => Ok(Grant::Level {
            host: Some(h),
            why: "security level medium (known host)",
        }),
        (SecurityLevel::Medium, None) if req.origin.resolved == Some(true) => {
            check_new_name(&rules.policy, hostname)?;
            Ok(Grant::Level {
                host: None,
                why: "security level medium (name resolves to the requesting address)",
            })
        }
        (SecurityLevel::Medium, None) => Err(AppError::Unauthorized(format!(
            "a token is required: {hostname} is not a known host and does not resolve to the address this request came from"
        ))),
        (_, Some(h)) => Ok(Grant::Level {
            host: Some(h),
            why: "security level high (known host)",
        }),
        (_, None) => Err(AppError::Unauthorized(format!(
            "a token is required: {hostname} is not a known host at security level high"
        ))),
    }
}

/// A request let in, after its grant was used: the host (registered now if it is new),
/// what let it in, and whether its earlier certificates give way.
struct Admitted {
    host: Host,
    new_host: bool,
    via: String,
    token: Option<String>,
    supersedes: bool,
}

impl Admitted {
    fn token_name(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// Uses what let the request in: one use of the token (the conditional update decides,
/// race-safe), the auto-reissue window (closed), and registers a new host.
fn consume(
    ctx: &Ctx,
    c: &mut DbConn,
    grant: Grant,
    req: &Request,
    now: NaiveDateTime,
) -> Result<Admitted, AppError> {
    let hostname = req.hostname;
    let register = |c: &mut DbConn, host: Option<Host>| -> Result<(Host, bool), AppError> {
        match host {
            Some(h) => Ok((h, false)),
            None => Ok((
                hosts::create_row(c, &req.new_host_id, hostname, "enrollment", now)?,
                true,
            )),
        }
    };
    Ok(match grant {
        Grant::Reissue { token, host } => {
            let t = tokens::consume_known(c, &token, hostname)?;
            Admitted {
                host,
                new_host: false,
                via: format!("reissue token {}", t.name),
                token: Some(t.name),
                supersedes: true,
            }
        }
        Grant::Authorization { token, value, host } => {
            let t = match &token {
                Some(t) => tokens::consume_known(c, t, hostname)?,
                None => tokens::consume_in(ctx, c, &value, hostname)?,
            };
            let (host, new_host) = register(c, host)?;
            Admitted {
                host,
                new_host,
                via: format!("authorization token {}", t.name),
                token: Some(t.name),
                supersedes: false,
            }
        }
        Grant::AutoReissue(host) => {
            Host::set_auto_reissue(c, &host.host_id, None)?;
            Admitted {
                host,
                new_host: false,
                via: "the host's auto-reissue window (now closed)".into(),
                token: None,
                supersedes: true,
            }
        }
        Grant::Level { host, why } => {
            let (host, new_host) = register(c, host)?;
            Admitted {
                host,
                new_host,
                via: why.into(),
                token: None,
                supersedes: false,
            }
        }
    })
}

/// A certificate an ACME order asks for at finalize: its names were authorized when the
/// order was placed (or by challenges), and are checked again here.
pub struct AccountIssue {
    pub account: AcmeAccount,
    pub order_id: String,
    pub names: Vec<String>,
    pub csr: VerifiedCsr,
    /// The serial of the certificate the order replaces.
    pub replaces: Option<String>,
}

/// Issues an ACME order's certificate by the enrollment steps, in one transaction: the
/// order moves from ready to processing (so that two finalize requests cannot both issue),
/// the names must still be the host's (an account without a token registers its host
/// now, as a token-bound one did at its first order), earlier certificates give way, the
/// certificate is issued, stored and audited, and the order records it.
/// It runs on the group writer (concurrent finalizes commit together): the caller must
/// not hold a pooled connection while it waits, since the writer needs one.
pub fn issue_for_account(ctx: &Ctx, req: AccountIssue) -> Result<Enrolled, AppError> {
    let job_ctx = ctx.clone();
    let issued = ctx.writer.write(move |c| {
        let (ctx, req) = (&job_ctx, &req);
        if !AcmeOrder::advance(
            c,
            &req.order_id,
            AcmeOrderStatus::Ready,
            AcmeOrderStatus::Processing,
        )? {
            return Err(AppError::Conflict(
                "the order was finalized at the same moment by another request".into(),
            ));
        }
        let settings = c.settings()?;
        let rules = Rules {
            policy: mappings::policy(ctx, &settings),
            settings,
            now: db::now(),
        };
        for name in &req.names {
            refuse_forbidden_name(&rules.policy, name)?;
        }
        let account = &req.account;
        let actor = format!("ACME account {}", account.account_id);
        let (host, new_host) = account_host(c, &rules, account, &req.names[0], &actor)?;
        let allowed = mappings::certifiable(c, &rules.policy, &host)?;
        for name in &req.names {
            if allowed.contains(name) {
                continue;
            }
            let state = match account.binding {
                // A name proved by its challenge follows the mapping rules.
                AcmeBinding::Unbound => mappings::discover_with(
                    c,
                    &host,
                    name,
                    &rules.policy,
                    rules.settings.auto_map_host_names,
                    &actor,
                    rules.now,
                )?,
                _ => None,
            };
            if state != Some(MappingState::Approved) {
                return Err(AppError::Unauthorized(format!(
                    "{name} is not an approved name of host {} ({}): an administrator must approve it before a certificate may carry it",
                    host.primary_name, host.host_id
                )));
            }
        }
        // A reissue token's account replaces every certificate of its host with its first
        // (at once in the CRL, as a reissue does); later, a certificate replaces the
        // account's earlier ones for the same names (a renewal: the CRL follows within
        // seconds) and the one the order names in `replaces`.
        let first_of_reissue = account.binding == AcmeBinding::Reissue
            && !Certificate::account_has_any(c, &account.account_id)?;
        let urgent = first_of_reissue && supersede(c, &host, rules.now)?;
        let mut older = Certificate::unrevoked_of_account_for(c, &account.account_id, &req.names)?;
        older.extend(req.replaces.clone());
        let mut revoked_any = false;
        for serial in older {
            revoked_any |=
                Certificate::revoke(c, &serial, Reason::Superseded, "renewal", rules.now)?;
        }
        let from = Provenance {
            via: IssuedVia::Acme,
            token_name: account.token_name.as_deref(),
            acme_account: Some(&account.account_id),
            replaces: req.replaces.as_deref(),
        };
        let enrolled = issue_and_store(
            ctx,
            c,
            &host,
            &req.names,
            &req.csr,
            &from,
            &rules.settings,
            rules.now,
            None,
        )?;
        AcmeOrder::set_issued(c, &req.order_id, &enrolled.serial)?;
        let admitted = Admitted {
            host,
            new_host,
            via: format!(
                "ACME account {} ({})",
                account.account_id,
                match &account.token_name {
                    Some(t) => format!("{} {t}", account.binding.label().to_lowercase()),
                    None => "bound by no token: names proved by http-01".into(),
                }
            ),
            token: account.token_name.clone(),
            supersedes: false,
        };
        audit_issued(c, &req.names[0], &admitted, &enrolled, &[])?;
        Ok((enrolled, urgent, revoked_any))
    });
    let (enrolled, urgent, revoked_any) = issued?;
    if urgent {
        super::pki::rebuild_crl_after_revocation(ctx);
    } else if revoked_any {
        super::pki::rebuild_crl_soon(ctx);
    }
    Ok(enrolled)
}

/// The host an ACME account is: bound already, or (an account without a token, after its
/// challenges) registered now by its first name, as security level medium lets a host in.
fn account_host(
    c: &mut WriteTx,
    rules: &Rules,
    account: &AcmeAccount,
    first_name: &str,
    actor: &str,
) -> Result<(Host, bool), AppError> {
    if let Some(id) = &account.host_id {
        let host = Host::find_by_host_id(c, id)?.ok_or_else(|| {
            AppError::Unprocessable(format!(
                "the host of this account ({id}) no longer exists: ask an administrator for a new token"
            ))
        })?;
        return Ok((host, false));
    }
    let (host, new_host) = match hosts::find_by_name(c, first_name)? {
        Some(h) if has_had_certificate(c, &h)? => {
            return Err(AppError::Conflict(format!(
                "{first_name} (host ID {}) has already been issued a certificate: {NEEDS_REISSUE}",
                h.host_id
            )))
        }
        Some(h) => (h, false),
        None => {
            check_new_name(&rules.policy, first_name)?;
            (
                hosts::create_row(c, &hosts::new_host_id(), first_name, actor, rules.now)?,
                true,
            )
        }
    };
    if !AcmeAccount::bind_host(c, &account.account_id, &host.host_id)? {
        return Err(AppError::Conflict(
            "this account got its host at the same moment in another request: finalize again"
                .into(),
        ));
    }
    Ok((host, new_host))
}

/// Revokes (superseded) every certificate of the host not yet revoked; whether any was.
fn supersede(c: &mut DbConn, host: &Host, now: NaiveDateTime) -> Result<bool, AppError> {
    let mut revoked_any = false;
    for serial in Certificate::unrevoked_serials(c, &host.host_id)? {
        revoked_any |= Certificate::revoke(c, &serial, Reason::Superseded, "reissue", now)?;
    }
    Ok(revoked_any)
}

/// The names that go into the certificate, and those of the CSR left out (to be audited).
struct Names {
    certified: Vec<String>,
    ignored: Vec<String>,
}

/// The names a certificate carries: the requested one first, then the host's other
/// approved mappings (an administrator allowed each: an approved address becomes an IP
/// SAN), then any other name the CSR asks for that is discovered now and approved at once
/// under the name policy. Pending and rejected names are never put in a certificate;
/// reserved names and all-digit names in the CSR are returned apart, to be audited.
fn enrollment_names(
    c: &mut WriteTx,
    rules: &Rules,
    admitted: &Admitted,
    req: &Request,
) -> Result<Names, AppError> {
    let policy = &rules.policy;
    let requested = req.hostname;
    let host = &admitted.host;
    let mut names = vec![requested.to_string()];
    let mut ignored = Vec::new();
    // A host registered just now has no mapping but its primary name: spare the query.
    if !admitted.new_host {
        for name in mappings::certifiable(c, policy, host)? {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for n in req.csr.dns_names.iter().take(20) {
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
            rules.settings.auto_map_host_names,
            requested,
            rules.now,
        )?;
        match state {
            Some(MappingState::Approved) => names.push(n.clone()),
            None => ignored.push(n.clone()),
            Some(_) => {}
        }
    }
    Ok(Names {
        certified: names,
        ignored,
    })
}

/// The issuance's audit event: who, which certificate, what let it in.
fn audit_issued(
    c: &mut WriteTx,
    hostname: &str,
    admitted: &Admitted,
    enrolled: &Enrolled,
    ignored: &[String],
) -> Result<(), AppError> {
    audit::record(
        c,
        &Event::new(AuditCategory::Cert, "issue", hostname, &enrolled.serial).describe(
            format!(
                "certificate {} issued to {hostname} (host ID {}{}) via {}",
                enrolled.serial,
                admitted.host.host_id,
                if admitted.new_host {
                    ", a new host registered with it"
                } else {
                    ""
                },
                admitted.via,
            ) + &ignored_text(ignored),
        ),
    )?;
    Ok(())
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
    from: &Provenance,
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
            &ctx.pki.signing(),
            &LeafRequest {
                names,
                host_id: Some(&host.host_id),
                spki_der: &csr.spki_der,
                validity_days,
                validity_minutes: ctx.pki.leaf_minutes(),
                now,
                public_url: &ctx.site.public_url,
            },
        )?,
    };
    super::certificates::store_issued(c, &cert, &host.host_id, names, from, now)?;
    // The answer carries the trust bundle: during a CA migration, the host now has it.
    let issuers = ctx.pki.issuers();
    if let Some(m) = &issuers.migration {
        crate::models::issuer::record_trust_seen(c, &host.host_id, m.initiated_at, now)?;
    }
    Ok(Enrolled {
        host_id: host.host_id.clone(),
        serial: cert.serial,
        certificate: cert.pem,
        chain: issuers.chain_pem(cert.issuer_id),
        ca_certificate: issuers.bundle_pem.clone(),
        not_after: cert.not_after,
        issuer_id: cert.issuer_id,
    })
}
