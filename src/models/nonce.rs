//! Single-use values that prove a request is fresh (renewal today, ACME later). Only a
//! SHA-256 digest of each value is stored: a copy of the database cannot replay one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::nonces;
use crate::db::DbConn;

#[derive(Queryable, Insertable, Clone, Debug)]
#[diesel(table_name = nonces)]
pub struct Nonce {
    pub digest: String,
    /// What the nonce is for (e.g. `renew`): a nonce never serves another purpose.
    pub purpose: String,
    /// The host it was issued for, when it is bound to one.
    pub host_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl Nonce {
    pub fn insert(conn: &mut DbConn, nonce: &Nonce) -> QueryResult<usize> {
        diesel::insert_into(nonces::table)
            .values(nonce)
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, digest: &str) -> QueryResult<Option<Nonce>> {
        nonces::table.find(digest).first(conn).optional()
    }

    /// Uses the nonce up: one conditional delete, so that under any concurrency (several
    /// server processes on one database included) a nonce is consumed at most once.
    /// Returns whether this call consumed it.
    pub fn consume(
        conn: &mut DbConn,
        digest: &str,
        purpose: &str,
        host_id: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let target = nonces::table
            .filter(nonces::digest.eq(digest))
            .filter(nonces::purpose.eq(purpose))
            .filter(nonces::expires_at.gt(now));
        let n = match host_id {
            Some(h) => diesel::delete(target.filter(nonces::host_id.eq(h))).execute(conn)?,
            None => diesel::delete(target.filter(nonces::host_id.is_null())).execute(conn)?,
        };
        Ok(n == 1)
    }

    /// Unexpired nonces of `purpose` for one host, oldest first.
    pub fn live_for_host(
        conn: &mut DbConn,
        purpose: &str,
        host_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<(String, NaiveDateTime)>> {
        nonces::table
            .filter(nonces::purpose.eq(purpose))
            .filter(nonces::host_id.eq(host_id))
            .filter(nonces::expires_at.gt(now))
            .order(nonces::created_at.asc())
            .select((nonces::digest, nonces::created_at))
            .load(conn)
    }

    pub fn delete(conn: &mut DbConn, digest: &str) -> QueryResult<usize> {
        diesel::delete(nonces::table.find(digest)).execute(conn)
    }

    /// Removes every nonce that expired before `now`.
    pub fn sweep(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(nonces::table.filter(nonces::expires_at.le(now))).execute(conn)
    }
}
