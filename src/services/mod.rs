//! The rules. Each operation is one transaction with its audit event; nothing here knows
//! about HTTP. Functions block: call them from `web::block`.

pub mod audit;
pub mod certificates;
pub mod enroll;
pub mod hosts;
pub mod pki;
pub mod setup;
pub mod tokens;
pub mod users;

use std::path::PathBuf;

use crate::db::Pool;
use crate::models::user::Role;
use crate::secrets::TokenKey;

/// What every service needs: the database and the keys of the data directory.
#[derive(Clone)]
pub struct Ctx {
    pub pool: Pool,
    pub token_key: TokenKey,
    pub data_dir: PathBuf,
    pub pki: std::sync::Arc<pki::PkiState>,
    /// Group commit for the hot write path (enrollment).
    pub writer: std::sync::Arc<crate::db::group_commit::GroupWriter>,
}

/// Who is acting: a logged-in user, or a host (role `None`) on the enrollment API.
#[derive(Clone, Debug)]
pub struct Actor {
    pub username: String,
    pub role: Role,
}

/// Field-by-field problems with a submitted form, shown beside each field.
pub type FieldErrors = std::collections::BTreeMap<&'static str, String>;

/// A form that could not be saved: either its fields need fixing (re-render the form with
/// the messages) or the request failed for another reason.
#[derive(Debug)]
pub enum FormError {
    Invalid(FieldErrors),
    Conflict(FieldErrors),
    Other(crate::error::AppError),
}

impl<E: Into<crate::error::AppError>> From<E> for FormError {
    fn from(e: E) -> Self {
        FormError::Other(e.into())
    }
}
