use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConn;

pub use super::kinds::Role;

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub session_generation: i64,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
    pub password_changed_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
}

impl User {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<User>> {
        users::table.find(id).first(conn).optional()
    }

    pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::username.eq(username))
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewUser) -> QueryResult<usize> {
        diesel::insert_into(users::table).values(new).execute(conn)
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        users::table.count().get_result(conn)
    }

    pub fn record_login(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set(users::last_login_at.eq(Some(at)))
            .execute(conn)
    }
}

impl User {
    pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
        users::table.order(users::username.asc()).load(conn)
    }

    pub fn active_administrators(conn: &mut DbConn) -> QueryResult<Vec<User>> {
        users::table
            .filter(users::role.eq(Role::Administrator))
            .filter(users::disabled.eq(false))
            .load(conn)
    }

    pub fn set_role(conn: &mut DbConn, id: i64, role: Role) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set(users::role.eq(role))
            .execute(conn)
    }

    /// Disabling ends the user's sessions: the generation their cookies carry moves on.
    pub fn set_disabled(conn: &mut DbConn, id: i64, disabled: bool) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::disabled.eq(disabled),
                users::session_generation.eq(users::session_generation + 1),
            ))
            .execute(conn)
    }

    /// A new password ends every other session of the user.
    pub fn set_password(
        conn: &mut DbConn,
        id: i64,
        hash: &str,
        must_change: bool,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(hash),
                users::must_change_password.eq(must_change),
                users::password_changed_at.eq(Some(at)),
                users::session_generation.eq(users::session_generation + 1),
            ))
            .execute(conn)
    }
}

/// Sessions ended by logging out (cookie sessions live in the browser: the server keeps
/// the ids it must refuse, until they would have expired anyway).
pub struct EndedSession;

impl EndedSession {
    pub fn insert(
        conn: &mut DbConn,
        session_id: &str,
        user_id: i64,
        ended_at: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QueryResult<usize> {
        use crate::db::schema::ended_sessions as e;
        let existing: i64 = e::table
            .filter(e::session_id.eq(session_id))
            .count()
            .get_result(conn)?;
        if existing > 0 {
            return Ok(0);
        }
        diesel::insert_into(e::table)
            .values((
                e::session_id.eq(session_id),
                e::user_id.eq(user_id),
                e::ended_at.eq(ended_at),
                e::expires_at.eq(expires_at),
            ))
            .execute(conn)
    }

    pub fn is_ended(conn: &mut DbConn, session_id: &str) -> QueryResult<bool> {
        use crate::db::schema::ended_sessions as e;
        let n: i64 = e::table
            .filter(e::session_id.eq(session_id))
            .count()
            .get_result(conn)?;
        Ok(n > 0)
    }

    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        use crate::db::schema::ended_sessions as e;
        diesel::delete(e::table.filter(e::expires_at.lt(now))).execute(conn)
    }
}
