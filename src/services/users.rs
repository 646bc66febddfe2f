//! Users: passwords (argon2id), login and the first administrator.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::audit::{self, Event};
use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::user::{NewUser, Role, User};

pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn hash_password(password: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A hash that matches no password, checked when the user does not exist so that an
/// unknown name takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that nobody has").unwrap_or_default())
}

/// Checks a username and password. A failure is an audit event and says nothing about
/// which of the two was wrong.
pub fn login(ctx: &Ctx, username: &str, password: &str, from: &str) -> Result<User, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let username = username.trim();
    let user = if username.is_empty() || username.len() > 64 || password.len() > MAX_PASSWORD_LEN {
        None
    } else {
        User::find_by_username(&mut conn, username)?
    };
    let ok = match &user {
        Some(u) => verify_password(&u.password_hash, password) && !u.disabled,
        None => {
            verify_password(decoy_hash(), password);
            false
        }
    };
    match user {
        Some(u) if ok => {
            db::write_tx(&mut conn, |c| {
                User::record_login(c, u.id, db::now())?;
                audit::record(
                    c,
                    &Event::new(audit::LOGIN, "login", &u.username, &u.username)
                        .describe(format!("logged in from {from}")),
                )
            })?;
            Ok(u)
        }
        other => {
            let why = match other {
                Some(u) if u.disabled => "account disabled",
                Some(_) => "wrong password",
                None => "unknown user",
            };
            let shown: String = username.chars().take(64).collect();
            audit::record_alone(
                &mut conn,
                &Event::new(audit::LOGIN, "login", &shown, &shown)
                    .describe(format!("failed login from {from}: {why}"))
                    .failed(),
            )?;
            Err(AppError::Unauthorized(
                "wrong username or password".to_string(),
            ))
        }
    }
}

/// The user behind a session, if it still exists, is enabled, and the session was issued
/// for its current generation (a password change or disabling ends older sessions).
pub fn session_user(conn: &mut DbConn, id: i64, generation: i64) -> Result<Option<User>, AppError> {
    Ok(User::find(conn, id)?.filter(|u| !u.disabled && u.session_generation == generation))
}

/// Creates `admin` on the first start. Returns the generated password, if one was made.
pub fn ensure_initial_admin(
    conn: &mut DbConn,
    password: Option<&str>,
) -> Result<Option<String>, AppError> {
    if User::count(conn)? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) if !p.is_empty() => (p.to_string(), false),
        _ => (crate::token_value::generate(), true),
    };
    let hash = hash_password(&password)?;
    db::write_tx(conn, |c| {
        User::insert(
            c,
            &NewUser {
                username: "admin",
                password_hash: &hash,
                role: Role::Administrator.as_str(),
                must_change_password: generated,
                created_at: db::now(),
            },
        )?;
        audit::record(
            c,
            &Event::new(audit::USER, "create", "system", "admin")
                .describe("initial administrator created at first start"),
        )
    })?;
    Ok(generated.then_some(password))
}
