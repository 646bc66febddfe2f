//! Pre-produced OCSP responses (`ocsp_responses`): one per CA, certificate and CertID
//! hash, shared by every process on the database. A row is data, not a promise: the
//! service checks its MAC and its status against the certificate before sending it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::ocsp_responses;
use crate::db::DbConn;

#[derive(Queryable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = ocsp_responses)]
pub struct StoredResponse {
    pub issuer_id: i64,
    pub serial: String,
    pub hash_alg: String,
    /// `CertStatus::text` of the status it answers.
    pub status: String,
    pub der: Vec<u8>,
    pub this_update: NaiveDateTime,
    /// Half its validity: when it is made again.
    pub refresh_at: NaiveDateTime,
    pub next_update: NaiveDateTime,
    /// `TokenKey::tag` over every other field.
    pub mac: String,
}

impl StoredResponse {
    pub fn find(
        conn: &mut DbConn,
        issuer_id: i64,
        serial: &str,
        hash_alg: &str,
    ) -> QueryResult<Option<StoredResponse>> {
        ocsp_responses::table
            .find((issuer_id, serial, hash_alg))
            .first(conn)
            .optional()
    }

    /// Adds the response, or replaces the stored one for its key: always, or (`outdated`
    /// given) only when that one says another status or is due again at `outdated`. So
    /// when two processes sign at once, the first one stored stays and both send it.
    /// Returns whether this row is now the stored one.
    pub fn store(&self, conn: &mut DbConn, outdated: Option<NaiveDateTime>) -> QueryResult<bool> {
        let key = (self.issuer_id, self.serial.as_str(), self.hash_alg.as_str());
        let updated = match outdated {
            None => diesel::update(ocsp_responses::table.find(key))
                .set(self)
                .execute(conn)?,
            Some(now) => diesel::update(
                ocsp_responses::table.find(key).filter(
                    ocsp_responses::status
                        .ne(&self.status)
                        .or(ocsp_responses::refresh_at.le(now)),
                ),
            )
            .set(self)
            .execute(conn)?,
        };
        if updated > 0 {
            return Ok(true);
        }
        // DO NOTHING, not a caught unique violation: PostgreSQL would abort the rest of
        // the transaction this runs in (a producer round stores 64 rows in one).
        // (diesel's MultiConnection has no ON CONFLICT: each backend's own connection.)
        let insert = || {
            diesel::insert_into(ocsp_responses::table)
                .values(self)
                .on_conflict_do_nothing()
        };
        let inserted = match conn {
            DbConn::Pg(c) => insert().execute(c)?,
            DbConn::Sqlite(c) => insert().execute(c)?,
        };
        Ok(inserted > 0)
    }

    /// The keys of responses due to be made again, oldest first.
    pub fn due(
        conn: &mut DbConn,
        now: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<Vec<(i64, String, String)>> {
        ocsp_responses::table
            .filter(ocsp_responses::refresh_at.le(now))
            .order(ocsp_responses::refresh_at.asc())
            .select((
                ocsp_responses::issuer_id,
                ocsp_responses::serial,
                ocsp_responses::hash_alg,
            ))
            .limit(limit)
            .load(conn)
    }

    /// Forgets the responses for a certificate nobody needs answered any more.
    pub fn delete(conn: &mut DbConn, issuer_id: i64, serial: &str) -> QueryResult<usize> {
        diesel::delete(
            ocsp_responses::table
                .filter(ocsp_responses::issuer_id.eq(issuer_id))
                .filter(ocsp_responses::serial.eq(serial)),
        )
        .execute(conn)
    }
}
