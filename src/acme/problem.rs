//! The problem documents (RFC 7807, `application/problem+json`) every ACME refusal is, with
//! the RFC 8555 §6.7 error types. A `Problem` knows its type and its message; the status
//! it is sent with is decided by `status()`, the one place that maps types to HTTP.

use crate::error::AppError;

/// The RFC 8555 §6.7 error types this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    AccountDoesNotExist,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    ExternalAccountRequired,
    Incorrect,
    Malformed,
    OrderNotReady,
    RejectedIdentifier,
    ServerInternal,
    Unauthorized,
    UnsupportedIdentifier,
    /// Not an RFC 8555 type: a URL that names nothing (sent as `malformed`, status 404).
    NotFound,
    /// Not an RFC 8555 type: the new key of a key change is another account's (sent as
    /// `malformed`, status 409, with that account's URL).
    KeyInUse,
    /// Not an RFC 8555 type: a body over the limit (`malformed`, 413).
    TooLarge,
    /// Not an RFC 8555 type: a body that is not `application/jose+json` (`malformed`, 415).
    WrongMediaType,
    /// Not an RFC 8555 type: a known URL asked with another method (`malformed`, 405).
    WrongMethod,
    /// The database is busy: try again (`serverInternal`, 503).
    Busy,
}

impl ProblemKind {
    /// The `type` member's last part (after `urn:ietf:params:acme:error:`).
    pub fn name(self) -> &'static str {
        use ProblemKind::*;
        match self {
            AccountDoesNotExist => "accountDoesNotExist",
            AlreadyRevoked => "alreadyRevoked",
            BadCsr => "badCSR",
            BadNonce => "badNonce",
            BadRevocationReason => "badRevocationReason",
            BadSignatureAlgorithm => "badSignatureAlgorithm",
            Connection => "connection",
            ExternalAccountRequired => "externalAccountRequired",
            Incorrect => "incorrectResponse",
            Malformed | NotFound | KeyInUse | TooLarge | WrongMediaType | WrongMethod => {
                "malformed"
            }
            OrderNotReady => "orderNotReady",
            RejectedIdentifier => "rejectedIdentifier",
            ServerInternal | Busy => "serverInternal",
            Unauthorized => "unauthorized",
            UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// The HTTP status the problem is sent with.
    pub fn status(self) -> u16 {
        use ProblemKind::*;
        match self {
            Unauthorized | ExternalAccountRequired => 403,
            NotFound => 404,
            KeyInUse => 409,
            TooLarge => 413,
            WrongMediaType => 415,
            WrongMethod => 405,
            ServerInternal => 500,
            Busy => 503,
            _ => 400,
        }
    }
}

/// One refusal, with what was wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({detail})", kind.name())]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    /// Per-identifier problems (a `rejectedIdentifier` for several names).
    pub subproblems: Vec<(String, Problem)>,
    /// Another resource the answer points at (the existing account of a key change).
    pub location: Option<String>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            subproblems: Vec::new(),
            location: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::Unauthorized, detail)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(
            ProblemKind::NotFound,
            format!("there is no such {what} on this server; start again from /acme/directory"),
        )
    }

    /// The document: `type`, `detail`, `status` and any `subproblems` (RFC 8555 §6.7.1).
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind.name()),
            "detail": self.detail,
            "status": self.kind.status(),
        });
        if !self.subproblems.is_empty() {
            doc["subproblems"] = self
                .subproblems
                .iter()
                .map(|(name, p)| {
                    let mut sub = p.to_json();
                    sub["identifier"] = serde_json::json!({"type": "dns", "value": name});
                    sub
                })
                .collect();
        }
        doc
    }
}

impl From<super::jws::JwsError> for Problem {
    fn from(e: super::jws::JwsError) -> Problem {
        use super::jws::JwsError;
        let kind = match &e {
            JwsError::Malformed(_) => ProblemKind::Malformed,
            JwsError::BadAlgorithm(_) => ProblemKind::BadSignatureAlgorithm,
            JwsError::BadSignature(_) => ProblemKind::Unauthorized,
        };
        Problem::new(kind, e.to_string())
    }
}

/// The rules of enrollment speak `AppError`; an ACME client hears them as problems.
impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        let kind = match &e {
            AppError::BadRequest(_) | AppError::Conflict(_) => ProblemKind::Malformed,
            AppError::Unauthorized(_)
            | AppError::Forbidden(_)
            | AppError::Unprocessable(_)
            | AppError::Unauthenticated => ProblemKind::Unauthorized,
            AppError::NotFound(_) => ProblemKind::NotFound,
            AppError::TooLarge => ProblemKind::TooLarge,
            _ if e.status().as_u16() == 503 => ProblemKind::Busy,
            _ if e.status().is_client_error() => ProblemKind::Malformed,
            _ => {
                e.report();
                ProblemKind::ServerInternal
            }
        };
        Problem::new(kind, e.public_message())
    }
}

impl From<diesel::result::Error> for Problem {
    fn from(e: diesel::result::Error) -> Problem {
        Problem::from(AppError::from(e))
    }
}

impl From<crate::pki::PkiError> for Problem {
    fn from(e: crate::pki::PkiError) -> Problem {
        Problem::from(AppError::from(e))
    }
}
