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

/// Failed attempts counted for throttling, each with the time of the latest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failures {
    /// For this username from this address.
    pub pair: i64,
    pub pair_latest: Option<NaiveDateTime>,
    /// From this address, whatever the username.
    pub address: i64,
    pub address_latest: Option<NaiveDateTime>,
}

pub struct LoginAttempt;

impl LoginAttempt {
    pub fn insert(conn: &mut DbConn, new: &NewLoginAttempt) -> QueryResult<usize> {
        diesel::insert_into(login_attempts::table)
            .values(new)
            .execute(conn)
    }

    /// Failed attempts since `since` for (username, address), and for the address alone.
    pub fn failures_since(
        conn: &mut DbConn,
        username: &str,
        address: &str,
        since: NaiveDateTime,
    ) -> QueryResult<Failures> {
        let base = || {
            login_attempts::table
                .filter(login_attempts::success.eq(false))
                .filter(login_attempts::at.ge(since))
                .filter(login_attempts::address.eq(address))
        };
        let (pair, pair_latest): (i64, Option<NaiveDateTime>) = base()
            .filter(login_attempts::username.eq(username))
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::max(login_attempts::at),
            ))
            .first(conn)?;
        let (by_address, address_latest): (i64, Option<NaiveDateTime>) = base()
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::max(login_attempts::at),
            ))
            .first(conn)?;
        Ok(Failures {
            pair,
            pair_latest,
            address: by_address,
            address_latest,
        })
    }

    /// Forgets every attempt for `username` (an operator reset the password).
    pub fn clear_for_user(conn: &mut DbConn, username: &str) -> QueryResult<usize> {
        diesel::delete(login_attempts::table.filter(login_attempts::username.eq(username)))
            .execute(conn)
    }

    /// A successful login forgets the failures of the same (username, address).
    pub fn clear_pair(conn: &mut DbConn, username: &str, address: &str) -> QueryResult<usize> {
        diesel::delete(
            login_attempts::table
                .filter(login_attempts::username.eq(username))
                .filter(login_attempts::address.eq(address))
                .filter(login_attempts::success.eq(false)),
        )
        .execute(conn)
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(login_attempts::table.filter(login_attempts::at.lt(before))).execute(conn)
    }
}
