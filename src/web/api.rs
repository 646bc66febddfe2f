//! The JSON API for hosts: enrollment and renewal.

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, AppError};
use crate::services::enroll::{self, EnrollRequest, Enrolled};
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(
                web::JsonConfig::default()
                    .limit(super::BODY_LIMIT)
                    .error_handler(json_error),
            )
            .route("/certificates", web::post().to(request_certificate))
            .route("/certificates/renew", web::post().to(renew_certificate)),
    );
}

/// A body that is not the JSON we expect gets a JSON answer that says what was wrong.
pub fn json_error(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let err = match &e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::TooLarge
        }
        JsonPayloadError::ContentType => {
            AppError::BadRequest("send the body as JSON with Content-Type: application/json".into())
        }
        JsonPayloadError::Deserialize(d) => {
            AppError::BadRequest(format!("the JSON body is not valid: {d}"))
        }
        other => AppError::BadRequest(format!("the body could not be read: {other}")),
    };
    ApiError(err).into()
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

async fn request_certificate(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: web::Json<CertificateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
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
    ctx: web::Data<Ctx>,
    body: web::Json<RenewBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let enrolled = web::block(move || enroll::renew(&ctx, &body.host_id, &body.csr)).await??;
    Ok(created(enrolled))
}
