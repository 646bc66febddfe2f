//! The hardening checklist at the top of the settings page, computed from the live state:
//! what a ransomware crew would look for first, each line pass or warn with what to do.

use std::path::Path;

use super::Ctx;
use crate::db;
use crate::error::AppError;
use crate::models::host_mapping::{HostMapping, MappingState};
use crate::models::settings::{SecurityLevel, Settings};
use crate::models::user::{Role, User};

#[derive(Clone, Debug)]
pub struct Check {
    /// `pass`, `warn` or `info`.
    pub status: &'static str,
    pub title: &'static str,
    pub detail: String,
}

fn check(ok: bool, title: &'static str, pass: String, warn: String) -> Check {
    Check {
        status: if ok { "pass" } else { "warn" },
        title,
        detail: if ok { pass } else { warn },
    }
}

/// A backup older than this is a warning.
pub const BACKUP_DAYS: i64 = 7;

/// Days without a login after which an administrator account counts as forgotten.
pub const STALE_ADMIN_DAYS: i64 = 30;

pub fn run(ctx: &Ctx, tls: bool) -> Result<Vec<Check>, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let settings = Settings::load(&mut conn)?;
    let now = db::now();
    let mut checks = Vec::new();
    checks.push(check(
        tls,
        "Served over TLS",
        "The console is served over HTTPS; session cookies are Secure.".into(),
        "The console is served over plain HTTP: passwords and token values cross the network in clear. Serve it over TLS.".into(),
    ));
    checks.push(check(
        settings.security_level != SecurityLevel::Medium,
        "Security level high or very high",
        format!("The security level is {}.", settings.security_level.label().to_lowercase()),
        "The security level is medium: a name that resolves to the caller gets a certificate without a token. Raise it to high or very high.".into(),
    ));
    let allowed = crate::names::stored_list(&settings.allowed_domains);
    checks.push(check(
        !allowed.is_empty(),
        "A name policy",
        format!(
            "Hosts may be certified for names under {} only; other names wait for an administrator.",
            allowed.join(", ")
        ),
        "No allowed domains are set: a host with a token may ask for any name, and no discovered name is mapped automatically. Set the allowed domains below.".into(),
    ));
    let conflicts: Vec<String> = {
        let names = HostMapping::conflicting_names(&mut conn)?;
        let pending: Vec<String> =
            HostMapping::in_state(&mut conn, Some(MappingState::Pending), 5000)?
                .into_iter()
                .map(|m| m.name)
                .collect();
        names.into_iter().filter(|n| pending.contains(n)).collect()
    };
    checks.push(check(
        conflicts.is_empty(),
        "No pending mapping conflicts",
        "No host name waits for approval while another host claims it.".into(),
        format!(
            "{} name(s) claimed by several hosts wait for a decision ({}): resolve them under Host mappings.",
            conflicts.len(),
            conflicts.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ),
    ));
    let users = User::list(&mut conn)?;
    let initial = users.iter().find(|u| u.username == "admin");
    checks.push(check(
        initial.is_none_or(|u| u.password_changed_at.is_some() || u.disabled),
        "Initial admin password changed",
        "The password hostca started with is no longer in use.".into(),
        "The user admin still has the password from the first start: change it (Account > Password).".into(),
    ));
    let admins: Vec<&User> = users
        .iter()
        .filter(|u| u.role == Role::Administrator && !u.disabled)
        .collect();
    checks.push(check(
        admins.len() >= 2,
        "At least two administrators",
        format!("{} active administrators.", admins.len()),
        "Only one active administrator: if that account is lost or locked out, nobody can manage users. Add a second one.".into(),
    ));
    let stale: Vec<&str> = admins
        .iter()
        .filter(|u| {
            u.last_login_at
                .is_none_or(|t| now - t > chrono::Duration::days(STALE_ADMIN_DAYS))
        })
        .map(|u| u.username.as_str())
        .collect();
    checks.push(check(
        stale.is_empty(),
        "No administrator without a recent login",
        format!("Every administrator logged in within {STALE_ADMIN_DAYS} days."),
        format!(
            "Administrators without a login in {STALE_ADMIN_DAYS} days: {}. Disable accounts nobody uses.",
            stale.join(", ")
        ),
    ));
    checks.push(check(
        settings.audit_retention_days >= 90,
        "Audit retention of 90 days or more",
        format!("Audit events are kept {} days.", settings.audit_retention_days),
        format!(
            "Audit events are kept only {} days: an intrusion found late leaves no trail. Keep them 90 days or more.",
            settings.audit_retention_days
        ),
    ));
    let files = ["ca.key", "ca.pem", "token.key", "session.key"];
    let open: Vec<&str> = files
        .iter()
        .filter(|f| !crate::secrets::is_private(&ctx.data_dir.join(f)))
        .copied()
        .collect();
    checks.push(check(
        open.is_empty(),
        "CA and key files mode 0600",
        format!(
            "{} are readable by the server's user only.",
            files.join(", ")
        ),
        format!(
            "Readable by others (or missing): {}. Run chmod 600 on them in {}.",
            open.join(", "),
            Path::new(&ctx.data_dir).display()
        ),
    ));
    let last_backup = crate::models::audit_event::AuditEvent::last_of_action(&mut conn, "backup")?;
    checks.push(match last_backup {
        Some(at) if now - at <= chrono::Duration::days(BACKUP_DAYS) => Check {
            status: "pass",
            title: "A recent backup",
            detail: format!("The last backup was written {} UTC.", at.format("%Y-%m-%d %H:%M")),
        },
        Some(at) => Check {
            status: "warn",
            title: "A recent backup",
            detail: format!(
                "The last backup is from {} UTC: run hostca backup --out FILE and keep a copy offline.",
                at.format("%Y-%m-%d")
            ),
        },
        None => Check {
            status: "warn",
            title: "A recent backup",
            detail: "No backup yet: run hostca backup --out FILE (database, CA and keys, encrypted) and keep a copy offline.".into(),
        },
    });
    Ok(checks)
}
