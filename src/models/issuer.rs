use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{ca_migrations, certificates, hosts, issuers, settings};
use crate::db::{DbConn, WriteTx};

pub use super::kinds::{IssuerRole, IssuerState, MigrationPhase};

/// A CA certificate of this installation and where its key is.
#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = issuers)]
pub struct IssuerRow {
    pub id: i64,
    pub role: IssuerRole,
    pub state: IssuerState,
    /// The root that signed it; `None` for a self-signed root.
    pub parent_id: Option<i64>,
    pub subject: String,
    pub cert_pem: String,
    pub fingerprint_sha256: String,
    /// The subject key identifier, hex.
    pub key_id: String,
    /// `p256`, `p384`, `rsa3072`, `rsa4096` (`CaKeyType`), or what the key was found to be.
    pub key_type: String,
    /// `file:NAME` (in the data directory), `pkcs11:...` (RFC 7512), or `offline`.
    pub key_location: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
    pub retired_at: Option<NaiveDateTime>,
    /// No longer in the trust bundle.
    pub decommissioned_at: Option<NaiveDateTime>,
    /// A root's last signed ARL (its CRL of issuing CAs), served while its key is offline.
    #[serde(default)]
    pub arl_der: Option<Vec<u8>>,
}

#[derive(Insertable)]
#[diesel(table_name = issuers)]
pub struct NewIssuer<'a> {
    pub role: IssuerRole,
    pub state: IssuerState,
    pub parent_id: Option<i64>,
    pub subject: &'a str,
    pub cert_pem: &'a str,
    pub fingerprint_sha256: &'a str,
    pub key_id: &'a str,
    pub key_type: &'a str,
    pub key_location: &'a str,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
}

/// The key location of a root whose key was removed from the server.
pub const OFFLINE: &str = "offline";

impl IssuerRow {
    /// In `/ca.pem`, the enrollment answers and every host's trust store.
    pub fn in_bundle(&self) -> bool {
        self.decommissioned_at.is_none()
    }

    pub fn key_offline(&self) -> bool {
        self.key_location == OFFLINE
    }

    /// Every issuer, oldest first.
    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<IssuerRow>> {
        issuers::table.order(issuers::id.asc()).load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<IssuerRow>> {
        issuers::table.find(id).first(conn).optional()
    }

    /// Inserts an issuer and raises the generation, so that every process reloads.
    pub fn insert(tx: &mut WriteTx, new: &NewIssuer) -> QueryResult<IssuerRow> {
        bump_generation(tx)?;
        let conn: &mut DbConn = tx;
        diesel::insert_into(issuers::table)
            .values(new)
            .execute(conn)?;
        issuers::table
            .filter(issuers::fingerprint_sha256.eq(new.fingerprint_sha256))
            .first(conn)
    }

    /// Moves an issuer from `from` to `to`; 0 when it was not in `from` (a concurrent
    /// change won).
    pub fn set_state(
        tx: &mut WriteTx,
        id: i64,
        from: IssuerState,
        to: IssuerState,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        bump_generation(tx)?;
        let conn: &mut DbConn = tx;
        let target = issuers::table.find(id).filter(issuers::state.eq(from));
        match to {
            IssuerState::Active => diesel::update(target)
                .set((issuers::state.eq(to), issuers::activated_at.eq(Some(now))))
                .execute(conn),
            IssuerState::Retired => diesel::update(target)
                .set((issuers::state.eq(to), issuers::retired_at.eq(Some(now))))
                .execute(conn),
            _ => diesel::update(target)
                .set(issuers::state.eq(to))
                .execute(conn),
        }
    }

    pub fn decommission(tx: &mut WriteTx, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
        bump_generation(tx)?;
        let conn: &mut DbConn = tx;
        diesel::update(
            issuers::table
                .find(id)
                .filter(issuers::decommissioned_at.is_null()),
        )
        .set(issuers::decommissioned_at.eq(Some(now)))
        .execute(conn)
    }

    pub fn set_key_location(tx: &mut WriteTx, id: i64, location: &str) -> QueryResult<usize> {
        bump_generation(tx)?;
        let conn: &mut DbConn = tx;
        diesel::update(issuers::table.find(id))
            .set(issuers::key_location.eq(location))
            .execute(conn)
    }

    /// Keeps a root's last ARL (no generation change: it is served, not reloaded).
    pub fn set_arl(tx: &mut WriteTx, id: i64, der: &[u8]) -> QueryResult<usize> {
        let conn: &mut DbConn = tx;
        diesel::update(issuers::table.find(id))
            .set(issuers::arl_der.eq(Some(der)))
            .execute(conn)
    }

    /// Certificates from before the issuers table belong to the first CA.
    pub fn adopt_unattributed(tx: &mut WriteTx, id: i64) -> QueryResult<usize> {
        let conn: &mut DbConn = tx;
        diesel::update(certificates::table.filter(certificates::issuer_id.is_null()))
            .set(certificates::issuer_id.eq(Some(id)))
            .execute(conn)
    }

    /// The number of unrevoked, unexpired certificates this issuer signed (the server's
    /// own TLS certificates included).
    pub fn active_leaves(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<i64> {
        certificates::table
            .filter(certificates::issuer_id.eq(id))
            .filter(certificates::revoked_at.is_null())
            .filter(certificates::not_after.gt(now))
            .count()
            .get_result(conn)
    }

    /// When this issuer's last certificate expires: its CRL is published until then.
    pub fn last_leaf_expiry(conn: &mut DbConn, id: i64) -> QueryResult<Option<NaiveDateTime>> {
        certificates::table
            .filter(certificates::issuer_id.eq(id))
            .select(diesel::dsl::max(certificates::not_after))
            .first(conn)
    }
}

fn bump_generation(tx: &mut WriteTx) -> QueryResult<usize> {
    tx.forget_settings();
    let conn: &mut DbConn = tx;
    diesel::update(settings::table.find(1i64))
        .set(settings::issuers_generation.eq(settings::issuers_generation + 1))
        .execute(conn)
}

/// The generation every process compares with the one it loaded.
pub fn generation(conn: &mut DbConn) -> QueryResult<i64> {
    settings::table
        .find(1i64)
        .select(settings::issuers_generation)
        .first(conn)
}

/// A CA migration: from one issuing CA to another, in four phases.
#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = ca_migrations)]
pub struct CaMigration {
    pub id: i64,
    pub from_issuer_id: i64,
    pub to_issuer_id: i64,
    pub phase: MigrationPhase,
    pub reason: String,
    pub initiated_by: String,
    pub initiated_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    /// Completed while the old CA still had active certificates.
    pub forced: bool,
    pub decommissioned_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = ca_migrations)]
pub struct NewCaMigration<'a> {
    pub from_issuer_id: i64,
    pub to_issuer_id: i64,
    pub phase: MigrationPhase,
    pub reason: &'a str,
    pub initiated_by: &'a str,
    pub initiated_at: NaiveDateTime,
}

impl CaMigration {
    /// The latest migration, in whatever phase.
    pub fn latest(conn: &mut DbConn) -> QueryResult<Option<CaMigration>> {
        ca_migrations::table
            .order(ca_migrations::id.desc())
            .first(conn)
            .optional()
    }

    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<CaMigration>> {
        ca_migrations::table
            .order(ca_migrations::id.desc())
            .load(conn)
    }

    pub fn insert(tx: &mut WriteTx, new: &NewCaMigration) -> QueryResult<CaMigration> {
        let conn: &mut DbConn = tx;
        diesel::insert_into(ca_migrations::table)
            .values(new)
            .execute(conn)?;
        ca_migrations::table
            .order(ca_migrations::id.desc())
            .first(conn)
    }

    /// Moves the migration `id` from phase `from` to `to` by a conditional update: two
    /// administrators pressing the same button move it once.
    pub fn advance(
        tx: &mut WriteTx,
        id: i64,
        from: MigrationPhase,
        to: MigrationPhase,
        now: NaiveDateTime,
        forced: bool,
    ) -> QueryResult<usize> {
        let conn: &mut DbConn = tx;
        let target = ca_migrations::table
            .find(id)
            .filter(ca_migrations::phase.eq(from));
        match to {
            MigrationPhase::Activated => diesel::update(target)
                .set((
                    ca_migrations::phase.eq(to),
                    ca_migrations::activated_at.eq(Some(now)),
                ))
                .execute(conn),
            MigrationPhase::Completed => diesel::update(target)
                .set((
                    ca_migrations::phase.eq(to),
                    ca_migrations::completed_at.eq(Some(now)),
                    ca_migrations::forced.eq(forced),
                ))
                .execute(conn),
            MigrationPhase::Decommissioned => diesel::update(target)
                .set((
                    ca_migrations::phase.eq(to),
                    ca_migrations::decommissioned_at.eq(Some(now)),
                ))
                .execute(conn),
            MigrationPhase::Initiated => Ok(0),
        }
    }
}

/// A host a CA migration is waiting for.
#[derive(Queryable, Clone, Debug, serde::Serialize)]
pub struct PendingHost {
    pub host_id: String,
    pub primary_name: String,
    /// When it last fetched the trust bundle; `None`: never since hostca recorded it.
    pub trust_seen_at: Option<NaiveDateTime>,
}

/// Hosts with an active certificate that have not fetched the trust bundle since `since`.
pub fn pending_trust_query(
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> hosts::BoxedQuery<'static, super::Db> {
    let active = certificates::table
        .filter(certificates::host_id.eq(hosts::host_id))
        .filter(certificates::revoked_at.is_null())
        .filter(certificates::not_after.gt(now));
    hosts::table
        .filter(hosts::host_id.ne(crate::services::pki::SERVER_HOST_ID))
        .filter(
            hosts::trust_seen_at
                .is_null()
                .or(hosts::trust_seen_at.lt(since)),
        )
        .filter(diesel::dsl::exists(active))
        .into_boxed()
}

/// Hosts that still hold an active certificate of `issuer`.
pub fn pending_renewal_query(
    issuer: i64,
    now: NaiveDateTime,
) -> hosts::BoxedQuery<'static, super::Db> {
    let old = certificates::table
        .filter(certificates::host_id.eq(hosts::host_id))
        .filter(certificates::issuer_id.eq(issuer))
        .filter(certificates::revoked_at.is_null())
        .filter(certificates::not_after.gt(now));
    hosts::table
        .filter(hosts::host_id.ne(crate::services::pki::SERVER_HOST_ID))
        .filter(diesel::dsl::exists(old))
        .into_boxed()
}

pub fn pending_trust_count(
    conn: &mut DbConn,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    pending_trust_query(since, now).count().get_result(conn)
}

pub fn pending_renewal_count(
    conn: &mut DbConn,
    issuer: i64,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    pending_renewal_query(issuer, now).count().get_result(conn)
}

pub fn pending_trust(
    conn: &mut DbConn,
    since: NaiveDateTime,
    now: NaiveDateTime,
    limit: Option<i64>,
) -> QueryResult<Vec<PendingHost>> {
    load_pending(conn, pending_trust_query(since, now), limit)
}

pub fn pending_renewal(
    conn: &mut DbConn,
    issuer: i64,
    now: NaiveDateTime,
    limit: Option<i64>,
) -> QueryResult<Vec<PendingHost>> {
    load_pending(conn, pending_renewal_query(issuer, now), limit)
}

/// The hosts of a pending list, by name, the first `limit` of them.
fn load_pending(
    conn: &mut DbConn,
    query: hosts::BoxedQuery<'static, super::Db>,
    limit: Option<i64>,
) -> QueryResult<Vec<PendingHost>> {
    let mut q = query
        .select((hosts::host_id, hosts::primary_name, hosts::trust_seen_at))
        .order(hosts::primary_name.asc());
    if let Some(n) = limit {
        q = q.limit(n);
    }
    q.load(conn)
}

/// Records that a host fetched the trust bundle; writes only when it had not since
/// `since` (at most once per host and migration).
pub fn record_trust_seen(
    conn: &mut DbConn,
    host_id: &str,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        hosts::table.filter(hosts::host_id.eq(host_id)).filter(
            hosts::trust_seen_at
                .is_null()
                .or(hosts::trust_seen_at.lt(since)),
        ),
    )
    .set(hosts::trust_seen_at.eq(Some(now)))
    .execute(conn)
}

/// Whether a host's trust report would change anything (read before taking the writer).
pub fn trust_seen_since(
    conn: &mut DbConn,
    host_id: &str,
    since: NaiveDateTime,
) -> QueryResult<bool> {
    let seen: Option<Option<NaiveDateTime>> = hosts::table
        .filter(hosts::host_id.eq(host_id))
        .select(hosts::trust_seen_at)
        .first(conn)
        .optional()?;
    // An unknown host ID has nothing to record.
    Ok(match seen {
        None => true,
        Some(t) => t.is_some_and(|t| t >= since),
    })
}
