//! Security > Certificate authority: the CA certificate and the CRL.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Auth;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/ca", web::get().to(show));
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
}

async fn show(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let ca = &ctx.pki.ca;
    let crl = ctx.pki.crl();
    let now = crate::db::now();
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
    })
}
