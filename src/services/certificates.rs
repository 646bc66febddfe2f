//! Certificates in the console: list, details, revocation of one or of a host's all.

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::{Actor, Ctx};
use crate::db;
use crate::error::AppError;
use crate::models::certificate::{renew_by_for, CertFilter, Certificate, NewCertificate};
use crate::models::kinds::{AuditCategory, IssuedVia};
use crate::models::user::Role;
use crate::pki::issue::IssuedCert;
use crate::pki::Reason;

pub fn list(
    ctx: &Ctx,
    filter: &CertFilter,
) -> Result<(Vec<Certificate>, i64, NaiveDateTime), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    let (rows, total) = Certificate::list(&mut conn, filter, now)?;
    Ok((rows, total, now))
}

/// The most rows a certificate CSV holds.
pub const CSV_ROWS: i64 = 100_000;

/// The certificates `filter` matches (its search, filters and sort; not its page), as CSV.
pub fn csv(ctx: &Ctx, mut filter: CertFilter) -> Result<String, AppError> {
    use super::audit_log::csv_field;
    filter.offset = 0;
    filter.limit = CSV_ROWS;
    let (rows, _, now) = list(ctx, &filter)?;
    let mut out = String::from(
        "serial,host_id,names,status,not_before_utc,not_after_utc,revoked_at_utc,revocation_reason,issued_via,sha256\r\n",
    );
    let at = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for c in &rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&c.serial),
            csv_field(&c.host_id),
            csv_field(&c.names),
            c.status(now).key(),
            at(c.not_before),
            at(c.not_after),
            c.revoked_at.map(at).unwrap_or_default(),
            c.revocation_reason.map(|r| r.key()).unwrap_or_default(),
            c.issued_via.key(),
            c.fingerprint_sha256
        ));
    }
    Ok(out)
}

pub fn details(ctx: &Ctx, serial: &str) -> Result<Certificate, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    Certificate::find_by_serial(&mut conn, &serial.to_ascii_uppercase())?.ok_or_else(|| {
        AppError::NotFound(format!(
            "there is no certificate with serial number {serial}"
        ))
    })
}

/// What the certificate's page shows: the row, what the certificate itself says, and the
/// time its state was judged at.
pub struct DetailsPage {
    pub certificate: Certificate,
    pub described: crate::pki::Described,
    pub now: chrono::NaiveDateTime,
}

pub fn details_page(ctx: &Ctx, serial: &str) -> Result<DetailsPage, AppError> {
    let certificate = details(ctx, serial)?;
    Ok(DetailsPage {
        described: crate::pki::describe(&certificate.pem),
        certificate,
        now: db::now(),
    })
}

pub fn parse_reason(s: &str) -> Result<Reason, AppError> {
    Reason::parse(s.trim()).ok_or_else(|| {
        AppError::BadRequest(format!("choose a revocation reason: {}", Reason::choices()))
    })
}

/// Revokes one certificate. Revoking a revoked certificate is a 409.
pub fn revoke(
    ctx: &Ctx,
    actor: &Actor,
    serial: &str,
    reason: &str,
) -> Result<Certificate, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Cert,
        "revoke",
        serial,
    )?;
    let reason = parse_reason(reason)?;
    let serial = serial.to_ascii_uppercase();
    let cert = db::write_tx(&mut conn, |c| {
        let cert = Certificate::find_by_serial(c, &serial)?.ok_or_else(|| {
            AppError::NotFound(format!(
                "there is no certificate with serial number {serial}"
            ))
        })?;
        if !Certificate::revoke(c, &serial, reason, &actor.username, db::now())? {
            return Err(AppError::Conflict(format!(
                "certificate {serial} is already revoked"
            )));
        }
        audit::record(
            c,
            &Event::new(AuditCategory::Cert, "revoke", &actor.username, &serial)
                .describe(format!(
                    "certificate {serial} of {} (host ID {}) revoked",
                    cert.primary_name(),
                    cert.host_id
                ))
                .reason(reason.label()),
        )?;
        Ok(Certificate::find_by_serial(c, &serial)?.unwrap_or(cert))
    })?;
    super::pki::rebuild_crl_after_revocation(ctx);
    Ok(cert)
}

/// Revokes every certificate of a host that is not revoked yet; returns how many.
pub fn revoke_host(
    ctx: &Ctx,
    actor: &Actor,
    host_id: &str,
    reason: &str,
) -> Result<usize, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Cert,
        "revoke_host",
        host_id,
    )?;
    let reason = parse_reason(reason)?;
    let n = db::write_tx(&mut conn, |c| {
        let host = super::hosts::find(c, host_id)?;
        let now = db::now();
        let mut n = 0;
        for serial in Certificate::unrevoked_serials(c, &host.host_id)? {
            if Certificate::revoke(c, &serial, reason, &actor.username, now)? {
                n += 1;
            }
        }
        audit::record(
            c,
            &Event::new(
                AuditCategory::Cert,
                "revoke_host",
                &actor.username,
                &host.primary_name,
            )
            .describe(format!(
                "{n} certificates of {} (host ID {host_id}) revoked",
                host.primary_name
            ))
            .reason(reason.label()),
        )?;
        Ok(n)
    })?;
    if n > 0 {
        super::pki::rebuild_crl_after_revocation(ctx);
    }
    Ok(n)
}

/// The TLS certificates this server issued to itself (see `pki::SERVER_HOST_ID`), newest
/// first, and the time they were read at.
pub fn server_certificates(ctx: &Ctx) -> Result<(Vec<Certificate>, NaiveDateTime), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let rows = Certificate::for_host(&mut conn, super::pki::SERVER_HOST_ID)?;
    Ok((rows, db::now()))
}

/// How a certificate came to be, as its row records it.
#[derive(Clone, Copy, Debug)]
pub struct Provenance<'a> {
    pub via: IssuedVia,
    /// The token that paid for it.
    pub token_name: Option<&'a str>,
    /// The ACME account that ordered it.
    pub acme_account: Option<&'a str>,
    /// The certificate it replaces.
    pub replaces: Option<&'a str>,
}

impl Provenance<'_> {
    pub fn via(via: IssuedVia) -> Provenance<'static> {
        Provenance {
            via,
            token_name: None,
            acme_account: None,
            replaces: None,
        }
    }
}

/// Stores a certificate just signed for `host_id`: every path that issues one (enrollment,
/// renewal, the server's own TLS certificate) records it the same way.
pub(super) fn store_issued(
    c: &mut db::DbConn,
    cert: &IssuedCert,
    host_id: &str,
    names: &[String],
    from: &Provenance,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    Certificate::insert(
        c,
        &NewCertificate {
            serial: &cert.serial,
            host_id,
            subject: &cert.subject,
            names: &names.join(","),
            not_before: cert.not_before,
            not_after: cert.not_after,
            fingerprint_sha256: &cert.sha256,
            pem: &cert.pem,
            token_name: from.token_name,
            created_at: now,
            issued_via: from.via,
            acme_account_id: from.acme_account,
            replaces: from.replaces,
            issuer_id: Some(cert.issuer_id),
            renew_by: Some(renew_by_for(cert.not_before, cert.not_after)),
        },
    )?;
    crate::metrics::count_on_commit(crate::metrics::Count::Issued(from.via));
    Ok(())
}
