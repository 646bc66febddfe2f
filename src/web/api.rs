//! The JSON API for hosts: enrollment and renewal.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::services::enroll::{self, EnrollRequest, Enrolled};
use crate::services::{renewal, Ctx};
use crate::web::errors::ApiError;

/// The host API's routes and the document's own, for the OpenAPI test and the 405 answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/certificates"),
    ("post", "/api/v1/certificates/renew"),
    ("post", "/api/v1/certificates/renew/nonce"),
    ("get", "/api/v1/certificates/{serial}/renewal-info"),
    ("get", "/api/v1/openapi.json"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/certificates", web::post().to(request_certificate))
            .route("/certificates/renew", web::post().to(renew_certificate))
            .route("/certificates/renew/nonce", web::post().to(renewal_nonce))
            .route(
                "/certificates/{serial}/renewal-info",
                web::get().to(renewal_info),
            )
            .route("/openapi.json", web::get().to(super::openapi::document))
            .configure(super::admin_api::routes)
            .default_service(web::to(unknown)),
    );
}

/// A host's first certificate. Fields other than these are ignored.
#[derive(Deserialize, ToSchema)]
pub struct CertificateRequest {
    /// The host's name (a trailing dot is dropped).
    #[schema(example = "web01.example.com")]
    pub hostname: String,
    /// A PEM certificate signing request (P-256, P-384, Ed25519 or RSA 2048+ key).
    pub csr: String,
    /// An authorization or reissue token; not needed when the security level lets the
    /// host in without one.
    #[serde(default)]
    pub token: Option<String>,
}

/// A renewal, proved by the key of the host's active certificate.
#[derive(Deserialize, ToSchema)]
pub struct RenewRequest {
    /// The host ID (a UUID: with or without `urn:uuid:` and dashes, any case).
    pub host_id: String,
    /// A PEM CSR for the key of the active certificate, signed by it, with a nonce from
    /// /api/v1/certificates/renew/nonce in the PKCS#9 challengePassword attribute
    /// (1.2.840.113549.1.9.7). It may be for a new key when `proof` is given.
    pub csr: String,
    /// Re-keying: base64url of a signature by the CURRENT certificate's key over
    /// SHA-256("hostca-rekey-v1" || nonce || DER of `csr`) (ECDSA P-256/SHA-256 or
    /// P-384/SHA-384 DER-encoded, Ed25519, RSA PKCS#1 v1.5 or PSS with SHA-256). Needed only
    /// when `csr` is for a new key; a same-key renewal leaves it out.
    #[serde(default)]
    pub proof: Option<String>,
}

/// The suggested renewal window of a certificate (the same as ACME's renewalInfo).
#[derive(Serialize, ToSchema)]
pub struct RenewalInfoResponse {
    pub serial: String,
    /// Renew at a random moment between start and end.
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// Seconds before asking again is worthwhile (also the Retry-After header).
    pub retry_after: u64,
    /// `active`, `revoked` or `expired`: a certificate that is not active cannot be
    /// renewed; the host needs a reissue token.
    pub status: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    /// The domain's security level (hosts refresh the CRL every 1 h at very_high, 4 h at
    /// high, 8 h at medium).
    pub security_level: crate::models::kinds::SecurityLevel,
}

#[derive(Deserialize, ToSchema)]
pub struct NonceRequest {
    /// The host ID (a UUID: with or without `urn:uuid:` and dashes, any case).
    pub host_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct NonceResponse {
    /// 128 random bits, base64url; single use, bound to the host, 5 minutes.
    pub nonce: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A signed certificate and the CA that signed it.
#[derive(Serialize, ToSchema)]
pub struct CertificateResponse {
    #[schema(format = Uuid)]
    pub host_id: String,
    /// Upper-case hexadecimal.
    pub serial: String,
    /// PEM.
    pub certificate: String,
    /// PEM: the CA certificates between `certificate` and the root (empty when the root
    /// signed it), for a server to send after its own.
    pub chain: String,
    /// PEM: the trust bundle, every CA certificate hosts trust now (more than one during
    /// a CA migration).
    pub ca_certificate: String,
    #[schema(format = DateTime)]
    pub not_after: String,
}

fn created(e: Enrolled) -> HttpResponse {
    HttpResponse::Created().json(CertificateResponse {
        host_id: e.host_id,
        serial: e.serial,
        certificate: e.certificate,
        chain: e.chain,
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
    match super::json_body(req, &body) {
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

#[utoipa::path(
    post,
    path = "/api/v1/certificates",
    tag = "hosts",
    summary = "Request a certificate with a CSR (and a token, unless the security level lets the host in)",
    request_body = CertificateRequest,
    responses(
        (status = 201, description = "The certificate", body = CertificateResponse),
        (status = 401, description = "A token is required at this security level", body = crate::web::errors::ErrorBody),
        (status = 409, description = "The host has already had a certificate", body = crate::web::errors::ErrorBody),
        (status = 422, description = "A token or name the rules refuse", body = crate::web::errors::ErrorBody),
    )
)]
async fn request_certificate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: CertificateRequest = json_body(&req, &ctx, body, "request").await?;
    let request = EnrollRequest {
        hostname: body.hostname,
        csr: body.csr,
        token: body.token,
        peer: req.peer_addr().map(|a| a.ip()),
    };
    let enrolled = web::block(move || enroll::enroll(&ctx, &request)).await??;
    Ok(created(enrolled))
}

#[utoipa::path(
    post,
    path = "/api/v1/certificates/renew",
    tag = "hosts",
    summary = "Renew with a CSR for the key of the active certificate (or a new key and a proof by the current one), carrying a fresh nonce in its challengePassword attribute",
    request_body = RenewRequest,
    responses(
        (status = 201, description = "The renewed certificate", body = CertificateResponse),
        (status = 409, description = "No active certificate to renew (revoked or expired), or renewed at the same moment", body = crate::web::errors::ErrorBody),
        (status = 403, description = "A CSR for another key without a valid proof by the current key, or with another host's nonce", body = crate::web::errors::ErrorBody),
        (status = 422, description = "An unknown, used or expired nonce", body = crate::web::errors::ErrorBody),
        (status = 429, description = "Before the renewal interval is over", body = crate::web::errors::ErrorBody),
    )
)]
async fn renew_certificate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: RenewRequest = json_body(&req, &ctx, body, "renew").await?;
    let peer = req.peer_addr().map(|a| a.ip());
    let host_id = crate::names::host_key(&body.host_id);
    let enrolled =
        web::block(move || renewal::renew(&ctx, &host_id, &body.csr, body.proof.as_deref(), peer))
            .await??;
    Ok(created(enrolled))
}

#[utoipa::path(
    get,
    path = "/api/v1/certificates/{serial}/renewal-info",
    tag = "hosts",
    summary = "When to renew a certificate: the suggested window (now when revoked or marked for renewal)",
    params(("serial" = String, Path, description = "The certificate's serial, hexadecimal")),
    responses(
        (status = 200, description = "The window", body = RenewalInfoResponse),
        (status = 400, description = "Not a hexadecimal serial", body = crate::web::errors::ErrorBody),
        (status = 404, description = "No host certificate with this serial", body = crate::web::errors::ErrorBody),
    )
)]
async fn renewal_info(
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let serial = serial.into_inner();
    let info = web::block(move || renewal::renewal_info(&ctx, &serial)).await??;
    let at = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(HttpResponse::Ok()
        .insert_header(("Retry-After", info.retry_after.to_string()))
        .json(RenewalInfoResponse {
            serial: info.serial,
            start: at(info.start),
            end: at(info.end),
            retry_after: info.retry_after,
            status: info.status.into(),
            not_after: at(info.not_after),
            security_level: info.security_level,
        }))
}

#[utoipa::path(
    post,
    path = "/api/v1/certificates/renew/nonce",
    tag = "hosts",
    summary = "A single-use nonce (5 minutes) for the host's next renewal",
    request_body = NonceRequest,
    responses((status = 201, description = "The nonce", body = NonceResponse))
)]
async fn renewal_nonce(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let body: NonceRequest = json_body(&req, &ctx, body, "renew_nonce").await?;
    let host_id = crate::names::host_key(&body.host_id);
    let nonce = web::block(move || renewal::new_nonce(&ctx, &host_id)).await??;
    Ok(HttpResponse::Created().json(NonceResponse {
        nonce: nonce.value,
        expires_at: nonce.expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
}

async fn unknown(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if let Some(allow) = super::allowed_methods(req.path()) {
        return Err(super::method_not_allowed(&req, allow));
    }
    Err(ApiError(AppError::NotFound(format!(
        "there is no API route {} {}; see /api/v1/openapi.json",
        req.method(),
        req.path()
    )))
    .into())
}
