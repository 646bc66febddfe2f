//! One error type for the whole application. Pages render it as an HTML error page,
//! the JSON API as `{"error": CODE, "message": TEXT}` (see `ApiError`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    /// No session: pages send the browser to the login form.
    #[error("please log in")]
    Unauthenticated,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body is too large")]
    TooLarge,
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A stored row holds a value this version does not know (edited by hand, or written by
    /// a newer version). Not the client's fault, so a 500; but the message names the value,
    /// so that an administrator can find and correct the row.
    #[error("a stored record cannot be read: {0}; someone may have edited the database: correct the row or restore a backup")]
    StoredValue(String),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthenticated => "unauthenticated",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Csrf => "csrf_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::TooLarge => "payload_too_large",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
            AppError::StoredValue(_) => "stored_value_unknown",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated | AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::StoredValue(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a user is told. Internal details go to the log, never to the client.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "something went wrong on the server; the error has been logged".to_string()
            }
            other => other.to_string(),
        }
    }

    fn log(&self) {
        match self {
            AppError::Internal(detail) => log::error!("internal error: {detail}"),
            AppError::StoredValue(_) => log::error!("{self}"),
            _ => {}
        }
    }
}

impl From<DieselError> for AppError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => AppError::NotFound("not found".into()),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::Conflict(format!("already exists ({})", info.message()))
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Unavailable("the database is busy or restarting; try again".into())
            }
            // PostgreSQL refuses NUL characters in text: the input was bad, not the server.
            DieselError::DatabaseError(_, info)
                if info.message().contains("invalid byte sequence")
                    || info.message().contains("0x00") =>
            {
                AppError::BadRequest(
                    "the text contains a character that cannot be stored (NUL); remove it".into(),
                )
            }
            DieselError::DatabaseError(_, info) if is_transient(info.message()) => {
                AppError::Unavailable("the database is busy or restarting; try again".into())
            }
            DieselError::DeserializationError(e) => match unknown_key(&*e) {
                Some(detail) => AppError::StoredValue(detail),
                None => AppError::Internal(format!("database: {}", deserialization_detail(&*e))),
            },
            other => AppError::Internal(format!("database: {other}")),
        }
    }
}

/// The column and value of a stored text that is none of its type's keys, if that is what
/// failed to load. Diesel wraps a column's error in one that names only the column.
fn unknown_key(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<String> {
    use crate::models::kinds::UnknownKey;
    if let Some(k) = e.downcast_ref::<UnknownKey>() {
        return Some(k.to_string());
    }
    let field = e.downcast_ref::<diesel::result::DeserializeFieldError>()?;
    let k = field.error.downcast_ref::<UnknownKey>()?;
    Some(match &field.field_name {
        Some(name) => format!("column {name}: {k}"),
        None => k.to_string(),
    })
}

/// A deserialization error with its cause: diesel's wrapper names only the column.
fn deserialization_detail(e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    match e.downcast_ref::<diesel::result::DeserializeFieldError>() {
        Some(field) => format!("{e}: {}", field.error),
        None => e.to_string(),
    }
}

fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database is locked")
        || m.contains("terminating connection")
        || m.contains("server closed the connection")
        || m.contains("connection")
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        AppError::Unavailable("the server is overloaded; try again".into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: crate::web::view::Page,
    status: u16,
    title: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        if let AppError::Unauthenticated = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        self.page_response(crate::web::view::Page::bare(title))
    }
}

impl AppError {
    /// The HTML error page inside `page`'s layout: a bare one here, one with the console's
    /// navigation when `web::view::keep_navigation` knows who is logged in.
    pub fn page_response(&self, page: crate::web::view::Page) -> HttpResponse {
        let status = self.status();
        let body = ErrorPage {
            page,
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: crate::web::view::capitalised(&self.public_message()),
        }
        .render()
        .unwrap_or_else(|_| self.public_message());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}

/// The same error, rendered for scripts and hosts.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let mut response = HttpResponse::build(self.0.status());
        // RFC 9110 §11.6.1: a 401 names the scheme the client should use.
        if self.0.status() == StatusCode::UNAUTHORIZED {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(serde_json::json!({
            "error": self.0.code(),
            "message": self.0.public_message(),
        }))
    }
}
