//! One error type for the whole application, with the status class each case answers
//! with. It knows nothing of pages or JSON: `web::errors` renders it (an HTML error page
//! for pages, `{"error": CODE, "message": TEXT}` for the APIs). An internal error keeps
//! its cause for the log and never shows it to the client.

use actix_web::http::StatusCode;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What caused an internal error, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// A body sent as something other than JSON where JSON is expected.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The path exists, the method does not: carries the methods that do (`Allow`).
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: String },
    #[error("the address is longer than {0} bytes; send long inputs in a request body")]
    UriTooLong(usize),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Cause>,
    },
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
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::UriTooLong(_) => "uri_too_long",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal { .. } => "internal",
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
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal { .. } | AppError::StoredValue(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What a user is told. Internal details go to the log, never to the client.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal { .. } => {
                "something went wrong on the server; the error has been logged".to_string()
            }
            other => other.to_string(),
        }
    }

    /// As the answer goes out: an internal error is logged with its chain of causes; a
    /// refusal (a 4xx, the client's error) is counted by its code for `/metrics`.
    pub fn report(&self) {
        if self.status().is_client_error() {
            crate::metrics::refused(self.code());
        }
        if let AppError::Internal { context, source } = self {
            let mut line = format!("internal error: {context}");
            let mut cause: Option<&(dyn std::error::Error + 'static)> =
                source.as_deref().map(|e| e as _);
            while let Some(e) = cause {
                line.push_str(&format!(": {e}"));
                cause = e.source();
            }
            log::error!("{line}");
        } else if let AppError::StoredValue(_) = self {
            log::error!("{self}");
        }
    }

    /// A failure of the server itself, described by `context`.
    pub fn internal(context: impl Into<String>) -> Self {
        AppError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// A failure of the server itself: what it was doing, and what went wrong.
    pub fn internal_from(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        AppError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The database is unreachable, restarting or too busy: worth a retry.
    pub fn database_busy() -> Self {
        AppError::Unavailable("the database is busy or restarting; try again".into())
    }

    /// Text with a NUL character, which no stored value may hold (PostgreSQL refuses it).
    pub fn nul_character() -> Self {
        AppError::BadRequest(
            "the text contains a character that cannot be stored (NUL); remove it".into(),
        )
    }

    /// A row this transaction wrote or read a moment ago is gone.
    pub fn vanished(what: &str) -> Self {
        AppError::internal(format!("the {what} vanished inside its own transaction"))
    }
}

impl From<DieselError> for AppError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::NotFound => AppError::NotFound("not found".into()),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::Conflict(format!("already exists ({})", info.message()))
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => AppError::database_busy(),
            _ if crate::db::is_transient(&e) => AppError::database_busy(),
            DieselError::DeserializationError(inner) => match unknown_key(&**inner) {
                Some(detail) => AppError::StoredValue(detail),
                None => {
                    AppError::internal(format!("database: {}", deserialization_detail(&**inner)))
                }
            },
            _ => AppError::internal_from("database", e),
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

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        AppError::Unavailable("the server is overloaded; try again".into())
    }
}
