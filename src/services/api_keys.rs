//! API keys: a user's credentials for scripts. Shown once, stored as a keyed digest,
//! acting with the owner's current role.

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::{Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::api_key::{ApiKey, ApiKeyState, NewApiKey};
use crate::models::kinds::AuditCategory;
use crate::models::user::{Role, User};

pub const PREFIX: &str = "hca_";
/// A key made without a validity lasts this long: a forgotten key does not live forever.
pub const DEFAULT_VALID_DAYS: i64 = 90;
/// The longest validity a key may have.
pub const MAX_VALID_DAYS: i64 = 365;

fn generate() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b[..]);
    format!("{PREFIX}{}", hex::encode(b))
}

/// Creates a key for `user`; returns the stored key and its value, which is never
/// retrievable again.
pub fn create(
    ctx: &Ctx,
    user: &User,
    name: &str,
    valid_for: &str,
) -> Result<(ApiKey, String), FormError> {
    let mut conn = db::get(&ctx.pool)?;
    let name = name.trim().to_string();
    let mut errors = FieldErrors::new();
    if let Err(e) = super::tokens::check_name(&name) {
        errors.insert("name", e);
    }
    let now = db::now();
    let expires_at = match valid_for.trim() {
        "" => Some(now + chrono::Duration::days(DEFAULT_VALID_DAYS)),
        v => match crate::valid_for::parse(v) {
            Ok(d) if d > chrono::Duration::days(MAX_VALID_DAYS) => {
                errors.insert(
                    "valid_for",
                    format!("at most {MAX_VALID_DAYS}d (one year): make a new key when it expires"),
                );
                None
            }
            Ok(d) => Some(now + d),
            Err(e) => {
                errors.insert("valid_for", e);
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let value = generate();
    let digest = ctx.token_key.digest(&value);
    let prefix: String = value.chars().take(PREFIX.len() + 6).collect();
    let result = db::write_tx(&mut conn, |c| {
        if ApiKey::find_for_user(c, user.id, &name)?.is_some() {
            return Err(AppError::Conflict(format!(
                "you already have a key named {name}"
            )));
        }
        ApiKey::insert(
            c,
            &NewApiKey {
                user_id: user.id,
                name: &name,
                digest: &digest,
                prefix: &prefix,
                created_at: now,
                expires_at,
            },
        )?;
        audit::record(
            c,
            &Event::new(AuditCategory::User, "create_api_key", &user.username, &name).describe(
                format!(
                    "API key {name} ({prefix}…) created{}",
                    expires_at
                        .map(|e| format!(", expires {} UTC", e.format("%Y-%m-%d %H:%M")))
                        .unwrap_or_default()
                ),
            ),
        )?;
        ApiKey::find_for_user(c, user.id, &name)?.ok_or_else(|| AppError::vanished("key"))
    });
    FormError::conflict_on("name", result).map(|k| (k, value))
}

pub fn list(ctx: &Ctx, user_id: i64) -> Result<Vec<ApiKey>, AppError> {
    Ok(ApiKey::for_user(&mut *db::get(&ctx.pool)?, user_id)?)
}

pub fn revoke(ctx: &Ctx, user: &User, name: &str) -> Result<(), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    db::write_tx(&mut conn, |c| {
        let key = ApiKey::find_for_user(c, user.id, name)?
            .ok_or_else(|| AppError::NotFound(format!("you have no API key named {name}")))?;
        if ApiKey::revoke(c, key.id, db::now())? == 0 {
            return Err(AppError::Conflict(format!(
                "the key {name} is already revoked"
            )));
        }
        audit::record(
            c,
            &Event::new(AuditCategory::User, "revoke_api_key", &user.username, name)
                .describe(format!("API key {name} ({}…) revoked", key.prefix)),
        )
    })
}

/// Every user's keys with their owners, for administrators.
pub fn list_all(ctx: &Ctx, actor: &Actor) -> Result<Vec<(ApiKey, String)>, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "view_api_keys",
        "api keys",
    )?;
    Ok(ApiKey::all_with_owner(&mut conn)?)
}

/// An administrator revokes any user's key, e.g. one left behind by someone who left.
pub fn revoke_any(ctx: &Ctx, actor: &Actor, id: i64) -> Result<(ApiKey, String), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::User,
        "revoke_api_key",
        &format!("api key {id}"),
    )?;
    db::write_tx(&mut conn, |c| {
        let key = ApiKey::find(c, id)?
            .ok_or_else(|| AppError::NotFound(format!("there is no API key with id {id}")))?;
        let owner = User::find(c, key.user_id)?
            .map(|u| u.username)
            .unwrap_or_default();
        if ApiKey::revoke(c, key.id, db::now())? == 0 {
            return Err(AppError::Conflict(format!(
                "the key {} of {owner} is already revoked",
                key.name
            )));
        }
        audit::record(
            c,
            &Event::new(
                AuditCategory::User,
                "revoke_api_key",
                &actor.username,
                &key.name,
            )
            .describe(format!(
                "API key {} ({}…) of {owner} revoked by an administrator",
                key.name, key.prefix
            )),
        )?;
        Ok((key, owner))
    })
}

/// The actor behind a bearer key, if the key is valid, unexpired and unrevoked and its
/// owner is enabled. A bad key is an audit event.
pub fn authenticate(ctx: &Ctx, presented: &str, from: &str) -> Result<Actor, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    let refuse = |_conn: &mut DbConn, why: &str| -> AppError {
        audit::refused(
            ctx,
            from,
            AuditCategory::Login,
            "api_key",
            "api",
            format!("API call refused: the key is {why}"),
        );
        AppError::Unauthorized(format!(
            "the API key is {why}: create one at /account/api-keys"
        ))
    };
    if !presented.starts_with(PREFIX) || presented.len() > 200 {
        return Err(refuse(&mut conn, "malformed"));
    }
    let Some(key) = ApiKey::find_by_digest(&mut conn, &ctx.token_key.digest(presented))? else {
        return Err(refuse(&mut conn, "unknown"));
    };
    let state = key.state(now);
    if state != ApiKeyState::Active {
        return Err(refuse(&mut conn, state.key()));
    }
    let Some(user) = User::find(&mut conn, key.user_id)?.filter(|u| !u.disabled) else {
        return Err(refuse(&mut conn, "of a disabled user"));
    };
    if user.must_change_password {
        audit::record_alone(
            &mut conn,
            &Event::new(AuditCategory::Login, "api_key", &user.username, "api")
                .describe(format!(
                    "API call from {from} with key {} refused: {} must change their password first",
                    key.prefix, user.username
                ))
                .failed(),
        )?;
        return Err(AppError::Forbidden(format!(
            "{} must change their password before their API keys work: log in to the console and choose a new one at /account/password",
            user.username
        )));
    }
    // Recording the last use costs a write; once a minute is precise enough.
    if key
        .last_used_at
        .is_none_or(|t| now - t > chrono::Duration::minutes(1))
    {
        touch(&mut conn, key.id, now)?;
    }
    Ok(Actor {
        role: user.role(),
        username: user.username,
    })
}

fn touch(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> Result<(), AppError> {
    db::write_tx(conn, |c| Ok(ApiKey::touch(c, id, now)?)).map(|_| ())
}
