use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{contains_pattern, lower, Db};
use crate::db::schema::tokens;
use crate::db::DbConn;

pub use super::kinds::{TokenKind, TokenSort, TokenState};

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = tokens)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub kind: TokenKind,
    pub value_encrypted: Vec<u8>,
    pub value_digest: String,
    pub max_uses: i32,
    pub uses: i32,
    pub valid_until: NaiveDateTime,
    pub reason: String,
    pub host_id: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub last_used_by: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub kind: TokenKind,
    pub value_encrypted: &'a [u8],
    pub value_digest: &'a str,
    pub max_uses: i32,
    pub uses: i32,
    pub valid_until: NaiveDateTime,
    pub reason: &'a str,
    pub host_id: Option<&'a str>,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
}

#[derive(Clone, Debug)]
pub struct TokenFilter {
    pub q: String,
    pub state: Option<TokenState>,
    /// Only active tokens that expire within so many days.
    pub expires_within: Option<u32>,
    pub sort: TokenSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

type Boxed<'a> = tokens::BoxedQuery<'a, Db>;

fn filtered<'a>(f: &TokenFilter, now: NaiveDateTime) -> Boxed<'a> {
    let mut q = tokens::table.into_boxed();
    if !f.q.is_empty() {
        q = q.filter(
            lower(tokens::name)
                .like(contains_pattern(&f.q))
                .escape('\\'),
        );
    }
    if let Some(days) = f.expires_within {
        q = q
            .filter(tokens::uses.lt(tokens::max_uses))
            .filter(tokens::valid_until.gt(now))
            .filter(tokens::valid_until.le(now + chrono::Duration::days(i64::from(days))));
    }
    match f.state {
        None => {}
        Some(TokenState::Active) => {
            q = q
                .filter(tokens::uses.lt(tokens::max_uses))
                .filter(tokens::valid_until.gt(now))
        }
        Some(TokenState::Expired) => {
            q = q
                .filter(tokens::uses.lt(tokens::max_uses))
                .filter(tokens::valid_until.le(now))
        }
        Some(TokenState::UsedUp) => q = q.filter(tokens::uses.ge(tokens::max_uses)),
    }
    q
}

impl Token {
    /// Used up wins over expired: it says more about what happened to the token.
    pub fn state(&self, now: NaiveDateTime) -> TokenState {
        if self.uses >= self.max_uses {
            TokenState::UsedUp
        } else if self.valid_until <= now {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    pub fn insert(conn: &mut DbConn, new: &NewToken) -> QueryResult<usize> {
        diesel::insert_into(tokens::table).values(new).execute(conn)
    }

    pub fn find_by_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<Token>> {
        tokens::table
            .filter(tokens::name.eq(name))
            .first(conn)
            .optional()
    }

    pub fn find_by_digest(conn: &mut DbConn, digest: &str) -> QueryResult<Option<Token>> {
        tokens::table
            .filter(tokens::value_digest.eq(digest))
            .first(conn)
            .optional()
    }

    /// How many tokens the filter matches (the overview's numbers are the list's totals).
    pub fn count(conn: &mut DbConn, f: &TokenFilter, now: NaiveDateTime) -> QueryResult<i64> {
        filtered(f, now).count().get_result(conn)
    }

    /// One page of the list and the number of tokens that match the filter.
    pub fn list(
        conn: &mut DbConn,
        f: &TokenFilter,
        now: NaiveDateTime,
    ) -> QueryResult<(Vec<Token>, i64)> {
        let total: i64 = filtered(f, now).count().get_result(conn)?;
        let q = filtered(f, now);
        let q = match (f.sort, f.descending) {
            (TokenSort::Name, false) => q.order((lower(tokens::name).asc(), tokens::name.asc())),
            (TokenSort::Name, true) => q.order((lower(tokens::name).desc(), tokens::name.desc())),
            (TokenSort::Kind, false) => q.order((tokens::kind.asc(), tokens::name.asc())),
            (TokenSort::Kind, true) => q.order((tokens::kind.desc(), tokens::name.asc())),
            (TokenSort::Uses, false) => q.order((tokens::uses.asc(), tokens::name.asc())),
            (TokenSort::Uses, true) => q.order((tokens::uses.desc(), tokens::name.asc())),
            (TokenSort::ValidUntil, false) => {
                q.order((tokens::valid_until.asc(), tokens::id.asc()))
            }
            (TokenSort::ValidUntil, true) => {
                q.order((tokens::valid_until.desc(), tokens::id.desc()))
            }
            (TokenSort::CreatedBy, false) => {
                q.order((tokens::created_by.asc(), tokens::name.asc()))
            }
            (TokenSort::CreatedBy, true) => {
                q.order((tokens::created_by.desc(), tokens::name.asc()))
            }
            (TokenSort::CreatedAt, false) => q.order(tokens::id.asc()),
            (TokenSort::CreatedAt, true) => q.order(tokens::id.desc()),
        };
        let rows = q.offset(f.offset).limit(f.limit).load(conn)?;
        Ok((rows, total))
    }

    pub fn delete_by_name(conn: &mut DbConn, name: &str) -> QueryResult<usize> {
        diesel::delete(tokens::table.filter(tokens::name.eq(name))).execute(conn)
    }

    /// Deletes every Expired or Used-up token; returns how many.
    pub fn delete_inactive(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(
            tokens::table.filter(
                tokens::uses
                    .ge(tokens::max_uses)
                    .or(tokens::valid_until.le(now)),
            ),
        )
        .execute(conn)
    }

    /// Uses the token once if it is still active: a single conditional update, so that
    /// under any concurrency the uses never pass the maximum. Returns whether it was used.
    pub fn consume(
        conn: &mut DbConn,
        digest: &str,
        host: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            tokens::table
                .filter(tokens::value_digest.eq(digest))
                .filter(tokens::uses.lt(tokens::max_uses))
                .filter(tokens::valid_until.gt(now)),
        )
        .set((
            tokens::uses.eq(tokens::uses + 1),
            tokens::last_used_at.eq(Some(now)),
            tokens::last_used_by.eq(Some(host)),
        ))
        .execute(conn)?;
        if n == 1 {
            crate::metrics::count_on_commit(crate::metrics::Count::TokenUse);
        }
        Ok(n == 1)
    }
}
