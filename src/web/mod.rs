//! The HTTP side: routes grouped by area. A handler parses its input (`CsrfForm<T>`, a
//! typed JSON body), calls one service function in `web::block`, and renders. A changing
//! admin API route first asks for the role (`services::connect_as`), so that a viewer is
//! refused before the body is read; nothing here holds a database connection.

pub mod acme;
pub mod admin_api;
pub mod api;
pub mod api_keys;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod ca;
pub mod certificates;
pub mod errors;
pub mod forms;
pub mod health;
pub mod hosts;
pub mod listing;
pub mod login;
pub mod notifications;
pub mod ocsp;
pub mod openapi;
pub mod overview;
pub mod public;
pub mod settings;
pub mod tokens;
pub mod users;
pub mod view;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::error::AppError;
use errors::ApiError;

/// Largest request body accepted (forms and JSON); more is a 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body as actix read it.
pub type Body = Result<web::Bytes, actix_web::Error>;

/// The body's bytes: over the limit is a 413, unreadable a 400 naming `what` was sent.
pub fn read_body<'a>(body: &'a Body, what: &str) -> Result<&'a web::Bytes, AppError> {
    body.as_ref().map_err(|e| {
        if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::BadRequest(format!("the {what} could not be read: {e}"))
        }
    })
}

/// Longest request target (path and query) accepted; more is a 414. Every input that can
/// be long (CSRs, lists of names) travels in a body, so 8 KiB is generous.
pub const URI_LIMIT: usize = 8 * 1024;

/// A JSON document, or a 400 that says what is wrong with it and names the field.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // A JSON string can hold NUL only escaped; no value this server keeps may contain one.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        return Err(AppError::nul_character());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            // At the top: bad syntax, or a JSON value of the wrong kind (an array, a string).
            let hint = if inner.is_data() {
                "send a JSON object such as {\"name\": ...}"
            } else {
                "check the JSON syntax"
            };
            AppError::BadRequest(format!("the JSON body is not valid: {inner}; {hint}"))
        } else {
            AppError::BadRequest(format!("the JSON body is not valid: {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| AppError::BadRequest(format!("the JSON body is not valid: {e}")))?;
    Ok(value)
}

/// A JSON request body: it must say it is JSON (a 415 otherwise), fit the limit (413) and
/// parse into `T` (400 naming the field).
pub fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &Body,
) -> Result<T, AppError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(AppError::UnsupportedMediaType(format!(
            "send the body as JSON with Content-Type: application/json (not '{}')",
            content_type.chars().take(80).collect::<String>()
        )));
    }
    let bytes = read_body(body, "body")?;
    // serde reads a struct from a JSON array too (by position): every body here is an
    // object, so anything else is refused before it can be read that way.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::BadRequest(
            "the JSON body is not valid: send a JSON object such as {\"name\": ...}".into(),
        ));
    }
    parse_json(bytes)
}

/// Routes served outside `/api` that answer anything but HTML: the public CA and CRL files.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/ca.pem"),
    ("get", "/ca.crt"),
    ("get", "/crl"),
    ("get", "/crl.pem"),
    ("get", "/crl/{issuer}"),
    ("get", "/ca/{issuer}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/ocsp"),
    ("get", "/ocsp/{request}"),
];

/// The console's pages and assets (registered by their modules), so that a wrong method on
/// one is a 405 naming the right ones. A test checks each entry is served; a page missing
/// here answers a wrong method with a 404 instead.
pub const PAGE_ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/login"),
    ("post", "/login"),
    ("post", "/logout"),
    ("get", "/static/style.css"),
    ("get", "/static/app.js"),
    ("get", "/static/favicon.svg"),
    ("get", "/favicon.ico"),
    ("get", "/security/tokens"),
    ("post", "/security/tokens"),
    ("get", "/security/tokens/new"),
    ("post", "/security/tokens/delete"),
    ("post", "/security/tokens/cleanup"),
    ("get", "/security/tokens/{name}"),
    ("post", "/security/tokens/{name}/show"),
    ("post", "/security/tokens/{name}/delete"),
    ("get", "/security/certificates"),
    ("get", "/security/certificates.csv"),
    ("get", "/security/certificates/{serial}"),
    ("get", "/security/certificates/{serial}/pem"),
    ("post", "/security/certificates/{serial}/revoke"),
    ("get", "/security/hosts"),
    ("post", "/security/hosts"),
    ("post", "/security/hosts/renew-all"),
    ("get", "/security/hosts/{host_id}"),
    ("post", "/security/hosts/{host_id}/revoke"),
    ("post", "/security/hosts/{host_id}/reissue-token"),
    ("post", "/security/hosts/{host_id}/auto-reissue"),
    ("post", "/security/hosts/{host_id}/allow-renewal"),
    (
        "post",
        "/security/hosts/{host_id}/acme-accounts/{account_id}/deactivate",
    ),
    ("post", "/security/hosts/{host_id}/mappings"),
    (
        "post",
        "/security/hosts/{host_id}/mappings/{name}/{decision}",
    ),
    ("get", "/security/host-mappings"),
    ("post", "/security/host-mappings/decide"),
    ("get", "/security/ca"),
    ("post", "/security/ca/migration/initiate"),
    ("post", "/security/ca/migration/{step}"),
    ("get", "/security/ca/migration/pending-trust.csv"),
    ("get", "/security/ca/migration/pending-renewal.csv"),
    ("get", "/security/settings"),
    ("get", "/security/notifications"),
    ("post", "/security/notifications"),
    ("post", "/security/notifications/digest"),
    ("get", "/security/notifications/{id}/edit"),
    ("post", "/security/notifications/{id}/edit"),
    ("post", "/security/notifications/{id}/{action}"),
    ("post", "/security/settings"),
    ("get", "/security/audit"),
    ("get", "/security/audit.csv"),
    ("get", "/security/audit/{id}"),
    ("get", "/admin/users"),
    ("post", "/admin/users"),
    ("post", "/admin/users/{username}/role"),
    ("post", "/admin/users/{username}/disable"),
    ("post", "/admin/users/{username}/enable"),
    ("post", "/admin/users/{username}/password"),
    ("get", "/account/password"),
    ("post", "/account/password"),
    ("get", "/account/api-keys"),
    ("post", "/account/api-keys"),
    ("post", "/account/api-keys/{name}/revoke"),
    ("get", "/admin/api-keys"),
    ("post", "/admin/api-keys/{id}/revoke"),
];

/// The methods served at `path`, from the route tables of the API, the public files and
/// the pages;
/// `None` when no route there has this path. GET brings HEAD with it.
pub fn allowed_methods(path: &str) -> Option<String> {
    let mut methods: Vec<&str> = api::ROUTES
        .iter()
        .chain(admin_api::ROUTES)
        .chain(PUBLIC_ROUTES)
        .chain(PAGE_ROUTES)
        .chain(acme::ROUTES)
        .filter(|(_, pattern)| ResourceDef::new(*pattern).is_match(path))
        .map(|(m, _)| *m)
        .collect();
    if methods.is_empty() {
        return None;
    }
    if methods.contains(&"get") {
        methods.push("head");
    }
    methods.sort();
    methods.dedup();
    Some(
        methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The HTTP edges every route shares: an over-long address is a 414 before anything reads
/// it, and HEAD is answered wherever GET is (actix matches a GET route for GET only; the
/// server leaves out the body of an answer to HEAD).
pub async fn edges(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target > URI_LIMIT {
        let err = AppError::UriTooLong(URI_LIMIT);
        let response = if is_api(req.path()) {
            actix_web::ResponseError::error_response(&ApiError(err))
        } else {
            actix_web::ResponseError::error_response(&err)
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(acme::WasHead);
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// An error as the request's kind of client reads it: JSON under `/api`, HTML elsewhere.
fn in_kind(req: &HttpRequest, err: AppError) -> actix_web::Error {
    if is_api(req.path()) {
        ApiError(err).into()
    } else {
        err.into()
    }
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(BODY_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|e, req| {
            in_kind(
                req,
                AppError::BadRequest(format!("the query string is not valid: {e}")),
            )
        }))
        .app_data(web::PathConfig::default().error_handler(|e, req| {
            in_kind(
                req,
                AppError::BadRequest(format!("the address is not valid: {e}")),
            )
        }))
        .route("/", web::get().to(overview::home))
        .configure(assets::routes)
        .configure(login::routes)
        .configure(public::routes)
        .configure(health::routes)
        .configure(ocsp::routes)
        .configure(api::routes)
        .configure(acme::routes)
        .configure(tokens::routes)
        .configure(certificates::routes)
        .configure(hosts::routes)
        .configure(ca::routes)
        .configure(settings::routes)
        .configure(notifications::routes)
        .configure(audit::routes)
        .configure(users::routes)
        .configure(api_keys::routes)
        .default_service(web::to(not_found));
}

/// Refuses a NUL character anywhere in the address (`%00`), before any handler: no value
/// this server keeps may contain one, and PostgreSQL cannot store it.
pub async fn refuse_nul(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if target.contains("%00") {
        let e = AppError::nul_character();
        return Err(if is_api(req.path()) {
            errors::ApiError(e).into()
        } else {
            e.into()
        });
    }
    next.call(req).await
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let path = req.path();
    if let Some(allow) = allowed_methods(path) {
        return Err(method_not_allowed(&req, allow));
    }
    // A client of any API version expects JSON, even for a version this server lacks.
    if is_api(path) {
        return Err(errors::ApiError(AppError::NotFound(format!(
            "there is no API resource at {path}; this server speaks /api/v1 (see /api/v1/openapi.json)"
        )))
        .into());
    }
    Err(AppError::NotFound(format!("there is no page at {path}")).into())
}

/// A 405 naming the methods that are served at this path: JSON under `/api`, the HTML
/// error page elsewhere.
pub fn method_not_allowed(req: &HttpRequest, allow: String) -> actix_web::Error {
    let err = AppError::MethodNotAllowed {
        // An answer to HEAD has no body, so the GET a HEAD became is never shown.
        message: format!(
            "{} is not served at {}; use {allow}",
            req.method(),
            req.path()
        ),
        allow,
    };
    in_kind(req, err)
}
