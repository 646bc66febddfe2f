//! Reading the audit trail: filters, one event, the CSV export, the chain's state.

use chrono::{NaiveDate, NaiveDateTime};

use super::audit::ChainStatus;
use super::Ctx;
use crate::db;
use crate::error::AppError;
use crate::models::audit_event::{AuditEvent, AuditFilter};
use crate::models::kinds::{AuditCategory, Outcome};

/// The audit page's query as typed.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    pub category: Option<String>,
    pub user: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub q: Option<String>,
    pub page: Option<String>,
    /// `full`: verify the whole chain now instead of what was added since the last check.
    pub verify: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn date(field: &str, s: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        AppError::BadRequest(format!(
            "'{field}' must be a date like 2026-11-23, not '{}'",
            s.chars().take(40).collect::<String>()
        ))
    })
}

/// Parses the query; `to` includes the whole day it names.
pub fn parse(q: &AuditQuery) -> Result<AuditFilter, AppError> {
    let category = match non_empty(&q.category) {
        None => None,
        Some(c) => Some(AuditCategory::parse(c).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown category '{}': use {}",
                c.to_ascii_uppercase(),
                AuditCategory::KEYS.join(", ")
            ))
        })?),
    };
    let outcome = match non_empty(&q.outcome) {
        None => None,
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
            AppError::BadRequest(format!("unknown outcome '{o}': use success or failure"))
        })?),
    };
    let from: Option<NaiveDateTime> = match non_empty(&q.from) {
        None => None,
        Some(s) => Some(date("from", s)?.and_hms_opt(0, 0, 0).unwrap_or_default()),
    };
    let to: Option<NaiveDateTime> = match non_empty(&q.to) {
        None => None,
        Some(s) => Some(
            date("to", s)?.and_hms_opt(0, 0, 0).unwrap_or_default() + chrono::Duration::days(1),
        ),
    };
    Ok(AuditFilter {
        category,
        actor: non_empty(&q.user).map(|u| u.chars().take(200).collect()),
        outcome,
        from,
        to,
        q: non_empty(&q.q)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    })
}

fn list(
    ctx: &Ctx,
    f: &AuditFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AuditEvent>, i64, Vec<String>), AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let (rows, total) = AuditEvent::list(&mut conn, f, offset, limit)?;
    Ok((rows, total, AuditEvent::actors(&mut conn)?))
}

pub fn event(ctx: &Ctx, id: i64) -> Result<AuditEvent, AppError> {
    AuditEvent::find(&mut *db::get(&ctx.pool)?, id)?
        .ok_or_else(|| AppError::NotFound(format!("there is no audit event {id}")))
}

/// The chain's state for the audit page: the events added since this process last
/// verified it (and that last event unchanged), so that a page view costs what is new, not
/// the whole trail. The whole chain is checked hourly (`full_check`), and by
/// `hostca audit verify`.
/// One page of filtered events, newest first, and the actors to filter by, judged at
/// `now`.
pub struct Events {
    pub events: Vec<AuditEvent>,
    pub total: i64,
    pub actors: Vec<String>,
    pub page_no: i64,
    pub pages: i64,
    pub now: NaiveDateTime,
}

pub fn events(ctx: &Ctx, q: &AuditQuery, page_size: i64) -> Result<Events, AppError> {
    let filter = parse(q)?;
    let page_no = match non_empty(&q.page).unwrap_or("") {
        "" => 1,
        p => p
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| AppError::BadRequest(format!("page '{p}' is not a page number")))?,
    };
    let (events, total, actors) = list(ctx, &filter, (page_no - 1) * page_size, page_size)?;
    Ok(Events {
        events,
        total,
        actors,
        page_no,
        pages: ((total + page_size - 1) / page_size).max(1),
        now: db::now(),
    })
}

/// The audit page: the events and the chain's state.
pub fn page(ctx: &Ctx, q: &AuditQuery, page_size: i64) -> Result<(Events, ChainStatus), AppError> {
    Ok((events(ctx, q, page_size)?, chain(ctx, q)?))
}

fn chain(ctx: &Ctx, q: &AuditQuery) -> Result<ChainStatus, AppError> {
    check(ctx, non_empty(&q.verify) != Some("full"))
}

/// Verifies the whole chain from its anchor, and remembers how far it got.
pub fn full_check(ctx: &Ctx) -> Result<ChainStatus, AppError> {
    check(ctx, false)
}

/// Verifies the events added since the last check (cheap: the notification scan's).
pub fn quick_check(ctx: &Ctx) -> Result<ChainStatus, AppError> {
    check(ctx, true)
}

fn check(ctx: &Ctx, incremental: bool) -> Result<ChainStatus, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    // Held while verifying: concurrent page views wait for one check instead of each
    // running its own.
    let mut verified = ctx.audit_verified.lock().unwrap_or_else(|p| p.into_inner());
    let earlier = verified.as_ref().filter(|_| incremental);
    let (status, reached) = super::audit::verify_chain_of(&mut conn, &ctx.data_dir, earlier)?;
    *verified = reached;
    Ok(status)
}

/// One batch of the export, newest first, older than `before_id`.
pub fn export_batch(
    ctx: &Ctx,
    f: &AuditFilter,
    before_id: i64,
) -> Result<Vec<AuditEvent>, AppError> {
    Ok(AuditEvent::page_before(
        &mut *db::get(&ctx.pool)?,
        f,
        before_id,
        2000,
    )?)
}

/// A CSV field: quoted, quotes doubled, and a leading formula character neutralised so
/// that a spreadsheet never runs what an attacker typed into a name.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub const CSV_HEADER: &str =
    "id,at_utc,category,action,user,target,description,reason,outcome,hash\r\n";

pub fn csv_line(e: &AuditEvent) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{}\r\n",
        e.id,
        super::audit::format_at(e.at),
        csv_field(e.category.key()),
        csv_field(&e.action),
        csv_field(&e.actor),
        csv_field(&e.target),
        csv_field(&e.description),
        csv_field(&e.reason),
        csv_field(e.outcome.key()),
        e.hash
    )
}
