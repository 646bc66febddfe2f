//! Users: passwords (argon2id), login and the first administrator.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use chrono::{Duration, NaiveDateTime};

use super::audit::{self, Event};
use super::{require, Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::api_key::ApiKey;
use crate::models::kinds::AuditCategory;
use crate::models::login_attempt::{LoginAttempt, NewLoginAttempt};
use crate::models::user::{EndedSession, NewUser, Role, User};

pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn hash_password(password: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal_from("password hashing failed", e))
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

pub const THROTTLE_WINDOW_MINUTES: i64 = 15;
/// Failures of one username from one address before the delays start.
pub const THROTTLE_AFTER: i64 = 5;
/// Failures from one address, whatever the usernames, before the delays start: password
/// spraying is slowed too, yet one user's typos never lock out a shared address.
pub const THROTTLE_ADDRESS_AFTER: i64 = 50;
const THROTTLE_MAX_MINUTES: i64 = 15;

/// `n` failures past `after`: 1, 2, 4, 8 then 15 minutes after the latest.
fn delay_after(n: i64, after: i64, latest: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
    if n < after {
        return None;
    }
    let minutes = (1i64 << (n - after).min(4)).min(THROTTLE_MAX_MINUTES);
    latest.map(|t| t + Duration::minutes(minutes))
}

/// After `THROTTLE_AFTER` failures for a username from one address within the window
/// (or `THROTTLE_ADDRESS_AFTER` from the address for any usernames), each further
/// failure locks that pair (or address) out for twice as long as the last, up to 15
/// minutes. The same username from another address is not affected: an attacker
/// hammering `admin` does not lock the real administrator out.
fn throttled_until(
    conn: &mut DbConn,
    username: &str,
    from: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, AppError> {
    let since = now - Duration::minutes(THROTTLE_WINDOW_MINUTES);
    let f = LoginAttempt::failures_since(conn, username, from, since)?;
    let until = [
        delay_after(f.pair, THROTTLE_AFTER, f.pair_latest),
        delay_after(f.address, THROTTLE_ADDRESS_AFTER, f.address_latest),
    ]
    .into_iter()
    .flatten()
    .max();
    Ok(until.filter(|until| *until > now))
}

/// How many password hashes run at once: argon2 is slow and memory-hard by design, so a
/// flood of logins must queue here (without a thread or a database connection) instead
/// of taking every core. One core is left for the rest of the server.
fn hash_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

async fn blocking<T, F>(f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AppError::Unavailable("the server is overloaded; try again".into()))?
}

/// Checks a username and password. A failure is an audit event and says nothing about
/// which of the two was wrong; repeated failures are throttled, and an attempt refused by
/// the throttle is audited but does not count as a failure (it checked no password).
///
/// The only async service: the database is read, the connection released, the password
/// hashed when a slot is free, and the outcome written on a new connection, so a flood of
/// logins never holds connections that enrollment and the console need.
pub async fn login(
    ctx: &Ctx,
    username: &str,
    password: &str,
    from: &str,
) -> Result<User, AppError> {
    let username = username.trim();
    let shown: String = username.chars().take(64).collect();
    let plausible =
        !(username.is_empty() || username.len() > 64 || password.len() > MAX_PASSWORD_LEN);
    let now = db::now();
    let (c, name, addr) = (ctx.clone(), shown.clone(), from.to_string());
    let user = blocking(move || {
        let mut conn = db::get(&c.pool)?;
        if let Some(until) = throttled_until(&mut conn, &name, &addr, now)? {
            audit::refused(
                &c,
                addr.as_str(),
                AuditCategory::Login,
                "login",
                &name,
                format!("failed login as {name}: throttled after repeated failures"),
            );
            let wait = ((until - now).num_seconds() + 59) / 60;
            return Err(AppError::TooManyRequests(format!(
                "too many failed logins for this user from this address: try again in {wait} minute{} (after {} UTC)",
                if wait == 1 { "" } else { "s" },
                until.format("%H:%M")
            )));
        }
        Ok(if plausible {
            User::find_by_username(&mut conn, &name)?
        } else {
            None
        })
    })
    .await?;

    let permit = hash_slots()
        .acquire()
        .await
        .map_err(|_| AppError::Unavailable("the server is shutting down".into()))?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    let password = password.to_string();
    let matches = blocking(move || Ok(verify_password(&hash, &password))).await?;
    drop(permit);

    let (c, addr) = (ctx.clone(), from.to_string());
    blocking(move || {
        let mut conn = db::get(&c.pool)?;
        let now = db::now();
        match user {
            Some(u) if matches && !u.disabled => {
                db::write_tx(&mut conn, |c| {
                    User::record_login(c, u.id, now)?;
                    LoginAttempt::clear_pair(c, &u.username, &addr)?;
                    LoginAttempt::insert(
                        c,
                        &NewLoginAttempt {
                            username: &u.username,
                            address: &addr,
                            at: now,
                            success: true,
                        },
                    )?;
                    audit::record(
                        c,
                        &Event::new(AuditCategory::Login, "login", &u.username, &u.username)
                            .describe(format!("logged in from {addr}")),
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
                db::write_tx(&mut conn, |c| {
                    LoginAttempt::insert(
                        c,
                        &NewLoginAttempt {
                            username: &shown,
                            address: &addr,
                            at: now,
                            success: false,
                        },
                    )?;
                    Ok(())
                })?;
                audit::refused(
                    &c,
                    addr.as_str(),
                    AuditCategory::Login,
                    "login",
                    &shown,
                    format!("failed login as {shown}: {why}"),
                );
                Err(AppError::Unauthorized(
                    "wrong username or password".to_string(),
                ))
            }
        }
    })
    .await
}

/// The user behind a session, if it still exists, is enabled, the session was issued
/// for its current generation (a password change or disabling ends older sessions), and
/// the session was not logged out (`session_id`, kept in the cookie).
pub fn session_user(
    ctx: &Ctx,
    id: i64,
    generation: i64,
    session_id: &str,
) -> Result<Option<User>, AppError> {
    let conn = &mut *db::get(&ctx.pool)?;
    let Some(user) =
        User::find(conn, id)?.filter(|u| !u.disabled && u.session_generation == generation)
    else {
        return Ok(None);
    };
    if session_id.is_empty() || EndedSession::is_ended(conn, session_id)? {
        return Ok(None);
    }
    Ok(Some(user))
}

/// Logging out ends this one session on the server: its cookie, even copied, is refused
/// afterwards, while the user's sessions in other browsers go on. `expires_at` is when
/// the session would have ended anyway; its record can go then.
pub fn end_session(
    ctx: &Ctx,
    user_id: i64,
    session_id: &str,
    expires_at: NaiveDateTime,
) -> Result<(), AppError> {
    if session_id.is_empty() {
        return Ok(());
    }
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    db::write_tx(&mut conn, |c| {
        EndedSession::prune(c, now)?;
        EndedSession::insert(c, session_id, user_id, now, expires_at)?;
        Ok(())
    })
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
        Some(p) if !p.is_empty() => {
            check_password(p).map_err(|e| {
                AppError::BadRequest(format!(
                    "HOSTCA_ADMIN_PASSWORD is too weak: the first administrator's password must have {e}; set a longer one, or unset it to have one generated"
                ))
            })?;
            (p.to_string(), false)
        }
        _ => (crate::token_value::generate(), true),
    };
    let hash = hash_password(&password)?;
    db::write_tx(conn, |c| {
        User::insert(
            c,
            &NewUser {
                username: "admin",
                password_hash: &hash,
                role: Role::Administrator,
                must_change_password: generated,
                created_at: db::now(),
            },
        )?;
        audit::record(
            c,
            &Event::new(AuditCategory::User, "create", "system", "admin")
                .describe("initial administrator created at first start"),
        )
    })?;
    Ok(generated.then_some(password))
}

pub const MIN_PASSWORD_LEN: usize = 12;

pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("1–64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("use only letters, digits, '.', '_', '-' and '@'".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!("at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("at most {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

fn parse_role(role: &str) -> Result<Role, AppError> {
    Role::parse(role.trim()).ok_or_else(|| {
        AppError::BadRequest(format!(
            "unknown role '{}': use {}",
            role.chars().take(40).collect::<String>(),
            Role::choices()
        ))
    })
}

fn find_user(c: &mut DbConn, username: &str) -> Result<User, AppError> {
    User::find_by_username(c, username)?
        .ok_or_else(|| AppError::NotFound(format!("there is no user named {username}")))
}

/// Refuses a change that would leave no enabled administrator.
fn keep_an_administrator(c: &mut DbConn, user: &User) -> Result<(), AppError> {
    let admins = User::active_administrators(c)?;
    if admins.len() <= 1 && admins.iter().any(|a| a.id == user.id) {
        return Err(AppError::Conflict(format!(
            "{} is the last active administrator: make another user an administrator first",
            user.username
        )));
    }
    Ok(())
}

/// Every user, for an administrator; anyone else is refused (and the refusal audited).
pub fn list(ctx: &Ctx, actor: &Actor) -> Result<Vec<User>, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "view_users",
        "users",
    )?;
    Ok(User::list(&mut conn)?)
}

/// Adds a user with an initial password they must change at first login.
pub fn create(
    ctx: &Ctx,
    actor: &Actor,
    username: &str,
    role: &str,
    password: &str,
) -> Result<User, FormError> {
    let conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "create",
        username,
    )?;
    let username = username.trim().to_string();
    let mut errors = FieldErrors::new();
    if let Err(e) = check_username(&username) {
        errors.insert("username", e);
    }
    let role = match Role::parse(role.trim()) {
        Some(r) => r,
        None => {
            errors.insert("role", "choose a role".into());
            Role::Viewer
        }
    };
    if let Err(e) = check_password(password) {
        errors.insert("password", e);
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    // No connection is held while argon2 works.
    drop(conn);
    let hash = hash_password(password)?;
    let mut conn = db::get(&ctx.pool)?;
    let result = db::write_tx(&mut conn, |c| {
        if User::find_by_username(c, &username)?.is_some() {
            return Err(AppError::Conflict(format!(
                "a user named {username} already exists"
            )));
        }
        User::insert(
            c,
            &NewUser {
                username: &username,
                password_hash: &hash,
                role,
                must_change_password: true,
                created_at: db::now(),
            },
        )?;
        audit::record(
            c,
            &Event::new(AuditCategory::User, "create", &actor.username, &username)
                .describe(format!("user {username} created with role {}", role.key())),
        )?;
        find_user(c, &username)
    });
    FormError::conflict_on("username", result)
}

pub fn set_role(ctx: &Ctx, actor: &Actor, username: &str, role: &str) -> Result<(), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "change_role",
        username,
    )?;
    let role = parse_role(role)?;
    db::write_tx(&mut conn, |c| {
        let user = find_user(c, username)?;
        if user.role() == role {
            return Ok(());
        }
        if role != Role::Administrator {
            keep_an_administrator(c, &user)?;
        }
        User::set_role(c, user.id, role)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::User,
                "change_role",
                &actor.username,
                username,
            )
            .describe(format!(
                "role of {username} changed from {} to {}",
                user.role,
                role.key()
            )),
        )
    })
}

pub fn set_disabled(
    ctx: &Ctx,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> Result<(), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let action = if disabled { "disable" } else { "enable" };
    require(
        &mut conn,
        actor,
        Role::Administrator,
        AuditCategory::User,
        action,
        username,
    )?;
    db::write_tx(&mut conn, |c| {
        let user = find_user(c, username)?;
        if disabled {
            if user.username == actor.username {
                return Err(AppError::Conflict(
                    "you cannot disable your own account".into(),
                ));
            }
            keep_an_administrator(c, &user)?;
        }
        User::set_disabled(c, user.id, disabled)?;
        audit::record(
            c,
            &Event::new(AuditCategory::User, action, &actor.username, username).describe(
                if disabled {
                    format!("user {username} disabled; their sessions ended")
                } else {
                    format!("user {username} enabled")
                },
            ),
        )
    })
}

/// An administrator sets a new password; the user must change it at the next login.
pub fn reset_password(
    ctx: &Ctx,
    actor: &Actor,
    username: &str,
    password: &str,
) -> Result<(), AppError> {
    let conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "reset_password",
        username,
    )?;
    check_password(password)
        .map_err(|e| AppError::BadRequest(format!("the new password must have {e}")))?;
    drop(conn);
    let hash = hash_password(password)?;
    let mut conn = db::get(&ctx.pool)?;
    db::write_tx(&mut conn, |c| {
        let user = find_user(c, username)?;
        let now = db::now();
        User::set_password(c, user.id, &hash, true, now)?;
        let revoked = ApiKey::revoke_all_for_user(c, user.id, now)?;
        LoginAttempt::clear_for_user(c, username)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::User,
                "reset_password",
                &actor.username,
                username,
            )
            .describe(format!(
                "password of {username} reset; their sessions ended{}",
                keys_revoked(revoked)
            )),
        )
    })
}

/// A user changes their own password. Returns the user with its new session generation.
pub fn change_own_password(
    ctx: &Ctx,
    user_id: i64,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<User, FormError> {
    let user = User::find(&mut *db::get(&ctx.pool)?, user_id)?.ok_or(AppError::Unauthenticated)?;
    let mut errors = FieldErrors::new();
    if !verify_password(&user.password_hash, current) {
        errors.insert("current", "this is not your current password".into());
    }
    if let Err(e) = check_password(new) {
        errors.insert("new", e);
    } else if new == current {
        errors.insert(
            "new",
            "choose a password different from the current one".into(),
        );
    }
    if new != confirm {
        errors.insert("confirm", "the two new passwords differ".into());
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let hash = hash_password(new)?;
    let mut conn = db::get(&ctx.pool)?;
    Ok(db::write_tx(&mut conn, |c| {
        let now = db::now();
        User::set_password(c, user.id, &hash, false, now)?;
        let revoked = ApiKey::revoke_all_for_user(c, user.id, now)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::User,
                "change_password",
                &user.username,
                &user.username,
            )
            .describe(format!(
                "password changed by its owner; other sessions ended{}",
                keys_revoked(revoked)
            )),
        )?;
        User::find(c, user.id)?.ok_or_else(|| AppError::vanished("user"))
    })?)
}

/// A password change ends the user's API keys too: a leaked password must not leave a
/// key behind that was made with it.
fn keys_revoked(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; their API key was revoked".into(),
        n => format!("; their {n} API keys were revoked"),
    }
}

/// For `hostca admin`: creates a user (`role` given) or resets one's password and enables
/// them, directly on the database, as the operator at the console of the server.
pub fn offline_set_user(
    pool: &crate::db::Pool,
    username: &str,
    role: Option<&str>,
    password: &str,
) -> Result<(), AppError> {
    check_password(password)
        .map_err(|e| AppError::BadRequest(format!("the password must have {e}")))?;
    let hash = hash_password(password)?;
    let mut conn = db::get(pool)?;
    db::write_tx(&mut conn, |c| match role {
        Some(role) => {
            check_username(username).map_err(|e| AppError::BadRequest(format!("username: {e}")))?;
            let role = parse_role(role)?;
            if User::find_by_username(c, username)?.is_some() {
                return Err(AppError::Conflict(format!(
                    "a user named {username} already exists"
                )));
            }
            User::insert(
                c,
                &NewUser {
                    username,
                    password_hash: &hash,
                    role,
                    must_change_password: true,
                    created_at: db::now(),
                },
            )?;
            audit::record(
                c,
                &Event::new(AuditCategory::User, "create", "console", username).describe(format!(
                    "user {username} created with role {} by hostca admin",
                    role.key()
                )),
            )
        }
        None => {
            let user = find_user(c, username)?;
            let now = db::now();
            User::set_password(c, user.id, &hash, true, now)?;
            if user.disabled {
                User::set_disabled(c, user.id, false)?;
            }
            // The operator vouches for the user: failed logins no longer slow them down.
            LoginAttempt::clear_for_user(c, username)?;
            let revoked = ApiKey::revoke_all_for_user(c, user.id, now)?;
            audit::record(
                c,
                &Event::new(AuditCategory::User, "reset_password", "console", username).describe(format!(
                    "password of {username} reset by hostca admin; account enabled; failed logins forgotten{}",
                    keys_revoked(revoked)
                )),
            )
        }
    })
}
