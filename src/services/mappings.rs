//! Host ID-to-host name mappings: added by hand or discovered from certificate requests,
//! approved, rejected or deleted; a name shared by several hosts is a conflict.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use super::audit::{self, Event};
use super::hosts::normalize_hostname;
use super::{require, Actor, Ctx};
use crate::db::{self, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::host::Host;
use crate::models::host_mapping::{HostMapping, MappingSource, MappingState, NewHostMapping};
use crate::models::kinds::AuditCategory;
use crate::models::settings::Settings;
use crate::models::user::Role;
use crate::names::{self, Kind, NamePolicy};

/// The name policy in force: the settings' lists and this server's own names.
pub fn policy(ctx: &Ctx, settings: &Settings) -> NamePolicy {
    NamePolicy::new(
        &settings.allowed_domains,
        &settings.reserved_names,
        &ctx.site.server_names,
    )
}

/// A name as an administrator types it for a mapping: an IP address (any notation) or a
/// host name. A name ending in an all-digit label is neither.
pub fn parse_name(input: &str) -> Result<String, AppError> {
    if let Some(ip) = names::canonical_ip(input) {
        return Ok(ip);
    }
    let name = normalize_hostname(input).map_err(AppError::BadRequest)?;
    if names::kind(&name) == Kind::Numeric {
        return Err(AppError::BadRequest(format!(
            "{name} ends in an all-digit label: it is neither a host name nor an IP address"
        )));
    }
    Ok(name)
}

/// Refuses an administrator's action on a reserved name, with a failed audit event.
pub fn refuse_reserved(
    conn: &mut DbConn,
    policy: &NamePolicy,
    actor: &Actor,
    action: &'static str,
    name: &str,
) -> Result<(), AppError> {
    let Some(why) = policy.refuse_reserved(name) else {
        return Ok(());
    };
    audit::record_alone(
        conn,
        &Event::new(AuditCategory::Host, action, &actor.username, name)
            .describe(format!("refused: {why}"))
            .failed(),
    )?;
    Err(AppError::Unprocessable(why))
}

/// A mapping with the other hosts that share its name.
#[derive(Clone, Debug)]
pub struct MappingView {
    pub mapping: HostMapping,
    pub primary_name: String,
    pub is_primary: bool,
    /// `(host_id, primary name)` of every other host mapped to the same name.
    pub shared_with: Vec<(String, String)>,
}

fn others(c: &mut DbConn, name: &str, host_id: &str) -> Result<Vec<HostMapping>, AppError> {
    Ok(HostMapping::by_name(c, name)?
        .into_iter()
        .filter(|m| m.host_id != host_id)
        .collect())
}

fn view(
    c: &mut DbConn,
    m: HostMapping,
    names: &mut BTreeMap<String, String>,
) -> Result<MappingView, AppError> {
    let mut primary_of = |c: &mut DbConn, id: &str| -> Result<String, AppError> {
        if let Some(n) = names.get(id) {
            return Ok(n.clone());
        }
        let n = Host::find_by_host_id(c, id)?
            .map(|h| h.primary_name)
            .unwrap_or_default();
        names.insert(id.to_string(), n.clone());
        Ok(n)
    };
    let primary_name = primary_of(c, &m.host_id)?;
    let mut shared_with = Vec::new();
    for o in others(c, &m.name, &m.host_id)? {
        let n = primary_of(c, &o.host_id)?;
        shared_with.push((o.host_id, n));
    }
    Ok(MappingView {
        is_primary: primary_name == m.name,
        primary_name,
        shared_with,
        mapping: m,
    })
}

pub fn for_host(c: &mut DbConn, host_id: &str) -> Result<Vec<MappingView>, AppError> {
    let mut names = BTreeMap::new();
    HostMapping::for_host(c, host_id)?
        .into_iter()
        .map(|m| view(c, m, &mut names))
        .collect()
}

/// The mappings to approve (pending; conflicts first) and all mappings.
pub fn overview(ctx: &Ctx) -> Result<(Vec<MappingView>, Vec<MappingView>), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let mut names = BTreeMap::new();
    let mut pending: Vec<MappingView> =
        HostMapping::in_state(&mut conn, Some(MappingState::Pending), 1000)?
            .into_iter()
            .map(|m| view(&mut conn, m, &mut names))
            .collect::<Result<_, _>>()?;
    pending.sort_by_key(|v| (v.shared_with.is_empty(), v.mapping.name.clone()));
    let all = HostMapping::in_state(&mut conn, None, 5000)?
        .into_iter()
        .map(|m| view(&mut conn, m, &mut names))
        .collect::<Result<_, _>>()?;
    Ok((pending, all))
}

/// `discover` under the settings' own lists only (without this server's names, which
/// need the `Ctx`): for callers that have no `Ctx` at hand.
pub fn discover(
    c: &mut WriteTx,
    host: &Host,
    name: &str,
    settings: &Settings,
    actor: &str,
    now: NaiveDateTime,
) -> Result<Option<MappingState>, AppError> {
    let policy = NamePolicy::new(&settings.allowed_domains, &settings.reserved_names, &[]);
    discover_with(
        c,
        host,
        name,
        &policy,
        settings.auto_map_host_names,
        actor,
        now,
    )
}

/// Records a name seen for a host in a certificate request: approved at once only when
/// automatic mapping is on, the name lies in the allowed domains, is not reserved and no
/// other host has it; pending otherwise. A reserved name, or one that is neither a host
/// name nor an address, is not recorded at all (`IGNORED`). Returns the state the name
/// has for this host afterwards.
/// The host's approved names that may go into a certificate today: an administrator
/// allowed each, and none has since become reserved or turned out all-digit.
pub fn certifiable(
    c: &mut DbConn,
    policy: &NamePolicy,
    host: &Host,
) -> Result<Vec<String>, AppError> {
    Ok(HostMapping::for_host(c, &host.host_id)?
        .into_iter()
        .filter(|m| {
            m.state == MappingState::Approved
                && !policy.is_reserved(&m.name)
                && names::kind(&m.name) != Kind::Numeric
        })
        .map(|m| m.name)
        .collect())
}

pub fn discover_with(
    c: &mut WriteTx,
    host: &Host,
    name: &str,
    policy: &NamePolicy,
    auto_map: bool,
    actor: &str,
    now: NaiveDateTime,
) -> Result<Option<MappingState>, AppError> {
    if policy.is_reserved(name) || names::kind(name) == Kind::Numeric {
        return Ok(None);
    }
    if let Some(m) = HostMapping::find(c, &host.host_id, name)? {
        return Ok(Some(m.state));
    }
    let conflict = !others(c, name, &host.host_id)?.is_empty();
    let allowed = policy.auto_approvable(name);
    let state = if auto_map && allowed && !conflict {
        MappingState::Approved
    } else {
        MappingState::Pending
    };
    HostMapping::insert(
        c,
        &NewHostMapping {
            host_id: &host.host_id,
            name,
            state,
            source: MappingSource::Auto,
            created_at: now,
        },
    )?;
    let why = match (state, conflict) {
        (MappingState::Approved, _) => "approved automatically".to_string(),
        (_, true) => "pending: the name is also mapped to another host".to_string(),
        _ if !auto_map => "pending: automatic mapping is off".to_string(),
        _ => match names::kind(name) {
            Kind::Ip => "pending: an IP address is mapped only by an administrator".to_string(),
            Kind::SingleLabel => {
                "pending: a single-label name is mapped only by an administrator".to_string()
            }
            _ if policy.allowed_domains.is_empty() => {
                "pending: no allowed domains are set, so no name is approved automatically"
                    .to_string()
            }
            _ => "pending: the name is outside the allowed domains".to_string(),
        },
    };
    audit::record(
        c,
        &Event::new(AuditCategory::Host, "discover_mapping", actor, name).describe(format!(
            "name {name} seen for host {} ({}): {why}",
            host.primary_name, host.host_id
        )),
    )?;
    Ok(Some(state))
}

fn find_host(c: &mut DbConn, key: &str) -> Result<Host, AppError> {
    super::hosts::find(c, key)
}

fn find_mapping(c: &mut DbConn, host: &Host, name: &str) -> Result<HostMapping, AppError> {
    HostMapping::find(c, &host.host_id, name)?.ok_or_else(|| {
        AppError::NotFound(format!("{} has no mapping named {name}", host.primary_name))
    })
}

/// An administrator maps a name to a host by hand. A name another host already has waits
/// for an explicit approval.
pub fn add(ctx: &Ctx, actor: &Actor, host_id: &str, name: &str) -> Result<MappingState, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Host,
        "add_mapping",
        name,
    )?;
    let name = parse_name(name)?;
    let policy = policy(ctx, &Settings::load(&mut conn)?);
    refuse_reserved(&mut conn, &policy, actor, "add_mapping", &name)?;
    db::write_tx(&mut conn, |c| {
        let host = find_host(c, host_id)?;
        super::hosts::refuse_server_host(&host)?;
        if HostMapping::find(c, &host.host_id, &name)?.is_some() {
            return Err(AppError::Conflict(format!(
                "{name} is already a mapping of {}",
                host.primary_name
            )));
        }
        let shared = others(c, &name, &host.host_id)?;
        let state = if shared.is_empty() {
            MappingState::Approved
        } else {
            MappingState::Pending
        };
        HostMapping::insert(
            c,
            &NewHostMapping {
                host_id: &host.host_id,
                name: &name,
                state,
                source: MappingSource::Manual,
                created_at: db::now(),
            },
        )?;
        audit::record(
            c,
            &Event::new(AuditCategory::Host, "add_mapping", &actor.username, &name).describe(
                format!(
                    "name {name} mapped to host {} ({}): {state}{}",
                    host.primary_name,
                    host.host_id,
                    if shared.is_empty() {
                        ""
                    } else {
                        ", because other hosts share the name"
                    }
                ),
            ),
        )?;
        Ok(state)
    })
}

/// Approves, rejects or deletes one mapping (`decision`: approve | reject | delete).
pub fn decide(
    ctx: &Ctx,
    actor: &Actor,
    host_id: &str,
    name: &str,
    decision: &str,
) -> Result<(), AppError> {
    decide_many(
        ctx,
        actor,
        &[(host_id.to_string(), name.to_string())],
        decision,
    )
    .map(|_| ())
}

/// Approves, rejects or deletes every selected `(host ID, name)` mapping in one
/// transaction: all of them, or (when one cannot be) none. Returns how many.
pub fn decide_many(
    ctx: &Ctx,
    actor: &Actor,
    selected: &[(String, String)],
    decision: &str,
) -> Result<usize, AppError> {
    let action: &'static str = match decision {
        "approve" => "approve_mapping",
        "reject" => "reject_mapping",
        "delete" => "delete_mapping",
        _ => {
            return Err(AppError::NotFound(format!(
                "there is no mapping action {decision}"
            )))
        }
    };
    if selected.is_empty() {
        return Err(AppError::BadRequest("select at least one mapping".into()));
    }
    let mut conn = db::get(&ctx.pool)?;
    let target = if selected.len() == 1 {
        selected[0].1.clone()
    } else {
        format!("{} mappings", selected.len())
    };
    require(
        &mut conn,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Host,
        action,
        &target,
    )?;
    if decision == "approve" {
        let policy = policy(ctx, &Settings::load(&mut conn)?);
        for (_, name) in selected {
            refuse_reserved(&mut conn, &policy, actor, action, name)?;
            if names::kind(name) == Kind::Numeric {
                return Err(AppError::Unprocessable(format!(
                    "{name} ends in an all-digit label: it is neither a host name nor an IP address, and cannot be approved; reject or delete it"
                )));
            }
        }
    }
    db::write_tx(&mut conn, |c| {
        for (host_id, name) in selected {
            decide_in(c, actor, host_id, name, decision, action)?;
        }
        Ok(selected.len())
    })
}

fn decide_in(
    c: &mut WriteTx,
    actor: &Actor,
    host_id: &str,
    name: &str,
    decision: &str,
    action: &'static str,
) -> Result<(), AppError> {
    let host = find_host(c, host_id)?;
    let m = find_mapping(c, &host, name)?;
    if m.name == host.primary_name && decision != "approve" {
        return Err(AppError::Conflict(format!(
            "{name} is the primary name of this host and cannot be {}",
            if decision == "reject" {
                "rejected"
            } else {
                "deleted"
            }
        )));
    }
    match decision {
        "approve" => {
            if let Some(o) = others(c, name, &host.host_id)?
                .into_iter()
                .find(|o| o.state == MappingState::Approved)
            {
                return Err(AppError::Conflict(format!(
                    "{name} is an approved mapping of host {}: reject or delete it there first",
                    o.host_id
                )));
            }
            HostMapping::set_state(c, m.id, MappingState::Approved)?;
        }
        "reject" => {
            HostMapping::set_state(c, m.id, MappingState::Rejected)?;
        }
        _ => {
            HostMapping::delete(c, m.id)?;
        }
    }
    audit::record(
        c,
        &Event::new(AuditCategory::Host, action, &actor.username, name).describe(format!(
            "mapping {name} of host {} ({}) {}",
            host.primary_name,
            host.host_id,
            match decision {
                "approve" => "approved",
                "reject" => "rejected",
                _ => "deleted",
            }
        )),
    )
}
