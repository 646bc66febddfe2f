//! What anyone may fetch: the trust bundle, the CA certificates and their CRLs.
//!
//! A host may say who it is with a `Hostca-Host-Id` header when it fetches the bundle or a
//! CRL: during a CA migration that is how the server learns which hosts have the new CA
//! (a claim, not a proof; a renewal through the new CA is the proof).

use actix_web::{web, HttpRequest, HttpResponse};

use crate::services::Ctx;

/// What the OpenAPI document says a DER body is: bytes, not JSON.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Der(pub Vec<u8>);

/// The header a host names itself with when it fetches the trust bundle or a CRL.
pub const HOST_ID_HEADER: &str = "Hostca-Host-Id";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ca.pem", web::get().to(ca_pem))
        .route("/crl", web::get().to(crl_der))
        .route("/crl.pem", web::get().to(crl_pem))
        .route("/crl/{issuer}", web::get().to(issuer_crl))
        .route("/ca/{issuer}", web::get().to(issuer_cert));
}

/// Records a host's report that it fetched the trust bundle, off the request's path: a
/// failure costs the host nothing.
async fn note_trust(req: &HttpRequest, ctx: &web::Data<Ctx>) {
    let Some(claimed) = req
        .headers()
        .get(HOST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let Some(host_id) = crate::names::host_id(claimed) else {
        return;
    };
    if ctx.pki.issuers().migration.is_none() {
        return;
    }
    let ctx = ctx.clone();
    if let Ok(Err(e)) = web::block(move || crate::services::pki::record_trust(&ctx, &host_id)).await
    {
        log::warn!("recording a host's trust report failed: {e}");
    }
}

#[utoipa::path(get, path = "/ca.pem", tag = "public", summary = "The trust bundle: every CA certificate hosts trust, PEM",
    params(("Hostca-Host-Id" = Option<String>, Header, description = "The fetching host's ID, recorded during a CA migration")),
    responses((status = 200, description = "The CA certificates (roots and issuing CAs, more during a CA migration)", content_type = "application/x-pem-file", body = String)))]
pub async fn ca_pem(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    note_trust(&req, &ctx).await;
    HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Content-Disposition", "inline; filename=\"ca.pem\""))
        .body(ctx.pki.bundle_pem())
}

fn crl_answer(der: bool, crl: &crate::pki::crl::SignedCrl) -> HttpResponse {
    crl_body(der, crl.der.clone(), || crl.pem.clone())
}

/// A CRL as DER, or as the PEM `pem` makes.
fn crl_body(der: bool, bytes: Vec<u8>, pem: impl FnOnce() -> String) -> HttpResponse {
    let (kind, body) = if der {
        ("application/pkix-crl", bytes)
    } else {
        ("application/x-pem-file", pem().into_bytes())
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

#[utoipa::path(get, path = "/crl", tag = "public", summary = "The CRL of the oldest CA still publishing one, DER (RFC 5280)",
    params(("Hostca-Host-Id" = Option<String>, Header, description = "The fetching host's ID, recorded during a CA migration")),
    responses((status = 200, description = "The current CRL", content_type = "application/pkix-crl", body = Der)))]
pub async fn crl_der(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    note_trust(&req, &ctx).await;
    crl_answer(true, &ctx.pki.crl())
}

#[utoipa::path(get, path = "/crl.pem", tag = "public", summary = "The CRL of the oldest CA still publishing one, PEM",
    params(("Hostca-Host-Id" = Option<String>, Header, description = "The fetching host's ID, recorded during a CA migration")),
    responses((status = 200, description = "The current CRL", content_type = "application/x-pem-file", body = String)))]
pub async fn crl_pem(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    note_trust(&req, &ctx).await;
    crl_answer(false, &ctx.pki.crl())
}

/// `7` or `7.pem`: an issuer's row number, and whether PEM was asked for.
fn issuer_and_form(segment: &str, suffix: &str) -> Option<(i64, bool)> {
    let (id, pem) = match segment.strip_suffix(".pem") {
        Some(id) => (id, true),
        None => (segment.strip_suffix(suffix).unwrap_or(segment), false),
    };
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, pem))
}

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "{what} is not published here: the CA page and /ca.pem list this server's CAs\n"
        ))
}

#[utoipa::path(get, path = "/crl/{issuer}", tag = "public", summary = "One CA's CRL: DER, or PEM with a .pem suffix (what certificates name as their CRL distribution point)",
    params(("issuer" = String, Path, description = "The CA's number, as on the CA page; `7.pem` for PEM"),
        ("Hostca-Host-Id" = Option<String>, Header, description = "The fetching host's ID, recorded during a CA migration")),
    responses((status = 200, description = "The CA's current CRL (a root's is its ARL)", content_type = "application/pkix-crl", body = Der),
        (status = 404, description = "No such CA, or it publishes no CRL", content_type = "text/plain", body = String)))]
pub async fn issuer_crl(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    path: web::Path<String>,
) -> HttpResponse {
    let Some((id, pem)) = issuer_and_form(&path, "") else {
        return not_found("that CRL");
    };
    note_trust(&req, &ctx).await;
    if let Some(crl) = ctx.pki.crl_of(id) {
        return crl_answer(!pem, &crl);
    }
    // A root's ARL is signed when its key is at hand and kept in its row.
    let set = ctx.pki.issuers();
    match set.get(id).and_then(|l| l.row.arl_der.clone()) {
        Some(der) => {
            let text = crate::pki::crl::pem("X509 CRL", &der);
            crl_body(!pem, der, || text)
        }
        None => not_found("that CRL"),
    }
}

#[utoipa::path(get, path = "/ca/{issuer}", tag = "public", summary = "One CA certificate: `7.crt` DER (the caIssuers target of certificates), `7.pem` PEM",
    params(("issuer" = String, Path, description = "The CA's number and form: `7.crt` or `7.pem`")),
    responses((status = 200, description = "The CA certificate", content_type = "application/pkix-cert", body = Der),
        (status = 404, description = "No such CA", content_type = "text/plain", body = String)))]
pub async fn issuer_cert(ctx: web::Data<Ctx>, path: web::Path<String>) -> HttpResponse {
    let Some((id, pem)) =
        issuer_and_form(&path, ".crt").filter(|_| path.ends_with(".crt") || path.ends_with(".pem"))
    else {
        return not_found("that CA certificate");
    };
    let set = ctx.pki.issuers();
    let Some(l) = set.get(id) else {
        return not_found("that CA certificate");
    };
    if pem {
        return HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .insert_header(("Cache-Control", "public, max-age=300"))
            .body(l.row.cert_pem.clone());
    }
    HttpResponse::Ok()
        .content_type("application/pkix-cert")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(l.ca.cert_der.clone())
}
