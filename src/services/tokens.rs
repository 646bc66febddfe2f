//! Authorization and reissue tokens: create, list, show, delete, clean up, use.

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::{Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::host::Host;
use crate::models::kinds::AuditCategory;
use crate::models::token::{NewToken, Token, TokenFilter, TokenKind};
use crate::models::user::Role;
use crate::{token_value, valid_for};

pub const MAX_NAME_LEN: usize = 64;
pub const MAX_REASON_LEN: usize = 1024;
pub const MAX_USES: i32 = 99_999;
/// Names that are console addresses under /security/tokens/.
const RESERVED_NAMES: &[&str] = &["new", "delete", "cleanup", "reissue"];

/// What the Add form sends, as typed (a field not sent is empty).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct TokenInput {
    pub name: String,
    pub max_uses: String,
    pub valid_for: String,
    pub reason: String,
}

/// A token's name: 1–64 letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("enter a name".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("at most {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("use only letters, digits, '-', '_' and '.'".into());
    }
    // "." and ".." would be path segments, not a name, in /security/tokens/<name>.
    if name == "." || name == ".." {
        return Err("'.' and '..' are not names; use at least one letter or digit".into());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "'{name}' is reserved by the console's addresses; choose another name"
        ));
    }
    Ok(())
}

pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(format!("at most {MAX_REASON_LEN} characters"));
    }
    Ok(())
}

struct ValidInput {
    name: String,
    max_uses: i32,
    valid_until: NaiveDateTime,
    reason: String,
}

fn validate(input: &TokenInput, now: NaiveDateTime) -> Result<ValidInput, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = input.name.trim().to_string();
    if let Err(e) = check_name(&name) {
        errors.insert("name", e);
    }
    let max_uses = match input.max_uses.trim() {
        "" => 1,
        s => match s.parse::<i64>() {
            Ok(n) if (1..=i64::from(MAX_USES)).contains(&n) => n as i32,
            _ => {
                errors.insert("max_uses", format!("a whole number from 1 to {MAX_USES}"));
                0
            }
        },
    };
    let valid_for = match input.valid_for.trim() {
        "" => Ok(chrono::Duration::days(1)),
        s => valid_for::parse(s),
    };
    let valid_until = match valid_for {
        Ok(d) => now + d,
        Err(e) => {
            errors.insert("valid_for", e);
            now
        }
    };
    let reason = input.reason.trim().to_string();
    if let Err(e) = check_reason(&reason) {
        errors.insert("reason", e);
    }
    if errors.is_empty() {
        Ok(ValidInput {
            name,
            max_uses,
            valid_until,
            reason,
        })
    } else {
        Err(errors)
    }
}

/// Inserts a token with a fresh value, and its audit event, in the caller's transaction.
fn store(
    ctx: &Ctx,
    c: &mut WriteTx,
    actor: &Actor,
    v: &ValidInput,
    host_id: Option<&str>,
    description: String,
) -> Result<Token, AppError> {
    if Token::find_by_name(c, &v.name)?.is_some() {
        return Err(AppError::Conflict(format!(
            "a token named {} already exists; choose another name",
            v.name
        )));
    }
    let value = token_value::generate();
    let encrypted = ctx.token_key.encrypt(&v.name, &value);
    let digest = ctx.token_key.digest(&value);
    Token::insert(
        c,
        &NewToken {
            name: &v.name,
            kind: if host_id.is_some() {
                TokenKind::Reissue
            } else {
                TokenKind::Authorization
            },
            value_encrypted: &encrypted,
            value_digest: &digest,
            max_uses: v.max_uses,
            uses: 0,
            valid_until: v.valid_until,
            reason: &v.reason,
            host_id,
            created_by: &actor.username,
            created_at: db::now(),
        },
    )?;
    audit::record(
        c,
        &Event::new(AuditCategory::Token, "create", &actor.username, &v.name)
            .describe(description)
            .reason(&v.reason),
    )?;
    Token::find_by_name(c, &v.name)?.ok_or_else(|| AppError::vanished("token"))
}

/// What the Generate reissue token form sends: a validity as a duration or a date.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ReissueInput {
    pub name: String,
    pub valid_for: String,
    pub valid_until: String,
    pub reason: String,
}

/// `2026-12-01` (the end of that day, UTC), `2026-12-01T14:30` / `2026-12-01 14:30` (UTC),
/// or RFC 3339 with its offset (`2026-12-01T14:30:00Z`: what the API writes).
pub fn parse_valid_until(s: &str, now: NaiveDateTime) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.naive_utc())
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(23, 59, 59).unwrap_or_default())
        })
        .map_err(|_| {
            format!(
                "'{}' is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or RFC 3339 (2026-12-01T14:30:00Z)",
                s.chars().take(40).collect::<String>()
            )
        })?;
    if t <= now {
        return Err("the date is in the past: choose a time in the future".into());
    }
    if t > now + chrono::Duration::minutes(valid_for::MAX_MINUTES) {
        return Err("at most 999 days ahead".into());
    }
    Ok(t)
}

/// Creates a single-use reissue token for one host, named by host ID or primary name.
pub fn create_reissue(
    ctx: &Ctx,
    actor: &Actor,
    host_key: &str,
    input: &ReissueInput,
) -> Result<Token, FormError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Token,
        "create",
        input.name.trim(),
    )?;
    let host: Host = super::hosts::resolve_for_reissue(&mut conn, host_key)?;
    let now = db::now();
    let mut errors = FieldErrors::new();
    let name = match input.name.trim() {
        "" => format!(
            "reissue-{}-{}",
            host.primary_name,
            now.format("%Y%m%d%H%M%S")
        ),
        n => n.to_string(),
    };
    let name: String = name.chars().take(MAX_NAME_LEN).collect();
    if let Err(e) = check_name(&name) {
        errors.insert("name", e);
    }
    let valid_until = match (input.valid_for.trim(), input.valid_until.trim()) {
        ("", "") => Ok(now + chrono::Duration::days(1)),
        (d, "") => valid_for::parse(d).map(|d| now + d),
        ("", u) => parse_valid_until(u, now),
        _ => Err("give either a duration or a date, not both".to_string()),
    };
    let valid_until = valid_until.unwrap_or_else(|e| {
        errors.insert("valid_for", e);
        now
    });
    let reason = input.reason.trim().to_string();
    if let Err(e) = check_reason(&reason) {
        errors.insert("reason", e);
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let v = ValidInput {
        name,
        max_uses: 1,
        valid_until,
        reason,
    };
    let result = db::write_tx(&mut conn, |c| {
        store(
            ctx,
            c,
            actor,
            &v,
            Some(&host.host_id),
            format!(
                "reissue token created for {} (host ID {}), valid until {} UTC",
                host.primary_name,
                host.host_id,
                v.valid_until.format("%Y-%m-%d %H:%M")
            ),
        )
    });
    FormError::conflict_on("name", result)
}

/// Creates an authorization token. The value is generated here and stored encrypted.
pub fn create(ctx: &Ctx, actor: &Actor, input: &TokenInput) -> Result<Token, FormError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Token,
        "create",
        input.name.trim(),
    )?;
    let now = db::now();
    let v = validate(input, now).map_err(FormError::Invalid)?;
    let result = db::write_tx(&mut conn, |c| {
        store(
            ctx,
            c,
            actor,
            &v,
            None,
            format!(
                "authorization token created: max uses {}, valid until {} UTC",
                v.max_uses,
                v.valid_until.format("%Y-%m-%d %H:%M")
            ),
        )
    });
    FormError::conflict_on("name", result)
}

pub fn list(ctx: &Ctx, filter: &TokenFilter) -> Result<(Vec<Token>, i64, NaiveDateTime), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    let (rows, total) = Token::list(&mut conn, filter, now)?;
    Ok((rows, total, now))
}

pub fn find(conn: &mut DbConn, name: &str) -> Result<Token, AppError> {
    Token::find_by_name(conn, name)?.ok_or_else(|| {
        AppError::NotFound(format!(
            "there is no token named {name}; it may have been deleted"
        ))
    })
}

pub fn details(ctx: &Ctx, name: &str) -> Result<Token, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    find(&mut conn, name)
}

/// Decrypts a token's value for its details page. Each reveal is an audit event.
pub fn reveal(ctx: &Ctx, actor: &Actor, name: &str) -> Result<(Token, String), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Token,
        "show",
        name,
    )?;
    db::write_tx(&mut conn, |c| {
        let token = find(c, name)?;
        let value = ctx.token_key.decrypt(&token.name, &token.value_encrypted)?;
        audit::record(
            c,
            &Event::new(AuditCategory::Token, "show", &actor.username, name)
                .describe("token value shown"),
        )?;
        Ok((token, value))
    })
}

/// Deletes the named tokens; every one of them must exist, or nothing is deleted.
pub fn delete(ctx: &Ctx, actor: &Actor, names: &[String]) -> Result<usize, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Token,
        "delete",
        &names.join(", "),
    )?;
    if names.is_empty() {
        return Err(AppError::BadRequest(
            "select at least one token to delete".into(),
        ));
    }
    db::write_tx(&mut conn, |c| {
        for name in names {
            let token = find(c, name)?;
            Token::delete_by_name(c, name)?;
            audit::record(
                c,
                &Event::new(AuditCategory::Token, "delete", &actor.username, name).describe(
                    format!(
                        "{} token deleted ({} of {} uses)",
                        token.kind, token.uses, token.max_uses
                    ),
                ),
            )?;
        }
        Ok(names.len())
    })
}

/// Deletes every Expired and Used-up token, with one audit event giving the count.
pub fn cleanup(ctx: &Ctx, actor: &Actor) -> Result<usize, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Token,
        "cleanup",
        "tokens",
    )?;
    db::write_tx(&mut conn, |c| {
        let n = Token::delete_inactive(c, db::now())?;
        audit::record(
            c,
            &Event::new(AuditCategory::Token, "cleanup", &actor.username, "tokens")
                .describe(format!("{n} expired or used-up tokens deleted")),
        )?;
        Ok(n)
    })
}

/// Uses a token once for `host`, inside the caller's transaction, so that whatever the
/// token pays for commits or rolls back with it. The error says why it was refused.
pub fn consume_in(
    ctx: &Ctx,
    conn: &mut DbConn,
    value: &str,
    host: &str,
) -> Result<Token, AppError> {
    let canonical = token_value::canonical(value).ok_or_else(|| {
        AppError::Unprocessable(
            "the token is not a valid token value (24 characters like K7QF-3MZT-...)".into(),
        )
    })?;
    let digest = ctx.token_key.digest(&canonical);
    let now = db::now();
    if Token::consume(conn, &digest, host, now)? {
        return Token::find_by_digest(conn, &digest)?.ok_or_else(|| AppError::vanished("token"));
    }
    Err(refusal(Token::find_by_digest(conn, &digest)?))
}

/// Uses a token already read in this transaction; the conditional update still decides.
pub fn consume_known(conn: &mut DbConn, token: &Token, host: &str) -> Result<Token, AppError> {
    let now = db::now();
    if Token::consume(conn, &token.value_digest, host, now)? {
        let mut used = token.clone();
        used.uses += 1;
        used.last_used_at = Some(now);
        used.last_used_by = Some(host.to_string());
        return Ok(used);
    }
    Err(refusal(Token::find_by_digest(conn, &token.value_digest)?))
}

/// Why a token could not be used.
fn refusal(token: Option<Token>) -> AppError {
    match token {
        None => AppError::Unprocessable(
            "the token is unknown: check the value or ask for a new token".into(),
        ),
        Some(t) if t.uses >= t.max_uses => AppError::Unprocessable(format!(
            "the token {} is used up ({} of {} uses); ask for a new token",
            t.name, t.uses, t.max_uses
        )),
        Some(t) => AppError::Unprocessable(format!(
            "the token {} expired at {} UTC; ask for a new token",
            t.name,
            t.valid_until.format("%Y-%m-%d %H:%M")
        )),
    }
}

/// Uses a token once for `host` in a transaction of its own; a refusal is an audit event.
pub fn consume_for_host(ctx: &Ctx, value: &str, host: &str) -> Result<Token, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let result = db::write_tx(&mut conn, |c| {
        let token = consume_in(ctx, c, value, host)?;
        audit::record(
            c,
            &Event::new(AuditCategory::Token, "use", host, &token.name).describe(format!(
                "token used by {host} ({} of {})",
                token.uses, token.max_uses
            )),
        )?;
        Ok(token)
    });
    if let Err(e @ AppError::Unprocessable(_)) = &result {
        audit::record_alone(
            &mut conn,
            &Event::new(AuditCategory::Token, "use", host, "token")
                .describe(format!("token refused for {host}: {e}"))
                .failed(),
        )?;
    }
    result
}
