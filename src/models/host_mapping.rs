use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::host_mappings;
use crate::db::DbConn;

pub use super::kinds::{MappingSource, MappingState};

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = host_mappings)]
pub struct HostMapping {
    pub id: i64,
    pub host_id: String,
    pub name: String,
    pub state: MappingState,
    pub source: MappingSource,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = host_mappings)]
pub struct NewHostMapping<'a> {
    pub host_id: &'a str,
    pub name: &'a str,
    pub state: MappingState,
    pub source: MappingSource,
    pub created_at: NaiveDateTime,
}

impl HostMapping {
    pub fn insert(conn: &mut DbConn, new: &NewHostMapping) -> QueryResult<usize> {
        diesel::insert_into(host_mappings::table)
            .values(new)
            .execute(conn)
    }

    pub fn for_host(conn: &mut DbConn, host_id: &str) -> QueryResult<Vec<HostMapping>> {
        host_mappings::table
            .filter(host_mappings::host_id.eq(host_id))
            .order(host_mappings::name.asc())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, host_id: &str, name: &str) -> QueryResult<Option<HostMapping>> {
        host_mappings::table
            .filter(host_mappings::host_id.eq(host_id))
            .filter(host_mappings::name.eq(name))
            .first(conn)
            .optional()
    }

    /// Every mapping of `name`, on any host.
    pub fn by_name(conn: &mut DbConn, name: &str) -> QueryResult<Vec<HostMapping>> {
        host_mappings::table
            .filter(host_mappings::name.eq(name))
            .load(conn)
    }
}

impl HostMapping {
    pub fn set_state(conn: &mut DbConn, id: i64, state: MappingState) -> QueryResult<usize> {
        diesel::update(host_mappings::table.find(id))
            .set(host_mappings::state.eq(state))
            .execute(conn)
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
        diesel::delete(host_mappings::table.find(id)).execute(conn)
    }

    /// Mappings in `state` (all if `None`), by name; at most `limit`.
    pub fn in_state(
        conn: &mut DbConn,
        state: Option<MappingState>,
        limit: i64,
    ) -> QueryResult<Vec<HostMapping>> {
        let mut q = host_mappings::table.into_boxed::<super::Db>();
        if let Some(s) = state {
            q = q.filter(host_mappings::state.eq(s));
        }
        q.order((host_mappings::name.asc(), host_mappings::host_id.asc()))
            .limit(limit)
            .load(conn)
    }

    pub fn count_in_state(conn: &mut DbConn, state: MappingState) -> QueryResult<i64> {
        host_mappings::table
            .filter(host_mappings::state.eq(state))
            .count()
            .get_result(conn)
    }

    /// Names mapped to more than one host.
    pub fn conflicting_names(conn: &mut DbConn) -> QueryResult<Vec<String>> {
        use diesel::dsl::count_star;
        host_mappings::table
            .group_by(host_mappings::name)
            .having(count_star().gt(1))
            .select(host_mappings::name)
            .load(conn)
    }
}
