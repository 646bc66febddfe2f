//! Security > Certificate authority: the CA certificate, the CRL, and the server's own TLS
//! certificates. Also `/ca.crt`: the CA certificate as DER, where issued certificates'
//! authorityInfoAccess points.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Auth;
use super::certificates::CertView;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/ca", web::get().to(show))
        .route(crate::pki::issue::CA_ISSUERS_PATH, web::get().to(ca_der));
}

/// RFC 5280, 4.2.2.1: a caIssuers URI over HTTP names one DER certificate, served as
/// `application/pkix-cert` (RFC 2585).
#[utoipa::path(get, path = "/ca.crt", tag = "public", summary = "The CA certificate, DER (the caIssuers target of issued certificates)",
    responses((status = 200, description = "The CA certificate", content_type = "application/pkix-cert", body = super::public::Der)))]
pub async fn ca_der(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/pkix-cert")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Content-Disposition", "inline; filename=\"ca.crt\""))
        .body(ctx.pki.ca.cert_der.clone())
}

#[derive(Template)]
#[template(path = "ca.html")]
struct CaPage {
    page: Page,
    subject: String,
    not_before: When,
    not_after: When,
    sha1: String,
    sha256: String,
    crl_number: i64,
    this_update: When,
    next_update: When,
    revoked: usize,
    /// The server's own TLS certificates, newest first.
    tls_certs: Vec<CertView>,
    /// Where ACME clients start.
    acme_directory: String,
}

async fn show(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let svc_ctx = ctx.clone();
    let (tls, now) =
        web::block(move || crate::services::certificates::server_certificates(&svc_ctx)).await??;
    let ca = &ctx.pki.ca;
    let crl = ctx.pki.crl();
    view::ok(&CaPage {
        page: auth.page("Certificate authority", "ca"),
        subject: ca.subject.clone(),
        not_before: When::of(ca.not_before, now),
        not_after: When::of(ca.not_after, now),
        sha1: ca.sha1.clone(),
        sha256: ca.sha256.clone(),
        crl_number: crl.number,
        this_update: When::of(crl.this_update, now),
        next_update: When::of(crl.next_update, now),
        revoked: crl.entries,
        tls_certs: tls.iter().map(|c| CertView::of(c, now)).collect(),
        acme_directory: format!("{}/acme/directory", ctx.site.public_url),
    })
}
