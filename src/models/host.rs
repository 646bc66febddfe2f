use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{host_mappings, hosts};
use crate::db::DbConn;

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = hosts)]
pub struct Host {
    pub id: i64,
    pub host_id: String,
    pub primary_name: String,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub auto_reissue_until: Option<NaiveDateTime>,
    /// An administrator let this host renew before the renewal interval is over, once.
    pub renewal_allowed_until: Option<NaiveDateTime>,
    /// When the host last fetched the trust bundle (a renewal, the CRL or the CA
    /// certificates with its host ID): a CA migration lists hosts that have not since it
    /// began.
    #[serde(default)]
    pub trust_seen_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = hosts)]
pub struct NewHost<'a> {
    pub host_id: &'a str,
    pub primary_name: &'a str,
    pub created_at: NaiveDateTime,
    pub created_by: &'a str,
}

impl Host {
    pub fn insert(conn: &mut DbConn, new: &NewHost) -> QueryResult<Host> {
        diesel::insert_into(hosts::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find_by_host_id(conn: &mut DbConn, host_id: &str) -> QueryResult<Option<Host>> {
        hosts::table
            .filter(hosts::host_id.eq(host_id))
            .first(conn)
            .optional()
    }

    pub fn find_by_primary_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<Host>> {
        hosts::table
            .filter(hosts::primary_name.eq(name))
            .first(conn)
            .optional()
    }

    /// The hosts that have `name` as an approved mapping (its primary name included).
    pub fn find_by_approved_name(conn: &mut DbConn, name: &str) -> QueryResult<Vec<Host>> {
        hosts::table
            .inner_join(host_mappings::table.on(host_mappings::host_id.eq(hosts::host_id)))
            .filter(host_mappings::name.eq(name))
            .filter(host_mappings::state.eq(super::kinds::MappingState::Approved))
            .select(hosts::all_columns)
            .load(conn)
    }
}

impl Host {
    /// One page of hosts whose primary name or host ID contains `q`, and the total.
    pub fn list(
        conn: &mut DbConn,
        q: &str,
        by_created: bool,
        descending: bool,
        offset: i64,
        limit: i64,
    ) -> QueryResult<(Vec<Host>, i64)> {
        let filtered = || {
            let mut query = hosts::table.into_boxed::<super::Db>();
            if !q.is_empty() {
                let p = super::contains_pattern(q);
                query = query.filter(
                    super::lower(hosts::primary_name)
                        .like(p.clone())
                        .escape('\\')
                        .or(hosts::host_id.like(p).escape('\\')),
                );
            }
            query
        };
        let total: i64 = filtered().count().get_result(conn)?;
        let query = match (by_created, descending) {
            (false, false) => filtered().order(hosts::primary_name.asc()),
            (false, true) => filtered().order(hosts::primary_name.desc()),
            (true, false) => filtered().order(hosts::id.asc()),
            (true, true) => filtered().order(hosts::id.desc()),
        };
        Ok((query.offset(offset).limit(limit).load(conn)?, total))
    }
}

impl Host {
    /// The end of the auto-reissue window, if it is open at `now`.
    pub fn auto_reissue_window(&self, now: NaiveDateTime) -> Option<NaiveDateTime> {
        self.auto_reissue_until.filter(|u| *u > now)
    }

    /// Whether an administrator's auto-reissue window is open at `now`: the host may then
    /// get a new certificate without a token.
    pub fn auto_reissue_open(&self, now: NaiveDateTime) -> bool {
        self.auto_reissue_window(now).is_some()
    }

    pub fn set_auto_reissue(
        conn: &mut DbConn,
        host_id: &str,
        until: Option<NaiveDateTime>,
    ) -> QueryResult<usize> {
        diesel::update(hosts::table.filter(hosts::host_id.eq(host_id)))
            .set(hosts::auto_reissue_until.eq(until))
            .execute(conn)
    }
}

impl Host {
    pub fn set_renewal_allowed(
        conn: &mut DbConn,
        host_id: &str,
        until: Option<NaiveDateTime>,
    ) -> QueryResult<usize> {
        diesel::update(hosts::table.filter(hosts::host_id.eq(host_id)))
            .set(hosts::renewal_allowed_until.eq(until))
            .execute(conn)
    }
}
