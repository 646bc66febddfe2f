//! ACME accounts, orders and authorizations (RFC 8555). Each row is named in URLs by a
//! random ID (`account_id`, `order_id`, `authz_id`), never by its row number.

use chrono::NaiveDateTime;
use diesel::prelude::*;

pub use super::kinds::{
    AcmeAccountStatus, AcmeAuthzStatus, AcmeBinding, AcmeOrderStatus, ChallengeType,
};
use crate::db::schema::{acme_accounts, acme_authorizations, acme_orders};
use crate::db::DbConn;

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = acme_accounts)]
pub struct AcmeAccount {
    pub id: i64,
    pub account_id: String,
    /// The account key's RFC 7638 thumbprint (base64url SHA-256): one account per key.
    pub thumbprint: String,
    /// The account key as a JWK (JSON text).
    pub jwk: String,
    pub status: AcmeAccountStatus,
    pub binding: AcmeBinding,
    /// The token given as External Account Binding.
    pub token_name: Option<String>,
    /// The host this account is: set by a reissue token at binding, or by the first order
    /// of an account bound by an authorization token (or by none).
    pub host_id: Option<String>,
    /// `mailto:` contacts, comma separated.
    pub contact: String,
    pub created_at: NaiveDateTime,
    pub last_order_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = acme_accounts)]
pub struct NewAcmeAccount<'a> {
    pub account_id: &'a str,
    pub thumbprint: &'a str,
    pub jwk: &'a str,
    pub status: AcmeAccountStatus,
    pub binding: AcmeBinding,
    pub token_name: Option<&'a str>,
    pub host_id: Option<&'a str>,
    pub contact: &'a str,
    pub created_at: NaiveDateTime,
}

impl AcmeAccount {
    pub fn insert(conn: &mut DbConn, new: &NewAcmeAccount) -> QueryResult<usize> {
        diesel::insert_into(acme_accounts::table)
            .values(new)
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, account_id: &str) -> QueryResult<Option<AcmeAccount>> {
        acme_accounts::table
            .filter(acme_accounts::account_id.eq(account_id))
            .first(conn)
            .optional()
    }

    pub fn find_by_thumbprint(
        conn: &mut DbConn,
        thumbprint: &str,
    ) -> QueryResult<Option<AcmeAccount>> {
        acme_accounts::table
            .filter(acme_accounts::thumbprint.eq(thumbprint))
            .first(conn)
            .optional()
    }

    pub fn for_host(conn: &mut DbConn, host_id: &str) -> QueryResult<Vec<AcmeAccount>> {
        acme_accounts::table
            .filter(acme_accounts::host_id.eq(host_id))
            .order(acme_accounts::id.asc())
            .load(conn)
    }

    /// Binds an account to its host: only while it has none, so two first orders racing
    /// cannot give one account two hosts. Returns whether this call bound it.
    pub fn bind_host(conn: &mut DbConn, account_id: &str, host_id: &str) -> QueryResult<bool> {
        let n = diesel::update(
            acme_accounts::table
                .filter(acme_accounts::account_id.eq(account_id))
                .filter(acme_accounts::host_id.is_null()),
        )
        .set(acme_accounts::host_id.eq(host_id))
        .execute(conn)?;
        Ok(n == 1)
    }

    pub fn set_status(
        conn: &mut DbConn,
        account_id: &str,
        status: AcmeAccountStatus,
    ) -> QueryResult<usize> {
        diesel::update(acme_accounts::table.filter(acme_accounts::account_id.eq(account_id)))
            .set(acme_accounts::status.eq(status))
            .execute(conn)
    }

    pub fn set_contact(conn: &mut DbConn, account_id: &str, contact: &str) -> QueryResult<usize> {
        diesel::update(acme_accounts::table.filter(acme_accounts::account_id.eq(account_id)))
            .set(acme_accounts::contact.eq(contact))
            .execute(conn)
    }

    pub fn set_key(
        conn: &mut DbConn,
        account_id: &str,
        jwk: &str,
        thumbprint: &str,
    ) -> QueryResult<usize> {
        diesel::update(acme_accounts::table.filter(acme_accounts::account_id.eq(account_id)))
            .set((
                acme_accounts::jwk.eq(jwk),
                acme_accounts::thumbprint.eq(thumbprint),
            ))
            .execute(conn)
    }

    pub fn touch_order(
        conn: &mut DbConn,
        account_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(acme_accounts::table.filter(acme_accounts::account_id.eq(account_id)))
            .set(acme_accounts::last_order_at.eq(Some(now)))
            .execute(conn)
    }
}

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = acme_orders)]
pub struct AcmeOrder {
    pub id: i64,
    pub order_id: String,
    pub account_id: String,
    /// The DNS names ordered, comma separated, in the order asked.
    pub identifiers: String,
    pub status: AcmeOrderStatus,
    /// The serial of the certificate this order replaces (RFC 9773 `replaces`).
    pub replaces: Option<String>,
    pub certificate_serial: Option<String>,
    /// Why the order became invalid.
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = acme_orders)]
pub struct NewAcmeOrder<'a> {
    pub order_id: &'a str,
    pub account_id: &'a str,
    pub identifiers: &'a str,
    pub status: AcmeOrderStatus,
    pub replaces: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl AcmeOrder {
    pub fn names(&self) -> Vec<&str> {
        self.identifiers
            .split(',')
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn insert(conn: &mut DbConn, new: &NewAcmeOrder) -> QueryResult<usize> {
        diesel::insert_into(acme_orders::table)
            .values(new)
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, order_id: &str) -> QueryResult<Option<AcmeOrder>> {
        acme_orders::table
            .filter(acme_orders::order_id.eq(order_id))
            .first(conn)
            .optional()
    }

    /// Moves the order from `from` to `to`: a conditional update, so that two finalize
    /// requests racing for one order cannot both issue. Returns whether this call moved it.
    pub fn advance(
        conn: &mut DbConn,
        order_id: &str,
        from: AcmeOrderStatus,
        to: AcmeOrderStatus,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            acme_orders::table
                .filter(acme_orders::order_id.eq(order_id))
                .filter(acme_orders::status.eq(from)),
        )
        .set(acme_orders::status.eq(to))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// The newest orders of an account, their IDs.
    pub fn ids_of_account(
        conn: &mut DbConn,
        account_id: &str,
        limit: i64,
    ) -> QueryResult<Vec<String>> {
        acme_orders::table
            .filter(acme_orders::account_id.eq(account_id))
            .order(acme_orders::id.desc())
            .limit(limit)
            .select(acme_orders::order_id)
            .load(conn)
    }

    pub fn set_issued(conn: &mut DbConn, order_id: &str, serial: &str) -> QueryResult<usize> {
        diesel::update(acme_orders::table.filter(acme_orders::order_id.eq(order_id)))
            .set((
                acme_orders::status.eq(AcmeOrderStatus::Valid),
                acme_orders::certificate_serial.eq(Some(serial)),
            ))
            .execute(conn)
    }

    pub fn set_invalid(conn: &mut DbConn, order_id: &str, error: &str) -> QueryResult<usize> {
        diesel::update(acme_orders::table.filter(acme_orders::order_id.eq(order_id)))
            .set((
                acme_orders::status.eq(AcmeOrderStatus::Invalid),
                acme_orders::error.eq(Some(error)),
            ))
            .execute(conn)
    }
}

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = acme_authorizations)]
pub struct AcmeAuthorization {
    pub id: i64,
    pub authz_id: String,
    pub order_id: String,
    pub account_id: String,
    pub identifier: String,
    pub status: AcmeAuthzStatus,
    /// The challenges' token, when the name must be proved.
    pub challenge_token: Option<String>,
    pub challenge_status: Option<AcmeAuthzStatus>,
    /// The challenge the client answered.
    pub challenge_type: Option<ChallengeType>,
    pub validated_at: Option<NaiveDateTime>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = acme_authorizations)]
pub struct NewAcmeAuthorization<'a> {
    pub authz_id: &'a str,
    pub order_id: &'a str,
    pub account_id: &'a str,
    pub identifier: &'a str,
    pub status: AcmeAuthzStatus,
    pub challenge_token: Option<&'a str>,
    pub challenge_status: Option<AcmeAuthzStatus>,
    pub validated_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl AcmeAuthorization {
    pub fn insert(conn: &mut DbConn, new: &NewAcmeAuthorization) -> QueryResult<usize> {
        diesel::insert_into(acme_authorizations::table)
            .values(new)
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, authz_id: &str) -> QueryResult<Option<AcmeAuthorization>> {
        acme_authorizations::table
            .filter(acme_authorizations::authz_id.eq(authz_id))
            .first(conn)
            .optional()
    }

    pub fn for_order(conn: &mut DbConn, order_id: &str) -> QueryResult<Vec<AcmeAuthorization>> {
        acme_authorizations::table
            .filter(acme_authorizations::order_id.eq(order_id))
            .order(acme_authorizations::id.asc())
            .load(conn)
    }

    /// Records the outcome of the first challenge answered (and so the authorization's);
    /// a second answer, even racing the first, changes nothing.
    pub fn set_outcome(
        conn: &mut DbConn,
        authz_id: &str,
        kind: ChallengeType,
        status: AcmeAuthzStatus,
        error: Option<&str>,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            acme_authorizations::table
                .filter(acme_authorizations::authz_id.eq(authz_id))
                .filter(acme_authorizations::challenge_type.is_null()),
        )
        .set((
            acme_authorizations::status.eq(status),
            acme_authorizations::challenge_status.eq(Some(status)),
            acme_authorizations::challenge_type.eq(Some(kind)),
            acme_authorizations::validated_at.eq(Some(at)),
            acme_authorizations::error.eq(error),
        ))
        .execute(conn)
    }

    pub fn set_status(
        conn: &mut DbConn,
        authz_id: &str,
        status: AcmeAuthzStatus,
    ) -> QueryResult<usize> {
        diesel::update(
            acme_authorizations::table.filter(acme_authorizations::authz_id.eq(authz_id)),
        )
        .set(acme_authorizations::status.eq(status))
        .execute(conn)
    }
}
