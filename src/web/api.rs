//! The JSON API for hosts: enrollment and renewal.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::services::enroll::{self, EnrollRequest, Enrolled};
use crate::services::{renewal, Ctx};
use crate::web::errors::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/certificates", web::post().to(request_certificate))
            .route("/certificates/renew", web::post().to(renew_certificate))
            .route("/certificates/renew/nonce", web::post().to(renewal_nonce))
            .route("/openapi.json", web::get().to(super::openapi::document))
            .configure(super::admin_api::routes)
            .default_service(web::to(unknown)),
    );
}

#[derive(Deserialize)]
struct CertificateBody {
    hostname: String,
    csr: String,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
struct RenewBody {
    host_id: String,
    csr: String,
}

#[derive(Deserialize)]
struct NonceBody {
    host_id: String,
}

#[derive(Serialize)]
pub struct NonceResponse {
    pub nonce: String,
    pub expires_at: String,
}

#[derive(Serialize)]
pub struct CertificateResponse {
    pub host_id: String,
    pub serial: String,
    pub certificate: String,
    pub ca_certificate: String,
    pub not_after: String,
}

fn created(e: Enrolled) -> HttpResponse {
    HttpResponse::Created().json(CertificateResponse {
        host_id: e.host_id,
        serial: e.serial,
        certificate: e.certificate,
        ca_certificate: e.ca_certificate,
        not_after: e.not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// Reads a JSON body; a body that cannot be read is a refused request, and audited.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    ctx: &web::Data<Ctx>,
    body: super::Body,
    action: &'static str,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = super::read_body(&body, "body").and_then(|b| parse_json(content_type, b));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => {
            let ctx = ctx.clone();
            let peer = req.peer_addr().map(|a| a.ip());
            Err(ApiError(
                web::block(move || enroll::refuse(&ctx, peer, action, e)).await?,
            ))
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    content_type: &str,
    body: &[u8],
) -> Result<T, AppError> {
    if !content_type.starts_with("application/json") {
        return Err(AppError::BadRequest(
            "send the body as JSON with Content-Type: application/json".into(),
        ));
    }
    super::parse_json(body)
}

async fn request_certificate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: CertificateBody = json_body(&req, &ctx, body, "request").await?;
    let request = EnrollRequest {
        hostname: body.hostname,
        csr: body.csr,
        token: body.token,
        peer: req.peer_addr().map(|a| a.ip()),
    };
    let enrolled = web::block(move || enroll::enroll(&ctx, &request)).await??;
    Ok(created(enrolled))
}

async fn renew_certificate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: RenewBody = json_body(&req, &ctx, body, "renew").await?;
    let peer = req.peer_addr().map(|a| a.ip());
    let enrolled =
        web::block(move || renewal::renew(&ctx, &body.host_id, &body.csr, peer)).await??;
    Ok(created(enrolled))
}

async fn renewal_nonce(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: NonceBody = json_body(&req, &ctx, body, "renew_nonce").await?;
    let nonce = web::block(move || renewal::new_nonce(&ctx, &body.host_id)).await??;
    Ok(HttpResponse::Created().json(NonceResponse {
        nonce: nonce.value,
        expires_at: nonce.expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
}

async fn unknown(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError(AppError::NotFound(format!(
        "there is no API route {} {}; see /api/v1/openapi.json",
        req.method(),
        req.path()
    ))))
}
