use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::login_attempts;
use crate::db::DbConn;

#[derive(Insertable)]
#[diesel(table_name = login_attempts)]
pub struct NewLoginAttempt<'a> {
    pub username: &'a str,
    pub address: &'a str,
    pub at: NaiveDateTime,
    pub success: bool,
}

pub struct LoginAttempt;

impl LoginAttempt {
    pub fn insert(conn: &mut DbConn, new: &NewLoginAttempt) -> QueryResult<usize> {
        diesel::insert_into(login_attempts::table)
            .values(new)
            .execute(conn)
    }

    /// Failed attempts since `since` for this username, and for this address, with the
    /// time of the latest of each.
    pub fn failures_since(
        conn: &mut DbConn,
        username: &str,
        address: &str,
        since: NaiveDateTime,
    ) -> QueryResult<(i64, i64, Option<NaiveDateTime>)> {
        let base = || {
            login_attempts::table
                .filter(login_attempts::success.eq(false))
                .filter(login_attempts::at.ge(since))
        };
        let by_user: i64 = base()
            .filter(login_attempts::username.eq(username))
            .count()
            .get_result(conn)?;
        let by_address: i64 = base()
            .filter(login_attempts::address.eq(address))
            .count()
            .get_result(conn)?;
        let latest: Option<NaiveDateTime> = base()
            .filter(
                login_attempts::username
                    .eq(username)
                    .or(login_attempts::address.eq(address)),
            )
            .select(diesel::dsl::max(login_attempts::at))
            .first(conn)?;
        Ok((by_user, by_address, latest))
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(login_attempts::table.filter(login_attempts::at.lt(before))).execute(conn)
    }
}
