use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::audit_events;
use crate::db::DbConn;

pub use super::kinds::{AuditCategory, Outcome};

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub at: NaiveDateTime,
    pub category: AuditCategory,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub description: String,
    pub reason: String,
    pub outcome: Outcome,
    pub prev_hash: String,
    pub hash: String,
    /// 1: the old SHA-256 chain (before the key); 2: HMAC-SHA256 with audit.key.
    #[serde(default = "one_i32")]
    pub chain: i32,
    /// How many refusals this event stands for (aggregated per source, action and minute).
    #[serde(default = "one_i64")]
    pub occurrences: i64,
    #[serde(default)]
    pub first_at: Option<NaiveDateTime>,
    #[serde(default)]
    pub last_at: Option<NaiveDateTime>,
}

/// An audit row as stored, its category and outcome as the texts in their columns. This is
/// what verification hashes, so that a row edited to a text no type knows is reported as an
/// edited event, where it is, instead of as a row that cannot be read. Serialised, it is
/// the same JSON as the `AuditEvent` it stands for (the audit sink's lines).
#[derive(Queryable, Clone, Debug, serde::Serialize)]
#[diesel(table_name = audit_events)]
pub struct StoredEvent {
    pub id: i64,
    pub at: NaiveDateTime,
    pub category: String,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub description: String,
    pub reason: String,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
    pub chain: i32,
    pub occurrences: i64,
    pub first_at: Option<NaiveDateTime>,
    pub last_at: Option<NaiveDateTime>,
}

fn one_i32() -> i32 {
    1
}

fn one_i64() -> i64 {
    1
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub at: NaiveDateTime,
    pub category: AuditCategory,
    pub action: &'a str,
    pub actor: &'a str,
    pub target: &'a str,
    pub description: &'a str,
    pub reason: &'a str,
    pub outcome: Outcome,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub chain: i32,
    pub occurrences: i64,
    pub first_at: Option<NaiveDateTime>,
    pub last_at: Option<NaiveDateTime>,
}

impl AuditEvent {
    pub fn latest_hash(conn: &mut DbConn) -> QueryResult<Option<String>> {
        audit_events::table
            .order(audit_events::id.desc())
            .select(audit_events::hash)
            .first(conn)
            .optional()
    }

    pub fn hash_of(conn: &mut DbConn, id: i64) -> QueryResult<Option<String>> {
        audit_events::table
            .find(id)
            .select(audit_events::hash)
            .get_result(conn)
            .optional()
    }

    /// Inserts an event; returns its id.
    pub fn insert(conn: &mut DbConn, new: &NewAuditEvent) -> QueryResult<i64> {
        diesel::insert_into(audit_events::table)
            .values(new)
            .returning(audit_events::id)
            .get_result(conn)
    }

    /// The id and chain version of the newest event.
    pub fn latest_chain(conn: &mut DbConn) -> QueryResult<Option<(i64, i32)>> {
        audit_events::table
            .order(audit_events::id.desc())
            .select((audit_events::id, audit_events::chain))
            .first(conn)
            .optional()
    }

    /// Whether any event is on the keyed chain.
    pub fn any_keyed(conn: &mut DbConn) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            audit_events::table.filter(audit_events::chain.ge(2)),
        ))
        .get_result(conn)
    }

    /// Every event id after `after_id` (for comparing with the audit sink).
    pub fn ids_after(conn: &mut DbConn, after_id: i64) -> QueryResult<Vec<i64>> {
        audit_events::table
            .filter(audit_events::id.gt(after_id))
            .order(audit_events::id.asc())
            .select(audit_events::id)
            .load(conn)
    }

    /// Events in chain order, a page at a time (for verification and export).
    pub fn after(conn: &mut DbConn, after_id: i64, limit: i64) -> QueryResult<Vec<AuditEvent>> {
        audit_events::table
            .filter(audit_events::id.gt(after_id))
            .order(audit_events::id.asc())
            .limit(limit)
            .load(conn)
    }

    /// Events in chain order as stored, a page at a time (for verification).
    pub fn stored_after(
        conn: &mut DbConn,
        after_id: i64,
        limit: i64,
    ) -> QueryResult<Vec<StoredEvent>> {
        audit_events::table
            .filter(audit_events::id.gt(after_id))
            .order(audit_events::id.asc())
            .limit(limit)
            .load(conn)
    }

    /// The newest events first, optionally of one category (used by tests and pages).
    pub fn recent(
        conn: &mut DbConn,
        category: Option<AuditCategory>,
        limit: i64,
    ) -> QueryResult<Vec<AuditEvent>> {
        let mut q = audit_events::table.into_boxed();
        if let Some(c) = category {
            q = q.filter(audit_events::category.eq(c));
        }
        q.order(audit_events::id.desc()).limit(limit).load(conn)
    }
}

/// What the audit page filters by.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub category: Option<AuditCategory>,
    pub actor: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    pub q: String,
}

fn filtered<'a>(f: &AuditFilter) -> audit_events::BoxedQuery<'a, super::Db> {
    let mut q = audit_events::table.into_boxed();
    if let Some(c) = &f.category {
        q = q.filter(audit_events::category.eq(*c));
    }
    if let Some(a) = &f.actor {
        q = q.filter(audit_events::actor.eq(a.clone()));
    }
    if let Some(o) = &f.outcome {
        q = q.filter(audit_events::outcome.eq(*o));
    }
    if let Some(t) = f.from {
        q = q.filter(audit_events::at.ge(t));
    }
    if let Some(t) = f.to {
        q = q.filter(audit_events::at.lt(t));
    }
    if !f.q.is_empty() {
        let p = super::contains_pattern(&f.q);
        q = q.filter(
            super::lower(audit_events::description)
                .like(p.clone())
                .escape('\\')
                .or(super::lower(audit_events::target)
                    .like(p.clone())
                    .escape('\\'))
                .or(super::lower(audit_events::action)
                    .like(p.clone())
                    .escape('\\'))
                .or(super::lower(audit_events::reason).like(p).escape('\\')),
        );
    }
    q
}

impl AuditEvent {
    /// One page, newest first, and the number of matching events.
    pub fn list(
        conn: &mut DbConn,
        f: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> QueryResult<(Vec<AuditEvent>, i64)> {
        let total: i64 = filtered(f).count().get_result(conn)?;
        let rows = filtered(f)
            .order(audit_events::id.desc())
            .offset(offset)
            .limit(limit)
            .load(conn)?;
        Ok((rows, total))
    }

    /// Matching events older than `before_id`, newest first: the export's cursor.
    pub fn page_before(
        conn: &mut DbConn,
        f: &AuditFilter,
        before_id: i64,
        limit: i64,
    ) -> QueryResult<Vec<AuditEvent>> {
        filtered(f)
            .filter(audit_events::id.lt(before_id))
            .order(audit_events::id.desc())
            .limit(limit)
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<AuditEvent>> {
        audit_events::table.find(id).first(conn).optional()
    }

    /// The newest event at or before `cutoff`, if any: retention removes up to it.
    pub fn last_before(
        conn: &mut DbConn,
        cutoff: NaiveDateTime,
    ) -> QueryResult<Option<AuditEvent>> {
        audit_events::table
            .filter(audit_events::at.lt(cutoff))
            .order(audit_events::id.desc())
            .first(conn)
            .optional()
    }

    pub fn delete_through(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
        diesel::delete(audit_events::table.filter(audit_events::id.le(id))).execute(conn)
    }

    pub fn actors(conn: &mut DbConn) -> QueryResult<Vec<String>> {
        audit_events::table
            .select(audit_events::actor)
            .distinct()
            .order(audit_events::actor.asc())
            .limit(500)
            .load(conn)
    }
}

impl AuditEvent {
    /// When the newest successful event with `action` happened.
    pub fn last_of_action(conn: &mut DbConn, action: &str) -> QueryResult<Option<NaiveDateTime>> {
        audit_events::table
            .filter(audit_events::action.eq(action))
            .filter(audit_events::outcome.eq(Outcome::Success))
            .order(audit_events::id.desc())
            .select(audit_events::at)
            .first(conn)
            .optional()
    }
}
