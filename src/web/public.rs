//! What anyone may fetch: the CA certificate and the CRL.

use actix_web::{web, HttpResponse};

use crate::services::Ctx;

/// What the OpenAPI document says a DER body is: bytes, not JSON.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Der(pub Vec<u8>);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ca.pem", web::get().to(ca_pem))
        .route("/crl", web::get().to(crl_der))
        .route("/crl.pem", web::get().to(crl_pem));
}

#[utoipa::path(get, path = "/ca.pem", tag = "public", summary = "The CA certificate, PEM",
    responses((status = 200, description = "The CA certificate", content_type = "application/x-pem-file", body = String)))]
pub async fn ca_pem(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Content-Disposition", "inline; filename=\"ca.pem\""))
        .body(ctx.pki.ca.cert_pem.clone())
}

#[utoipa::path(get, path = "/crl", tag = "public", summary = "The CRL, DER (RFC 5280)",
    responses((status = 200, description = "The current CRL", content_type = "application/pkix-crl", body = Der)))]
pub async fn crl_der(ctx: web::Data<Ctx>) -> HttpResponse {
    let crl = ctx.pki.crl();
    HttpResponse::Ok()
        .content_type("application/pkix-crl")
        .insert_header(("Cache-Control", "no-cache"))
        .body(crl.der.clone())
}

#[utoipa::path(get, path = "/crl.pem", tag = "public", summary = "The CRL, PEM",
    responses((status = 200, description = "The current CRL", content_type = "application/x-pem-file", body = String)))]
pub async fn crl_pem(ctx: web::Data<Ctx>) -> HttpResponse {
    let crl = ctx.pki.crl();
    HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header(("Cache-Control", "no-cache"))
        .body(crl.pem.clone())
}
