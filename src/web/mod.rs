//! The HTTP side: routes grouped by area. A handler parses its input, calls one service
//! function in `web::block`, and renders.

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
pub mod hosts;
pub mod listing;
pub mod login;
pub mod openapi;
pub mod public;
pub mod settings;
pub mod tokens;
pub mod users;
pub mod view;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;

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

/// A JSON document, or a 400 that says what is wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // A JSON string can hold NUL only escaped; no value this server keeps may contain one.
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        return Err(AppError::nul_character());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("the JSON body is not valid: {e}")))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(BODY_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            AppError::BadRequest(format!("the query string is not valid: {e}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|e, _| {
            AppError::BadRequest(format!("the address is not valid: {e}")).into()
        }))
        .route("/", web::get().to(home))
        .configure(assets::routes)
        .configure(login::routes)
        .configure(public::routes)
        .configure(api::routes)
        .configure(tokens::routes)
        .configure(certificates::routes)
        .configure(hosts::routes)
        .configure(ca::routes)
        .configure(settings::routes)
        .configure(audit::routes)
        .configure(users::routes)
        .configure(api_keys::routes)
        .default_service(web::to(not_found));
}

async fn home() -> HttpResponse {
    view::redirect("/security/tokens")
}

/// Refuses a NUL character anywhere in the address (`%00`), before any handler: no value
/// this server keeps may contain one, and PostgreSQL cannot store it.
pub async fn refuse_nul(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let uri = req.uri().to_string();
    if uri.contains("%00") {
        let e = AppError::nul_character();
        let is_api = req.path() == "/api" || req.path().starts_with("/api/");
        return Err(if is_api {
            errors::ApiError(e).into()
        } else {
            e.into()
        });
    }
    next.call(req).await
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let path = req.path();
    // A client of any API version expects JSON, even for a version this server lacks.
    if path == "/api" || path.starts_with("/api/") {
        return Err(errors::ApiError(AppError::NotFound(format!(
            "there is no API resource at {path}; this server speaks /api/v1 (see /api/v1/openapi.json)"
        )))
        .into());
    }
    Err(AppError::NotFound(format!("there is no page at {path}")).into())
}
