//! ACME's HTTP side (RFC 8555 §7): every answer carries a fresh `Replay-Nonce` and the
//! directory as `Link: rel="index"`; every refusal is `application/problem+json`. The rules
//! are in `services::acme`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::acme::{Problem, ProblemKind};
use crate::services::acme::{self as service, Answer, Body, Incoming, Urls};
use crate::services::Ctx;

/// The ACME routes, for the 405 answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/acme/directory"),
    ("get", "/acme/new-nonce"),
    ("post", "/acme/new-nonce"),
    ("post", "/acme/new-account"),
    ("post", "/acme/new-order"),
    ("post", "/acme/revoke-cert"),
    ("post", "/acme/key-change"),
    ("post", "/acme/account/{id}"),
    ("post", "/acme/account/{id}/orders"),
    ("post", "/acme/order/{id}"),
    ("post", "/acme/order/{id}/finalize"),
    ("post", "/acme/authz/{id}"),
    ("post", "/acme/challenge/{id}/{kind}"),
    ("post", "/acme/cert/{serial}"),
    ("get", "/acme/renewal-info/{cert_id}"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/acme")
            .route("/directory", web::get().to(directory))
            .route("/new-nonce", web::get().to(new_nonce))
            .route("/new-nonce", web::post().to(new_nonce))
            .route("/new-account", web::post().to(new_account))
            .route("/new-order", web::post().to(new_order))
            .route("/revoke-cert", web::post().to(revoke_cert))
            .route("/key-change", web::post().to(key_change))
            .route("/account/{id}", web::post().to(account))
            .route("/account/{id}/orders", web::post().to(account_orders))
            .route("/order/{id}", web::post().to(order))
            .route("/order/{id}/finalize", web::post().to(finalize))
            .route("/authz/{id}", web::post().to(authz))
            .route("/challenge/{id}/{kind}", web::post().to(challenge))
            .route("/cert/{serial}", web::post().to(certificate))
            .route("/renewal-info/{cert_id}", web::get().to(renewal_info))
            .default_service(web::to(unknown)),
    );
}

/// Marks a request that came as HEAD (the edges middleware serves it as GET): newNonce
/// answers HEAD with 200 and GET with 204 (RFC 8555 §7.2).
#[derive(Clone, Copy)]
pub struct WasHead;

/// Sends an answer with what every ACME answer carries: a fresh nonce, the directory link,
/// no caching.
async fn respond(
    ctx: &web::Data<Ctx>,
    mut response: actix_web::HttpResponseBuilder,
    body: Option<(String, &'static str)>,
) -> HttpResponse {
    // A nonce is made without the database (see `service::new_nonce`).
    response.insert_header(("Replay-Nonce", service::new_nonce(ctx)));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response.append_header((
        header::LINK,
        format!("<{}>;rel=\"index\"", Urls::new(ctx).directory()),
    ));
    match body {
        Some((text, content_type)) => response.content_type(content_type).body(text),
        None => response.finish(),
    }
}

async fn answer(ctx: &web::Data<Ctx>, result: Result<Answer, Problem>) -> HttpResponse {
    match result {
        Ok(a) => {
            let mut r =
                HttpResponse::build(StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK));
            if let Some(l) = &a.location {
                r.insert_header((header::LOCATION, l.clone()));
            }
            for (url, rel) in &a.links {
                r.append_header((header::LINK, format!("<{url}>;rel=\"{rel}\"")));
            }
            if let Some(s) = a.retry_after {
                r.insert_header((header::RETRY_AFTER, s.to_string()));
            }
            let body = match a.body {
                Body::Json(v) => Some((v.to_string(), "application/json")),
                Body::Pem(p) => Some((p, "application/pem-certificate-chain")),
                Body::Empty => None,
            };
            respond(ctx, r, body).await
        }
        Err(p) => {
            let mut r = HttpResponse::build(
                StatusCode::from_u16(p.kind.status()).unwrap_or(StatusCode::BAD_REQUEST),
            );
            if let Some(location) = &p.location {
                r.insert_header((header::LOCATION, location.clone()));
            }
            let body = (p.to_json().to_string(), "application/problem+json");
            respond(ctx, r, Some(body)).await
        }
    }
}

async fn directory(ctx: web::Data<Ctx>) -> HttpResponse {
    let c = ctx.clone();
    let result = web::block(move || service::directory(&c))
        .await
        .unwrap_or_else(|e| Err(crate::error::AppError::from(e).into()))
        .map(|v| Answer {
            status: 200,
            body: Body::Json(v),
            location: None,
            links: Vec::new(),
            retry_after: None,
        });
    answer(&ctx, result).await
}

async fn new_nonce(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    let status = if req.extensions().get::<WasHead>().is_some()
        || req.method() == actix_web::http::Method::POST
    {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    respond(&ctx, HttpResponse::build(status), None).await
}

/// Reads the JWS body: `application/jose+json` (RFC 8555 §6.2), within the body limit.
fn incoming(ctx: &Ctx, req: &HttpRequest, body: &super::Body) -> Result<Incoming, Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/jose+json") {
        return Err(Problem::new(
            ProblemKind::WrongMediaType,
            format!(
                "send the JWS with Content-Type: application/jose+json (not '{}')",
                content_type.chars().take(80).collect::<String>()
            ),
        ));
    }
    let bytes = super::read_body(body, "JWS")?;
    Ok(Incoming {
        body: bytes.to_vec(),
        url: format!("{}{}", ctx.site.public_url, req.path()),
        peer: req.peer_addr().map(|a| a.ip()),
    })
}

/// Runs one ACME POST: reads the body, calls `f` off the async threads, answers.
async fn post<F>(req: HttpRequest, ctx: web::Data<Ctx>, body: super::Body, f: F) -> HttpResponse
where
    F: FnOnce(&Ctx, &Incoming) -> Result<Answer, Problem> + Send + 'static,
{
    let result = match incoming(&ctx, &req, &body) {
        Ok(inc) => {
            let c = ctx.clone();
            web::block(move || f(&c, &inc))
                .await
                .unwrap_or_else(|e| Err(crate::error::AppError::from(e).into()))
        }
        Err(p) => Err(p),
    };
    answer(&ctx, result).await
}

/// The handler of a POST resource: `service::$f(ctx, incoming)`, or with the one path
/// segment that names the resource, `service::$f(ctx, incoming, id)`.
macro_rules! acme_post {
    ($name:ident, $f:path) => {
        async fn $name(req: HttpRequest, ctx: web::Data<Ctx>, body: super::Body) -> HttpResponse {
            post(req, ctx, body, $f).await
        }
    };
    ($name:ident, $f:path, by_id) => {
        async fn $name(
            req: HttpRequest,
            ctx: web::Data<Ctx>,
            body: super::Body,
            id: web::Path<String>,
        ) -> HttpResponse {
            let id = id.into_inner();
            post(req, ctx, body, move |c, i| $f(c, i, &id)).await
        }
    };
}

acme_post!(new_account, service::new_account);
acme_post!(new_order, service::new_order);
acme_post!(revoke_cert, service::revoke);
acme_post!(key_change, service::key_change);
acme_post!(account, service::account, by_id);
acme_post!(account_orders, service::account_orders, by_id);
acme_post!(order, service::order, by_id);
acme_post!(finalize, service::finalize, by_id);
acme_post!(authz, service::authz, by_id);
acme_post!(certificate, service::certificate, by_id);

async fn challenge(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    body: super::Body,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, kind) = path.into_inner();
    post(req, ctx, body, move |c, i| {
        service::challenge(c, i, &id, &kind)
    })
    .await
}

async fn renewal_info(ctx: web::Data<Ctx>, cert_id: web::Path<String>) -> HttpResponse {
    let c = ctx.clone();
    let cert_id = cert_id.into_inner();
    let result = web::block(move || service::renewal_info(&c, &cert_id))
        .await
        .unwrap_or_else(|e| Err(crate::error::AppError::from(e).into()));
    answer(&ctx, result).await
}

/// Anything else under /acme: a problem document (405 with `Allow` for a known path).
async fn unknown(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    let path = req.path();
    if let Some(allow) = super::allowed_methods(path) {
        let p = Problem::new(
            ProblemKind::WrongMethod,
            format!("{} is not served at {path}; use {allow}", req.method()),
        );
        let mut r = answer(&ctx, Err(p)).await;
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    answer(&ctx, Err(Problem::not_found("ACME resource"))).await
}
