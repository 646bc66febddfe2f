use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::api_keys;
use crate::db::DbConn;

pub use super::kinds::ApiKeyState;

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub digest: String,
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub digest: &'a str,
    pub prefix: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

impl ApiKey {
    /// Revoked wins over expired: it says what someone did to the key.
    pub fn state(&self, now: NaiveDateTime) -> ApiKeyState {
        if self.revoked_at.is_some() {
            ApiKeyState::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            ApiKeyState::Expired
        } else {
            ApiKeyState::Active
        }
    }

    pub fn insert(conn: &mut DbConn, new: &NewApiKey) -> QueryResult<usize> {
        diesel::insert_into(api_keys::table)
            .values(new)
            .execute(conn)
    }

    pub fn for_user(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<ApiKey>> {
        api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .order(api_keys::id.desc())
            .load(conn)
    }

    pub fn find_by_digest(conn: &mut DbConn, digest: &str) -> QueryResult<Option<ApiKey>> {
        api_keys::table
            .filter(api_keys::digest.eq(digest))
            .first(conn)
            .optional()
    }

    pub fn find_for_user(
        conn: &mut DbConn,
        user_id: i64,
        name: &str,
    ) -> QueryResult<Option<ApiKey>> {
        api_keys::table
            .filter(api_keys::user_id.eq(user_id))
            .filter(api_keys::name.eq(name))
            .first(conn)
            .optional()
    }

    pub fn revoke(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            api_keys::table
                .find(id)
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(at)))
        .execute(conn)
    }

    /// Revokes every usable key of a user; returns how many.
    pub fn revoke_all_for_user(
        conn: &mut DbConn,
        user_id: i64,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            api_keys::table
                .filter(api_keys::user_id.eq(user_id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(at)))
        .execute(conn)
    }

    /// Every user's keys, newest first, with the owner's username.
    pub fn all_with_owner(conn: &mut DbConn) -> QueryResult<Vec<(ApiKey, String)>> {
        use crate::db::schema::users;
        api_keys::table
            .inner_join(users::table.on(users::id.eq(api_keys::user_id)))
            .select((api_keys::all_columns, users::username))
            .order(api_keys::id.desc())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<ApiKey>> {
        api_keys::table.find(id).first(conn).optional()
    }

    pub fn touch(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(api_keys::table.find(id))
            .set(api_keys::last_used_at.eq(Some(at)))
            .execute(conn)
    }
}
