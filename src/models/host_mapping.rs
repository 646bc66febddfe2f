use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::host_mappings;
use crate::db::DbConn;

pub const APPROVED: &str = "approved";
pub const PENDING: &str = "pending";
pub const REJECTED: &str = "rejected";

#[derive(Queryable, Clone, Debug)]
pub struct HostMapping {
    pub id: i64,
    pub host_id: String,
    pub name: String,
    pub state: String,
    pub source: String,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = host_mappings)]
pub struct NewHostMapping<'a> {
    pub host_id: &'a str,
    pub name: &'a str,
    pub state: &'a str,
    pub source: &'a str,
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
