//! OCSP (RFC 6960, RFC 5019): `POST /ocsp` with a DER request, `GET /ocsp/{base64}`.
//! Answers are `application/ocsp-response`, HTTP 200 even for a malformed request (its
//! OCSP status says so). A cached answer is served without leaving the async worker; the
//! rest go through `services::ocsp::answer` in `web::block`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;

use super::public::Der;
use crate::pki::ocsp::{error_response, ErrorStatus};
use crate::services::ocsp::{self, Answer};
use crate::services::Ctx;

/// The largest request read: one CertID is about 80 bytes, eight with a nonce well under.
pub const MAX_REQUEST: usize = 4096;
const CONTENT_TYPE: &str = "application/ocsp-response";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ocsp", web::post().to(post))
        .route("/ocsp/{request:.*}", web::get().to(get));
}

#[utoipa::path(post, path = "/ocsp", tag = "public", summary = "OCSP: the status of a certificate (RFC 6960), the request as DER",
    request_body(content = Der, content_type = "application/ocsp-request"),
    responses((status = 200, description = "An OCSP response (a malformed or unauthorized request is answered with that status)", content_type = "application/ocsp-response", body = Der),
        (status = 413, description = "Over 4 KiB"),
        (status = 415, description = "Not application/ocsp-request")))]
pub async fn post(req: HttpRequest, body: super::Body, ctx: web::Data<Ctx>) -> HttpResponse {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !kind.trim().eq_ignore_ascii_case("application/ocsp-request") {
        return HttpResponse::UnsupportedMediaType()
            .body("send the OCSP request as application/ocsp-request");
    }
    let bytes = match super::read_body(&body, "OCSP request") {
        Ok(b) if b.len() <= MAX_REQUEST => b.to_vec(),
        Ok(_) | Err(crate::error::AppError::TooLarge) => {
            return HttpResponse::PayloadTooLarge().body("an OCSP request is at most 4 KiB")
        }
        Err(_) => return ocsp_body(error_response(ErrorStatus::MalformedRequest)),
    };
    respond(&req, &ctx, bytes, false).await
}

#[utoipa::path(get, path = "/ocsp/{request}", tag = "public", summary = "OCSP over GET (RFC 5019): the request's DER in base64, URL-encoded",
    params(("request" = String, Path, description = "base64 (standard or URL-safe) of the DER OCSPRequest")),
    responses((status = 200, description = "An OCSP response, with Cache-Control, ETag and Last-Modified when pre-produced", content_type = "application/ocsp-response", body = Der),
        (status = 304, description = "If-None-Match named the current response")))]
pub async fn get(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    let raw = req.uri().path().strip_prefix("/ocsp/").unwrap_or_default();
    match decode_get(raw) {
        Some(bytes) if bytes.len() <= MAX_REQUEST => respond(&req, &ctx, bytes, true).await,
        _ => ocsp_body(error_response(ErrorStatus::MalformedRequest)),
    }
}

/// The request of a GET: percent-decoded, then base64 in either alphabet, padded or not.
fn decode_get(raw: &str) -> Option<Vec<u8>> {
    let text: String = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(text.trim_end_matches('=')).ok()
}

async fn respond(
    req: &HttpRequest,
    ctx: &web::Data<Ctx>,
    bytes: Vec<u8>,
    get: bool,
) -> HttpResponse {
    let answer = match ocsp::cached(ctx, &bytes) {
        Some(hit) => Answer::Cached(hit),
        None => {
            let ctx = ctx.clone();
            match web::block(move || ocsp::answer(&ctx, &bytes)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    log::error!("answering an OCSP request failed: {e}");
                    let status = if e.status().as_u16() == 503 {
                        ErrorStatus::TryLater
                    } else {
                        ErrorStatus::InternalError
                    };
                    Answer::Live(error_response(status))
                }
                Err(_) => Answer::Live(error_response(ErrorStatus::TryLater)),
            }
        }
    };
    match answer {
        Answer::Live(der) => ocsp_body(der),
        Answer::Cached(c) if get => {
            let age = c.max_age(crate::db::now());
            let cache_control = format!("max-age={age}, public, no-transform, must-revalidate");
            let matches = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == c.etag || t.trim() == "*"));
            let mut r = if matches {
                HttpResponse::NotModified()
            } else {
                HttpResponse::Ok()
            };
            r.insert_header((header::CACHE_CONTROL, cache_control))
                .insert_header((header::ETAG, c.etag.clone()))
                .insert_header((header::LAST_MODIFIED, c.last_modified.clone()))
                .insert_header((header::EXPIRES, c.expires.clone()));
            if matches {
                r.finish()
            } else {
                r.content_type(CONTENT_TYPE).body(c.der.clone())
            }
        }
        Answer::Cached(c) => ocsp_body(c.der.clone()),
    }
}

fn ocsp_body(der: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(der)
}
