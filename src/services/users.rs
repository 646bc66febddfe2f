//! Users: passwords (argon2id), login and the first administrator.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use chrono::{Duration, NaiveDateTime};

use super::audit::{self, Event};
use super::{require, Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::login_attempt::{LoginAttempt, NewLoginAttempt};
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

pub const THROTTLE_WINDOW_MINUTES: i64 = 15;
pub const THROTTLE_AFTER: i64 = 5;
const THROTTLE_MAX_MINUTES: i64 = 15;

/// After `THROTTLE_AFTER` failures for a username or an address within the window, each
/// further failure locks them out for twice as long as the last, up to 15 minutes.
fn throttled_until(
    conn: &mut DbConn,
    username: &str,
    from: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, AppError> {
    let since = now - Duration::minutes(THROTTLE_WINDOW_MINUTES);
    let (by_user, by_address, latest) = LoginAttempt::failures_since(conn, username, from, since)?;
    let n = by_user.max(by_address);
    if n < THROTTLE_AFTER {
        return Ok(None);
    }
    let minutes = (1i64 << (n - THROTTLE_AFTER).min(4)).min(THROTTLE_MAX_MINUTES);
    Ok(latest
        .map(|t| t + Duration::minutes(minutes))
        .filter(|until| *until > now))
}

/// Checks a username and password. A failure is an audit event and says nothing about
/// which of the two was wrong; repeated failures are throttled.
pub fn login(ctx: &Ctx, username: &str, password: &str, from: &str) -> Result<User, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let username = username.trim();
    let shown: String = username.chars().take(64).collect();
    let now = db::now();
    let fail = |conn: &mut DbConn, why: &str| -> Result<(), AppError> {
        db::write_tx(conn, |c| {
            LoginAttempt::insert(
                c,
                &NewLoginAttempt {
                    username: &shown,
                    address: from,
                    at: now,
                    success: false,
                },
            )?;
            audit::refused(
                ctx,
                from,
                audit::LOGIN,
                "login",
                &shown,
                format!("failed login as {shown}: {why}"),
            );
            Ok(())
        })
    };
    if let Some(until) = throttled_until(&mut conn, &shown, from, now)? {
        fail(&mut conn, "throttled after repeated failures")?;
        let wait = ((until - now).num_seconds() + 59) / 60;
        return Err(AppError::TooManyRequests(format!(
            "too many failed logins for this user or from this address: try again in {wait} minute{} (after {} UTC)",
            if wait == 1 { "" } else { "s" },
            until.format("%H:%M")
        )));
    }
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
                User::record_login(c, u.id, now)?;
                LoginAttempt::insert(
                    c,
                    &NewLoginAttempt {
                        username: &u.username,
                        address: from,
                        at: now,
                        success: true,
                    },
                )?;
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
            fail(&mut conn, why)?;
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
            "unknown role '{}': use administrator, security_admin or viewer",
            role.chars().take(40).collect::<String>()
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

pub fn list(ctx: &Ctx) -> Result<Vec<User>, AppError> {
    Ok(User::list(&mut *db::get(&ctx.pool)?)?)
}

/// Adds a user with an initial password they must change at first login.
pub fn create(
    ctx: &Ctx,
    actor: &Actor,
    username: &str,
    role: &str,
    password: &str,
) -> Result<User, FormError> {
    let mut conn = db::get(&ctx.pool)?;
    require(
        &mut conn,
        actor,
        Role::Administrator,
        audit::USER,
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
    let hash = hash_password(password)?;
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
                role: role.as_str(),
                must_change_password: true,
                created_at: db::now(),
            },
        )?;
        audit::record(
            c,
            &Event::new(audit::USER, "create", &actor.username, &username).describe(format!(
                "user {username} created with role {}",
                role.as_str()
            )),
        )?;
        find_user(c, &username)
    });
    FormError::conflict_on("username", result)
}

pub fn set_role(ctx: &Ctx, actor: &Actor, username: &str, role: &str) -> Result<(), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    require(
        &mut conn,
        actor,
        Role::Administrator,
        audit::USER,
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
            &Event::new(audit::USER, "change_role", &actor.username, username).describe(format!(
                "role of {username} changed from {} to {}",
                user.role,
                role.as_str()
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
        audit::USER,
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
            &Event::new(audit::USER, action, &actor.username, username).describe(if disabled {
                format!("user {username} disabled; their sessions ended")
            } else {
                format!("user {username} enabled")
            }),
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
    let mut conn = db::get(&ctx.pool)?;
    require(
        &mut conn,
        actor,
        Role::Administrator,
        audit::USER,
        "reset_password",
        username,
    )?;
    check_password(password)
        .map_err(|e| AppError::BadRequest(format!("the new password must have {e}")))?;
    let hash = hash_password(password)?;
    db::write_tx(&mut conn, |c| {
        let user = find_user(c, username)?;
        User::set_password(c, user.id, &hash, true, db::now())?;
        audit::record(
            c,
            &Event::new(audit::USER, "reset_password", &actor.username, username).describe(
                format!("password of {username} reset; their sessions ended"),
            ),
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
    let mut conn = db::get(&ctx.pool)?;
    let user = User::find(&mut conn, user_id)?.ok_or(AppError::Unauthenticated)?;
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
    Ok(db::write_tx(&mut conn, |c| {
        User::set_password(c, user.id, &hash, false, db::now())?;
        audit::record(
            c,
            &Event::new(
                audit::USER,
                "change_password",
                &user.username,
                &user.username,
            )
            .describe("password changed by its owner; other sessions ended"),
        )?;
        User::find(c, user.id)?.ok_or_else(|| AppError::Internal("user vanished".into()))
    })?)
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
                    role: role.as_str(),
                    must_change_password: true,
                    created_at: db::now(),
                },
            )?;
            audit::record(
                c,
                &Event::new(audit::USER, "create", "console", username).describe(format!(
                    "user {username} created with role {} by hostca admin",
                    role.as_str()
                )),
            )
        }
        None => {
            let user = find_user(c, username)?;
            User::set_password(c, user.id, &hash, true, db::now())?;
            if user.disabled {
                User::set_disabled(c, user.id, false)?;
            }
            audit::record(
                c,
                &Event::new(audit::USER, "reset_password", "console", username).describe(format!(
                    "password of {username} reset by hostca admin; account enabled"
                )),
            )
        }
    })
}
