//! Liveness (`/healthz`), readiness (`/readyz`) and the Prometheus scrape (`/metrics`),
//! and the middleware that times every request for it.

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use crate::config::Cidr;
use crate::error::AppError;
use crate::services::health::Readiness;
use crate::services::{self, Ctx};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Who may read `/metrics`: a client that sends the bearer token, or one whose address is
/// in the allow-list (the client address as `--trusted-proxy` makes it).
#[derive(Clone, Debug, Default)]
pub struct MetricsAccess {
    pub token: Option<String>,
    pub allow: Vec<Cidr>,
}

impl MetricsAccess {
    fn check(&self, req: &HttpRequest) -> Result<(), AppError> {
        if let Some(expected) = &self.token {
            let sent = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(super::admin_api::bearer_key)
                .map(str::trim);
            if let Some(sent) = sent {
                if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
                    return Ok(());
                }
                return Err(AppError::Unauthorized(
                    "the metrics token is not valid: send the token of --metrics-token-file as 'Authorization: Bearer <token>'".into(),
                ));
            }
        }
        let client: Option<IpAddr> = super::auth::client_address(req).parse().ok();
        if client.is_some_and(|a| self.allow.iter().any(|n| n.contains(a))) {
            return Ok(());
        }
        Err(if self.token.is_some() {
            AppError::Unauthorized(
                "/metrics needs 'Authorization: Bearer <token>' (the token of --metrics-token-file) from this address".into(),
            )
        } else {
            AppError::Forbidden(
                "this address may not read /metrics: add it with --metrics-allow, or set a token with --metrics-token-file".into(),
            )
        })
    }
}

/// The process answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Live {
    /// Always `ok`.
    status: &'static str,
    version: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "public", summary = "Liveness: the process answers HTTP (nothing else is checked; see /readyz)",
    responses((status = 200, description = "The process answers", body = Live)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Live {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "public", summary = "Readiness: the database answers, the signing CA's key answers, every published CRL is within its validity",
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A check failed: which one, and why", body = Readiness)))]
pub async fn readyz(ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let r = web::block(move || services::health::readiness(&ctx)).await?;
    Ok(if r.ready() {
        HttpResponse::Ok().json(r)
    } else {
        HttpResponse::ServiceUnavailable().json(r)
    })
}

#[utoipa::path(get, path = "/metrics", tag = "public", summary = "Prometheus metrics (text format)", description = "For a client from a --metrics-allow network (default loopback), or one that sends 'Authorization: Bearer <token>' with the token of --metrics-token-file (not an API key).",
    responses((status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "A token is configured and was not sent, or is wrong", body = crate::web::errors::ErrorBody),
        (status = 403, description = "The address is not allowed and no token is configured", body = crate::web::errors::ErrorBody)))]
pub async fn metrics(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    access: web::Data<MetricsAccess>,
) -> Result<HttpResponse, ApiError> {
    access.check(&req)?;
    let gauges = web::block(move || services::overview::gauges(&ctx)).await??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&gauges)))
}

/// Times each request by the route it matched (its pattern, so that the label set stays
/// as small as the route table); requests that matched none share one label.
pub async fn timed(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    // Extension methods are any token a client likes: they share one label.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    crate::metrics::observe_request(&route, &method, started.elapsed().as_secs_f64());
    Ok(res)
}
