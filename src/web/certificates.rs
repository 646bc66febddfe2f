//! Security > Certificates: list, details with PEM, revocation.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::auth::{Auth, CsrfForm};
use super::forms::RevokeForm;
use super::listing::{self, ListQuery, Listing, Paging, PAGE_SIZE};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::certificate::{CertFilter, CertSort, CertStatus, Certificate};
use crate::pki::Reason;
use crate::services::certificates as svc;
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/certificates", web::get().to(list))
        .route("/security/certificates/{serial}", web::get().to(details))
        .route(
            "/security/certificates/{serial}/pem",
            web::get().to(download),
        )
        .route(
            "/security/certificates/{serial}/revoke",
            web::post().to(revoke),
        );
}

/// A certificate as the pages show it.
pub struct CertView {
    pub serial: String,
    pub host_id: String,
    pub host_name: String,
    pub names: Vec<String>,
    pub subject: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub not_before: When,
    pub not_after: When,
    pub revoked_at: Option<When>,
    pub revocation_reason: String,
    pub revoked_by: String,
    pub token_name: String,
    pub sha256: String,
    pub can_revoke: bool,
    /// How it was issued (Enrollment API, Renewal, ACME, Server).
    pub issued_via: &'static str,
    pub acme_account: String,
    /// The serial of the certificate it replaced.
    pub replaces: String,
}

impl CertView {
    pub fn of(c: &Certificate, now: NaiveDateTime) -> CertView {
        let status = c.status(now);
        CertView {
            serial: c.serial.clone(),
            host_id: c.host_id.clone(),
            host_name: c.primary_name().to_string(),
            names: c.names().into_iter().map(str::to_string).collect(),
            subject: c.subject.clone(),
            status_key: status.key(),
            status_label: status.label(),
            not_before: When::of(c.not_before, now),
            not_after: When::of(c.not_after, now),
            revoked_at: When::maybe(c.revoked_at, now),
            revocation_reason: c
                .revocation_reason
                .map(|r| r.label().to_string())
                .unwrap_or_default(),
            revoked_by: c.revoked_by.clone().unwrap_or_default(),
            token_name: c.token_name.clone().unwrap_or_default(),
            sha256: c.fingerprint_sha256.clone(),
            can_revoke: c.revoked_at.is_none(),
            issued_via: c.issued_via.label(),
            acme_account: c.acme_account_id.clone().unwrap_or_default(),
            replaces: c.replaces.clone().unwrap_or_default(),
        }
    }
}

/// The revocation reasons for a form's `<select>`.
pub fn reasons() -> Vec<(&'static str, &'static str)> {
    Reason::ALL.iter().map(|r| (r.key(), r.label())).collect()
}

#[derive(Deserialize, Default)]
pub struct StatusQuery {
    pub status: Option<String>,
}

#[derive(Template)]
#[template(path = "certificates/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<CertView>,
    list: Listing,
    reasons: Vec<(&'static str, &'static str)>,
    /// The status filter's choices: key and label.
    statuses: Vec<(&'static str, &'static str)>,
}

/// The certificate list's query (search, status, sort, page), for the page and the API.
pub fn filter(query: &ListQuery, status: Option<&str>) -> Result<(Paging, CertFilter), AppError> {
    let paging = listing::parse(query, CertSort::Issued.key(), CertSort::KEYS)?;
    let status = match status.unwrap_or("") {
        "" | "all" => None,
        s => Some(CertStatus::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown status '{s}': use active, revoked, expired or superseded"
            ))
        })?),
    };
    let filter = CertFilter {
        q: paging.q.clone(),
        status,
        sort: CertSort::parse(&paging.sort).unwrap_or(CertSort::Issued),
        descending: paging.descending,
        offset: paging.offset(),
        limit: PAGE_SIZE,
    };
    Ok((paging, filter))
}

async fn list(
    auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<ListQuery>,
    status: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    let (paging, filter) = filter(&query, status.status.as_deref())?;
    let status = filter.status;
    let (rows, total, now) = web::block(move || svc::list(&ctx, &filter)).await??;
    let key = status.map(|s| s.key().to_string()).unwrap_or_default();
    view::ok(&ListPage {
        page: auth.page("Certificates", "certificates"),
        list: Listing::new(
            "/security/certificates",
            &paging,
            "status",
            key,
            total,
            rows.len(),
        ),
        rows: rows.iter().map(|c| CertView::of(c, now)).collect(),
        reasons: reasons(),
        statuses: CertStatus::ALL
            .iter()
            .map(|s| (s.key(), s.label()))
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "certificates/details.html")]
struct DetailsPage {
    page: Page,
    c: CertView,
    issuer: String,
    key_algorithm: String,
    sha1: String,
    pem: String,
    reasons: Vec<(&'static str, &'static str)>,
}

async fn details(
    auth: Auth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let serial = serial.into_inner();
    let d = web::block(move || svc::details_page(&ctx, &serial)).await??;
    let cert = d.certificate;
    view::ok(&DetailsPage {
        page: auth.page(&format!("Certificate {}", cert.serial), "certificates"),
        c: CertView::of(&cert, d.now),
        issuer: d.described.issuer,
        key_algorithm: d.described.key_algorithm,
        sha1: d.described.sha1,
        pem: cert.pem,
        reasons: reasons(),
    })
}

async fn download(
    _auth: Auth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let serial = serial.into_inner();
    let cert = web::block(move || svc::details(&ctx, &serial)).await??;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.pem\"", cert.serial),
        ))
        .body(cert.pem))
}

async fn revoke(
    auth: Auth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
    CsrfForm(RevokeForm { reason, return_to }): CsrfForm<RevokeForm>,
) -> Result<HttpResponse, AppError> {
    let serial = serial.into_inner();
    let actor = auth.actor();
    let cert = web::block(move || svc::revoke(&ctx, &actor, &serial, &reason)).await??;
    view::flash(
        &auth.session,
        "success",
        format!(
            "Certificate {} of {} revoked. The CRL has been republished.",
            cert.serial,
            cert.primary_name()
        ),
    );
    let back = match return_to.as_deref() {
        Some(p) if p.starts_with("/security/") && p.chars().all(|c| c.is_ascii_graphic()) => {
            p.to_string()
        }
        _ => format!("/security/certificates/{}", cert.serial),
    };
    Ok(view::redirect(&back))
}
