//! Hosts: their names, host IDs and mappings.

use super::audit::{self, Event};
use crate::db::DbConn;
use crate::db::WriteTx;
use crate::error::AppError;
use crate::models::certificate::Certificate;
use crate::models::host::{Host, NewHost};
use crate::models::host_mapping::{HostMapping, MappingSource, MappingState, NewHostMapping};
use crate::models::kinds::AuditCategory;

/// A host name as it goes into a certificate: lower case, no trailing dot, RFC 1123 labels.
pub fn normalize_hostname(input: &str) -> Result<String, String> {
    let name = crate::names::without_root_dot(input.trim()).to_ascii_lowercase();
    if name.is_empty() {
        return Err("the host name is empty".into());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "'{}' is not a valid host name: use letters, digits and '-' in dot-separated labels",
                input.trim().chars().take(80).collect::<String>()
            ));
        }
    }
    Ok(name)
}

/// Whether `s` looks like a host ID (a UUID, in any of the forms `names::host_id` reads).
pub fn is_host_id(s: &str) -> bool {
    crate::names::host_id(s).is_some()
}

/// The one host that owns `name` as its primary name or an approved mapping. A name
/// mapped to several hosts is a conflict an administrator must resolve.
pub fn find_by_name(conn: &mut DbConn, name: &str) -> Result<Option<Host>, AppError> {
    let mut found = Host::find_by_approved_name(conn, name)?;
    if found.is_empty() {
        return Ok(Host::find_by_primary_name(conn, name)?);
    }
    if found.len() > 1 {
        let ids: Vec<_> = found.iter().map(|h| h.host_id.as_str()).collect();
        return Err(AppError::Conflict(format!(
            "the name {name} is mapped to several hosts ({}); an administrator must resolve the conflict",
            ids.join(", ")
        )));
    }
    Ok(found.pop())
}

/// A host ID: a UUID version 7 (time-ordered, 74 random bits), so that a new host's rows
/// land at the end of the host ID indexes instead of on random pages of them.
pub fn new_host_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new host with a new host ID and its primary name as an approved mapping, with its
/// own audit event.
pub fn create(
    conn: &mut WriteTx,
    name: &str,
    actor: &str,
    now: chrono::NaiveDateTime,
) -> Result<Host, AppError> {
    let host = create_row(conn, &new_host_id(), name, actor, now)?;
    audit::record(
        conn,
        &Event::new(AuditCategory::Host, "create", actor, name).describe(format!(
            "host {name} registered with host ID {}",
            host.host_id
        )),
    )?;
    Ok(host)
}

/// The rows of a new host, for a caller whose own audit event records the registration
/// (an enrollment: one event for the host and its first certificate).
pub fn create_row(
    conn: &mut DbConn,
    host_id: &str,
    name: &str,
    actor: &str,
    now: chrono::NaiveDateTime,
) -> Result<Host, AppError> {
    let host = Host::insert(
        conn,
        &NewHost {
            host_id,
            primary_name: name,
            created_at: now,
            created_by: actor,
        },
    )?;
    HostMapping::insert(
        conn,
        &NewHostMapping {
            host_id,
            name,
            state: MappingState::Approved,
            source: MappingSource::Auto,
            created_at: now,
        },
    )?;
    Ok(host)
}

/// A host named by its host ID or primary name, as a reissue token must be. An alias is
/// refused with the primary name to use instead.
pub fn resolve_for_reissue(conn: &mut DbConn, key: &str) -> Result<Host, AppError> {
    let key = key.trim();
    if is_host_id(key) {
        if let Some(h) = Host::find_by_host_id(conn, &crate::names::host_key(key))? {
            refuse_server_host(&h)?;
            return Ok(h);
        }
    }
    let name = normalize_hostname(key).map_err(AppError::BadRequest)?;
    if let Some(h) = Host::find_by_primary_name(conn, &name)? {
        return Ok(h);
    }
    let aliases = HostMapping::by_name(conn, &name)?;
    if let Some(m) = aliases.first() {
        let primary = Host::find_by_host_id(conn, &m.host_id)?
            .map(|h| h.primary_name)
            .unwrap_or_default();
        return Err(AppError::Unprocessable(format!(
            "{name} is an alias (a host name mapping) of host {primary} ({}); create the reissue token for the primary name {primary} or its host ID",
            m.host_id
        )));
    }
    Err(AppError::NotFound(format!("there is no host {key}")))
}

/// The server's own host row holds its TLS certificates only: no token, mapping or
/// auto-reissue window may ever let a host obtain a certificate through it.
pub fn refuse_server_host(host: &Host) -> Result<(), AppError> {
    if host.host_id == super::pki::SERVER_HOST_ID {
        return Err(AppError::Unprocessable(format!(
            "{} is the hostca server itself: its TLS certificates are issued by the server, never through tokens, mappings or reissue windows",
            host.primary_name
        )));
    }
    Ok(())
}

/// What the host page shows.
pub struct HostDetails {
    pub host: Host,
    pub mappings: Vec<super::mappings::MappingView>,
    pub certificates: Vec<Certificate>,
    /// The ACME accounts that are this host.
    pub acme_accounts: Vec<crate::models::acme::AcmeAccount>,
}

/// A host's page data, by host ID or primary name.
/// The host a key names: its host ID (in any UUID form) or its primary name (a trailing
/// dot dropped, any case).
pub fn find(conn: &mut DbConn, key: &str) -> Result<Host, AppError> {
    let host = match Host::find_by_host_id(conn, &crate::names::host_key(key))? {
        Some(h) => Some(h),
        None => Host::find_by_primary_name(
            conn,
            &crate::names::without_root_dot(key.trim()).to_ascii_lowercase(),
        )?,
    };
    host.ok_or_else(|| AppError::NotFound(format!("there is no host {key}")))
}

pub fn details(conn: &mut DbConn, key: &str) -> Result<HostDetails, AppError> {
    let host = find(conn, key)?;
    Ok(HostDetails {
        mappings: super::mappings::for_host(conn, &host.host_id)?,
        certificates: Certificate::for_host(conn, &host.host_id)?,
        acme_accounts: crate::models::acme::AcmeAccount::for_host(conn, &host.host_id)?,
        host,
    })
}

/// The hosts list: one page of hosts with their names and latest certificate, and the
/// total, judged at `now`.
pub struct Page {
    pub hosts: Vec<HostSummary>,
    pub total: i64,
    pub now: chrono::NaiveDateTime,
}

pub fn page(
    ctx: &super::Ctx,
    q: &str,
    by_created: bool,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<Page, AppError> {
    let mut conn = crate::db::get(&ctx.pool)?;
    let (hosts, total) = Host::list(&mut conn, q, by_created, descending, offset, limit)?;
    Ok(Page {
        hosts: summaries(&mut conn, hosts)?,
        total,
        now: crate::db::now(),
    })
}

pub fn details_of(ctx: &super::Ctx, key: &str) -> Result<HostDetails, AppError> {
    let mut conn = crate::db::get(&ctx.pool)?;
    details(&mut conn, key)
}

/// Registers a host by name before it asks for a certificate: at security level high a
/// known host may enroll without a token.
/// Returns the new host as its page shows it.
pub fn add(ctx: &super::Ctx, actor: &super::Actor, name: &str) -> Result<HostDetails, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        crate::models::user::Role::SecurityAdmin,
        AuditCategory::Host,
        "add_host",
        name,
    )?;
    let name = normalize_hostname(name).map_err(AppError::BadRequest)?;
    match crate::names::kind(&name) {
        crate::names::Kind::Ip => {
            return Err(AppError::BadRequest(format!(
                "{name} is an IP address: register the host under its DNS name, then map the address to it on the host's page"
            )))
        }
        crate::names::Kind::Numeric => {
            return Err(AppError::BadRequest(format!(
                "{name} ends in an all-digit label: it is neither a host name nor an IP address"
            )))
        }
        _ => {}
    }
    let settings = crate::models::settings::Settings::load(&mut conn)?;
    let policy = super::mappings::policy(ctx, &settings);
    super::mappings::refuse_reserved(&mut conn, &policy, actor, "add_host", &name)?;
    crate::db::write_tx(&mut conn, |c| {
        if let Some(h) = find_by_name(c, &name)? {
            return Err(AppError::Conflict(format!(
                "{name} is already a host (host ID {})",
                h.host_id
            )));
        }
        if !HostMapping::by_name(c, &name)?.is_empty() {
            return Err(AppError::Conflict(format!(
                "{name} is already a host name mapping of another host"
            )));
        }
        let host = create(c, &name, &actor.username, crate::db::now())?;
        details(c, &host.host_id)
    })
}

/// Opens (for the configured number of minutes) or closes a host's auto-reissue window:
/// while open, the host may get one new certificate without a token.
pub fn set_auto_reissue(
    ctx: &super::Ctx,
    actor: &super::Actor,
    host_id: &str,
    allow: bool,
) -> Result<Option<chrono::NaiveDateTime>, AppError> {
    let mut conn = crate::db::get(&ctx.pool)?;
    let action = if allow {
        "allow_auto_reissue"
    } else {
        "disallow_auto_reissue"
    };
    super::require(
        &mut conn,
        actor,
        crate::models::user::Role::SecurityAdmin,
        AuditCategory::Host,
        action,
        host_id,
    )?;
    crate::db::write_tx(&mut conn, |c| {
        let host = find(c, host_id)?;
        if allow {
            refuse_server_host(&host)?;
        }
        let minutes = crate::models::settings::Settings::load(c)?.auto_reissue_minutes;
        let until = allow.then(|| crate::db::now() + chrono::Duration::minutes(i64::from(minutes)));
        Host::set_auto_reissue(c, &host.host_id, until)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::Host,
                action,
                &actor.username,
                &host.primary_name,
            )
            .describe(match until {
                Some(u) => format!(
                    "auto reissue allowed for {} ({host_id}) until {} UTC",
                    host.primary_name,
                    u.format("%Y-%m-%d %H:%M")
                ),
                None => format!(
                    "auto reissue disallowed for {} ({host_id})",
                    host.primary_name
                ),
            }),
        )?;
        Ok(until)
    })
}

/// A row of the hosts list.
pub struct HostSummary {
    pub host: Host,
    pub other_names: Vec<String>,
    pub latest: Option<Certificate>,
}

fn summaries(conn: &mut DbConn, hosts: Vec<Host>) -> Result<Vec<HostSummary>, AppError> {
    hosts
        .into_iter()
        .map(|host| {
            let other_names = HostMapping::for_host(conn, &host.host_id)?
                .into_iter()
                .filter(|m| m.name != host.primary_name && m.state == MappingState::Approved)
                .map(|m| m.name)
                .collect();
            let latest = Certificate::latest_for_host(conn, &host.host_id)?;
            Ok(HostSummary {
                host,
                other_names,
                latest,
            })
        })
        .collect()
}
