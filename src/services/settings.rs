//! Global security settings: read, and change with an audit event per changed value.

use super::audit::{self, Event};
use super::{require, Actor, Ctx, FieldErrors, FormError};
use crate::db;
use crate::error::AppError;
use crate::models::kinds::AuditCategory;
use crate::models::settings::{SecurityLevel, Settings, SettingsChange};
use crate::models::user::Role;

pub const VALIDITY_DAYS: (i32, i32) = (1, 825);
pub const AUTO_REISSUE_MINUTES: (i32, i32) = (0, 43_200);
/// Audit events are kept at least 30 days: a shorter retention would let an intruder's
/// traces age out before anyone looks.
pub const RETENTION_DAYS: (i32, i32) = (30, 3650);

/// The settings form as typed.
#[derive(Clone, Debug, Default)]
pub struct SettingsInput {
    pub security_level: String,
    pub auto_map_host_names: bool,
    pub certificate_validity_days: String,
    pub auto_reissue_minutes: String,
    pub audit_retention_days: String,
    pub reason: String,
    /// `None`: not sent (an older form or script); the value stays as it is.
    pub renewal_interval_minutes: Option<String>,
    /// The name policy's lists as typed (one entry a line, or separated by commas).
    pub allowed_domains: String,
    pub reserved_names: String,
}

impl SettingsInput {
    pub fn of(s: &Settings) -> SettingsInput {
        SettingsInput {
            security_level: s.security_level.to_string(),
            auto_map_host_names: s.auto_map_host_names,
            certificate_validity_days: s.certificate_validity_days.to_string(),
            auto_reissue_minutes: s.auto_reissue_minutes.to_string(),
            audit_retention_days: s.audit_retention_days.to_string(),
            reason: String::new(),
            renewal_interval_minutes: Some(s.renewal_interval_minutes.to_string()),
            allowed_domains: s.allowed_domains.clone(),
            reserved_names: s.reserved_names.clone(),
        }
    }
}

pub fn load(ctx: &Ctx) -> Result<Settings, AppError> {
    Ok(Settings::load(&mut *db::get(&ctx.pool)?)?)
}

/// Changes the settings given by `patch` (written over the current values, as the form
/// would show them) and returns them as they now are.
pub fn update_with(
    ctx: &Ctx,
    actor: &Actor,
    patch: impl FnOnce(&mut SettingsInput),
) -> Result<Settings, FormError> {
    let mut input = SettingsInput::of(&load(ctx)?);
    patch(&mut input);
    update(ctx, actor, &input)?;
    Ok(load(ctx)?)
}

/// The settings page: the values and the hardening checklist they lead to.
pub fn page(ctx: &Ctx) -> Result<(Settings, Vec<super::checklist::Check>), AppError> {
    Ok((load(ctx)?, super::checklist::run(ctx, ctx.tls)?))
}

fn number(
    errors: &mut FieldErrors,
    field: &'static str,
    text: &str,
    (lo, hi): (i32, i32),
    unit: &str,
) -> i32 {
    match text.trim().parse::<i64>() {
        Ok(n) if (i64::from(lo)..=i64::from(hi)).contains(&n) => n as i32,
        _ => {
            errors.insert(field, format!("a whole number of {unit} from {lo} to {hi}"));
            lo
        }
    }
}

/// A name-policy list, normalised for storage (one entry a line).
fn name_list(errors: &mut FieldErrors, field: &'static str, text: &str, ips: bool) -> String {
    match crate::names::parse_list(text, ips) {
        Ok(list) => list.join("\n"),
        Err(e) => {
            errors.insert(field, e);
            String::new()
        }
    }
}

/// How a list reads in an audit event.
fn shown_list(stored: &str) -> String {
    let list = crate::names::stored_list(stored);
    if list.is_empty() {
        "(none)".into()
    } else {
        list.join(", ")
    }
}

fn validate(input: &SettingsInput) -> Result<(SettingsChange, String), FieldErrors> {
    let mut errors = FieldErrors::new();
    let level = SecurityLevel::parse(&input.security_level);
    if level.is_none() {
        errors.insert(
            "security_level",
            format!("choose {}", SecurityLevel::choices()),
        );
    }
    let change = SettingsChange {
        // Only stored when every field is valid: the level is then `Some`.
        security_level: level.unwrap_or(SecurityLevel::VeryHigh),
        auto_map_host_names: input.auto_map_host_names,
        certificate_validity_days: number(
            &mut errors,
            "certificate_validity_days",
            &input.certificate_validity_days,
            VALIDITY_DAYS,
            "days",
        ),
        auto_reissue_minutes: number(
            &mut errors,
            "auto_reissue_minutes",
            &input.auto_reissue_minutes,
            AUTO_REISSUE_MINUTES,
            "minutes",
        ),
        audit_retention_days: number(
            &mut errors,
            "audit_retention_days",
            &input.audit_retention_days,
            RETENTION_DAYS,
            "days",
        ),
        updated_at: Some(db::now()),
        renewal_interval_minutes: input.renewal_interval_minutes.as_deref().map(|t| {
            number(
                &mut errors,
                "renewal_interval_minutes",
                t,
                super::renewal::INTERVAL_MINUTES,
                "minutes",
            )
        }),
        allowed_domains: name_list(
            &mut errors,
            "allowed_domains",
            &input.allowed_domains,
            false,
        ),
        reserved_names: name_list(&mut errors, "reserved_names", &input.reserved_names, true),
    };
    let reason = input.reason.trim().to_string();
    if reason.is_empty() {
        errors.insert(
            "reason",
            "say why the settings change; the reason is kept in the audit events".into(),
        );
    } else if let Err(e) = super::tokens::check_reason(&reason) {
        errors.insert("reason", e);
    }
    if errors.is_empty() {
        Ok((change, reason))
    } else {
        Err(errors)
    }
}

/// Applies the changed values at once; one SEC_CONFIG event per value, with old and new.
/// Returns the names of the values that changed.
pub fn update(
    ctx: &Ctx,
    actor: &Actor,
    input: &SettingsInput,
) -> Result<Vec<&'static str>, FormError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::SecConfig,
        "change_setting",
        "settings",
    )?;
    let (change, reason) = validate(input).map_err(FormError::Invalid)?;
    let current = Settings::load(&mut conn)?.audit_retention_days;
    if change.audit_retention_days < current {
        // Shortening what the audit trail keeps erases evidence sooner: only an
        // administrator may, and the refusal is itself an event.
        require(
            &mut conn,
            actor,
            Role::Administrator,
            AuditCategory::SecConfig,
            "change_setting",
            "audit_retention_days",
        )?;
    }
    Ok(db::write_tx(&mut conn, |c| {
        let old = Settings::load(c)?;
        let pairs: [(&'static str, String, String); 6] = [
            (
                "security_level",
                old.security_level.to_string(),
                change.security_level.to_string(),
            ),
            (
                "auto_map_host_names",
                old.auto_map_host_names.to_string(),
                change.auto_map_host_names.to_string(),
            ),
            (
                "certificate_validity_days",
                old.certificate_validity_days.to_string(),
                change.certificate_validity_days.to_string(),
            ),
            (
                "auto_reissue_minutes",
                old.auto_reissue_minutes.to_string(),
                change.auto_reissue_minutes.to_string(),
            ),
            (
                "audit_retention_days",
                old.audit_retention_days.to_string(),
                change.audit_retention_days.to_string(),
            ),
            (
                "renewal_interval_minutes",
                old.renewal_interval_minutes.to_string(),
                change
                    .renewal_interval_minutes
                    .unwrap_or(old.renewal_interval_minutes)
                    .to_string(),
            ),
        ];
        let pairs: Vec<(&'static str, String, String)> = pairs
            .into_iter()
            .chain([
                (
                    "allowed_domains",
                    shown_list(&old.allowed_domains),
                    shown_list(&change.allowed_domains),
                ),
                (
                    "reserved_names",
                    shown_list(&old.reserved_names),
                    shown_list(&change.reserved_names),
                ),
            ])
            .collect();
        let changed: Vec<_> = pairs.iter().filter(|(_, a, b)| a != b).collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        Settings::change(c, &change)?;
        for (name, a, b) in &changed {
            audit::record(
                c,
                &Event::new(
                    AuditCategory::SecConfig,
                    "change_setting",
                    &actor.username,
                    name,
                )
                .describe(format!("{name} changed from {a} to {b}"))
                .reason(&reason),
            )?;
        }
        Ok(changed.iter().map(|(n, _, _)| *n).collect())
    })?)
}
