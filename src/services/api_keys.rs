//! API keys: a user's credentials for scripts. Shown once, stored as a keyed digest,
//! acting with the owner's current role.

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::{Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::api_key::{ApiKey, NewApiKey};
use crate::models::user::User;

pub const PREFIX: &str = "hca_";

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
        "" => None,
        v => match crate::valid_for::parse(v) {
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
            &Event::new(audit::USER, "create_api_key", &user.username, &name).describe(format!(
                "API key {name} ({prefix}…) created{}",
                expires_at
                    .map(|e| format!(", expires {} UTC", e.format("%Y-%m-%d %H:%M")))
                    .unwrap_or_default()
            )),
        )?;
        ApiKey::find_for_user(c, user.id, &name)?
            .ok_or_else(|| AppError::Internal("key vanished".into()))
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
            &Event::new(audit::USER, "revoke_api_key", &user.username, name)
                .describe(format!("API key {name} ({}…) revoked", key.prefix)),
        )
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
            audit::LOGIN,
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
    if !key.is_usable(now) {
        return Err(refuse(
            &mut conn,
            if key.revoked_at.is_some() {
                "revoked"
            } else {
                "expired"
            },
        ));
    }
    let Some(user) = User::find(&mut conn, key.user_id)?.filter(|u| !u.disabled) else {
        return Err(refuse(&mut conn, "of a disabled user"));
    };
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
