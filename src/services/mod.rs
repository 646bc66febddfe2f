//! The rules. An operation commits its changes and their audit events in one transaction;
//! a refusal is audited on its own, since it must outlive the work it stopped. Nothing here
//! reads a request or renders a response: errors are `AppError`s, which `web` turns into
//! pages and JSON. Functions block: call them from `web::block`.

pub mod acme;
pub mod api_keys;
pub mod audit;
pub mod audit_log;
pub mod backup;
pub mod ca_migration;
pub mod certificates;
pub mod checklist;
pub mod enroll;
pub mod health;
pub mod hosts;
pub mod maintenance;
pub mod mappings;
pub mod notifications;
pub mod notify_mail;
pub mod ocsp;
pub mod overview;
pub mod pki;
pub mod renewal;
pub mod settings;
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
    /// Whether browsers reach the console over TLS.
    pub tls: bool,
    /// How far this process has verified the audit chain (see `audit_log::chain`).
    pub audit_verified: std::sync::Arc<std::sync::Mutex<Option<audit::Verified>>>,
    /// Where this server is reached, and the names that are its own.
    pub site: std::sync::Arc<Site>,
}

/// How the outside world reaches this server.
#[derive(Clone, Debug, Default)]
pub struct Site {
    /// The public base URL (`--public-url`, default from `--listen`/`--tls-name`), without a
    /// trailing slash: certificates point at `{public_url}/crl` (CRL distribution point)
    /// and `{public_url}/ca.crt` (authority information access).
    pub public_url: String,
    /// The server's own names (every `--tls-name`, the machine's host name, `localhost`):
    /// reserved, never certified for a host.
    pub server_names: Vec<String>,
    /// Name lookups for security level medium (cached, with a timeout, off the writer).
    pub resolver: std::sync::Arc<crate::names::Resolver>,
}

/// Who is acting: a logged-in user, or the owner of the API key a script presented. Hosts
/// on the host API are not actors: they are named by their host ID in the audit trail.
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

impl FormError {
    /// A result in which a conflict (a name already taken) belongs beside `field`.
    pub fn conflict_on<T>(
        field: &'static str,
        result: Result<T, crate::error::AppError>,
    ) -> Result<T, FormError> {
        match result {
            Err(crate::error::AppError::Conflict(m)) => {
                Err(FormError::Conflict(FieldErrors::from([(field, m)])))
            }
            other => other.map_err(FormError::Other),
        }
    }
}

impl<E: Into<crate::error::AppError>> From<E> for FormError {
    fn from(e: E) -> Self {
        FormError::Other(e.into())
    }
}

/// A connection for an action that needs the role `needed`: refused (and the refusal
/// audited) for a lower role, as `require` does.
pub fn connect_as(
    ctx: &Ctx,
    actor: &Actor,
    needed: Role,
    category: crate::models::kinds::AuditCategory,
    action: &'static str,
    target: &str,
) -> Result<crate::db::PooledConn, crate::error::AppError> {
    let mut conn = crate::db::get(&ctx.pool)?;
    require(&mut conn, actor, needed, category, action, target)?;
    Ok(conn)
}

/// Refuses an action to a role below `needed`; the refusal is an audit event.
pub fn require(
    conn: &mut crate::db::DbConn,
    actor: &Actor,
    needed: Role,
    category: crate::models::kinds::AuditCategory,
    action: &'static str,
    target: &str,
) -> Result<(), crate::error::AppError> {
    if actor.role.at_least(needed) {
        return Ok(());
    }
    let target: String = target.chars().take(200).collect();
    audit::record_alone(
        conn,
        &audit::Event::new(category, action, &actor.username, &target)
            .describe(format!(
                "permission denied: {action} needs the role {}, {} has {}",
                needed.key(),
                actor.username,
                actor.role.key()
            ))
            .failed(),
    )?;
    Err(crate::error::AppError::Forbidden(format!(
        "your role ({}) may not do this: it needs {}; ask an administrator",
        actor.role.key(),
        needed.key()
    )))
}
