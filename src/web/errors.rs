//! How an `AppError` reaches a client: an HTML error page for the console (a redirect to
//! the login form when there is no session), `{"error": CODE, "message": TEXT}` for the
//! APIs (`ApiError`). The only place errors become responses.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

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
        self.report();
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
        let mut response = HttpResponse::build(status);
        if let AppError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.content_type("text/html; charset=utf-8").body(body)
    }
}

/// What every JSON error answer is: a stable code for programs, a sentence for people.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code such as `bad_request`, `unauthorized`, `not_found`.
    pub error: &'static str,
    /// What was wrong and what to do about it.
    pub message: String,
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
        self.0.report();
        let mut response = HttpResponse::build(self.0.status());
        // RFC 9110 §11.6.1: a 401 names the scheme the client should use.
        if self.0.status() == StatusCode::UNAUTHORIZED {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let AppError::MethodNotAllowed { allow, .. } = &self.0 {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.json(ErrorBody {
            error: self.0.code(),
            message: self.0.public_message(),
        })
    }
}
