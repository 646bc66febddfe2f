use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::audit_events;
use crate::db::DbConn;

#[derive(Queryable, Clone, Debug)]
pub struct AuditEvent {
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
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub at: NaiveDateTime,
    pub category: &'a str,
    pub action: &'a str,
    pub actor: &'a str,
    pub target: &'a str,
    pub description: &'a str,
    pub reason: &'a str,
    pub outcome: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl AuditEvent {
    pub fn latest_hash(conn: &mut DbConn) -> QueryResult<Option<String>> {
        audit_events::table
            .order(audit_events::id.desc())
            .select(audit_events::hash)
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewAuditEvent) -> QueryResult<usize> {
        diesel::insert_into(audit_events::table)
            .values(new)
            .execute(conn)
    }

    /// Events in chain order, a page at a time (for verification and export).
    pub fn after(conn: &mut DbConn, after_id: i64, limit: i64) -> QueryResult<Vec<AuditEvent>> {
        audit_events::table
            .filter(audit_events::id.gt(after_id))
            .order(audit_events::id.asc())
            .limit(limit)
            .load(conn)
    }

    /// The newest events first, optionally of one category (used by tests and pages).
    pub fn recent(
        conn: &mut DbConn,
        category: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<AuditEvent>> {
        let mut q = audit_events::table.into_boxed();
        if let Some(c) = category {
            q = q.filter(audit_events::category.eq(c.to_string()));
        }
        q.order(audit_events::id.desc()).limit(limit).load(conn)
    }
}
