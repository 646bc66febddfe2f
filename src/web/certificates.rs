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
use crate::models::certificate::{CertAttention, CertFilter, CertSort, CertStatus, Certificate};
use crate::pki::Reason;
use crate::services::certificates as svc;
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/certificates", web::get().to(list))
        .route("/security/certificates.csv", web::get().to(export))
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

/// The certificate list's filters beside search, sort and page: the page's query, the
/// admin API's and the CSV's.
#[derive(Deserialize, Default, Clone)]
pub struct CertQuery {
    pub status: Option<String>,
    /// Days: only active certificates that expire within so many.
    pub expires_within: Option<String>,
    /// `renewal-missed`, `lapsed` or `recently-revoked` (the overview's links).
    pub view: Option<String>,
}

/// The longest `expires_within`: ten years.
pub const EXPIRES_WITHIN_MAX: u32 = 3650;

/// A number of days in a query, between 1 and `max`.
pub fn days(name: &str, value: Option<&str>, max: u32) -> Result<Option<u32>, AppError> {
    match value.map(str::trim).unwrap_or("") {
        "" => Ok(None),
        v => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(AppError::BadRequest(format!(
                "{name} '{}' is not a number of days: use a whole number from 1 to {max}",
                v.chars().take(20).collect::<String>()
            ))),
        },
    }
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
    /// The same list as CSV.
    csv_href: String,
}

/// The filters beside the status that the list's sort and page links keep, with a label
/// for the page to say what it shows.
fn kept_filters(f: &CertFilter) -> Vec<(&'static str, String, String)> {
    let mut kept = Vec::new();
    if let Some(d) = f.expires_within {
        kept.push(Listing::expires_within(d));
    }
    if let Some(a) = f.attention {
        kept.push(("view", a.key().to_string(), a.label().to_string()));
    }
    kept
}

/// `/security/certificates.csv` with the list's search and filters (not its page).
fn csv_href(query: &ListQuery, extra: &CertQuery) -> String {
    let params: Vec<(&str, &str)> = [
        ("q", query.q.as_deref()),
        ("status", extra.status.as_deref()),
        ("expires_within", extra.expires_within.as_deref()),
        ("view", extra.view.as_deref()),
        ("sort", query.sort.as_deref()),
        ("dir", query.dir.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
    .collect();
    let qs = serde_urlencoded::to_string(&params).unwrap_or_default();
    if qs.is_empty() {
        "/security/certificates.csv".into()
    } else {
        format!("/security/certificates.csv?{qs}")
    }
}

/// Every certificate the list's search and filters match, as CSV (at most
/// `svc::CSV_ROWS`).
async fn export(
    _auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<ListQuery>,
    extra: web::Query<CertQuery>,
) -> Result<HttpResponse, AppError> {
    let (_, filter) = filter(&query, &extra)?;
    let body = web::block(move || svc::csv(&ctx, filter)).await??;
    Ok(view::csv_download("certificates").body(body))
}

/// The certificate list's query (search, filters, sort, page), for the page, the CSV and
/// the API.
pub fn filter(query: &ListQuery, extra: &CertQuery) -> Result<(Paging, CertFilter), AppError> {
    let paging = listing::parse(query, CertSort::Issued.key(), CertSort::KEYS)?;
    let attention = match extra.view.as_deref().unwrap_or("") {
        "" => None,
        v => Some(CertAttention::parse(v).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown view '{}': use {}",
                v.chars().take(40).collect::<String>(),
                CertAttention::choices()
            ))
        })?),
    };
    let status = match extra.status.as_deref().unwrap_or("") {
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
        expires_within: days(
            "expires_within",
            extra.expires_within.as_deref(),
            EXPIRES_WITHIN_MAX,
        )?,
        attention,
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
    extra: web::Query<CertQuery>,
) -> Result<HttpResponse, AppError> {
    let (paging, filter) = filter(&query, &extra)?;
    let status = filter.status;
    let kept = kept_filters(&filter);
    let csv_href = csv_href(&query, &extra);
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
        )
        .keeping(kept),
        csv_href,
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
