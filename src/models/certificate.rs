use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{contains_pattern, lower, Db};
use crate::db::schema::certificates;
use crate::db::DbConn;

pub use super::kinds::{CertAttention, CertSort, CertStatus, IssuedVia, RevocationReason};

#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = certificates)]
pub struct Certificate {
    pub id: i64,
    pub serial: String,
    pub host_id: String,
    pub subject: String,
    /// The DNS names, comma separated, primary name first.
    pub names: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub fingerprint_sha256: String,
    pub pem: String,
    pub token_name: Option<String>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revocation_reason: Option<RevocationReason>,
    pub revoked_by: Option<String>,
    /// How the certificate was obtained (older backups have no such field: enrollment).
    #[serde(default)]
    pub issued_via: IssuedVia,
    /// The ACME account that ordered it.
    #[serde(default)]
    pub acme_account_id: Option<String>,
    /// The serial of the certificate this one replaced (ACME `replaces`, renewal).
    #[serde(default)]
    pub replaces: Option<String>,
    /// The CA (`issuers.id`) that signed it; older backups have none (the first CA).
    #[serde(default)]
    pub issuer_id: Option<i64>,
    /// When half of the suggested renewal window is over (`renew_by_for`); older backups
    /// have none (restore computes it).
    #[serde(default)]
    pub renew_by: Option<NaiveDateTime>,
}

/// The signing CA, revocation time and reason, and end of a certificate (OCSP).
pub type OcspStatusRow = (
    Option<i64>,
    Option<NaiveDateTime>,
    Option<RevocationReason>,
    NaiveDateTime,
);

/// Serial, revocation time and reason of a revoked certificate.
pub type RevokedRow = (String, i64, Option<RevocationReason>);

#[derive(Insertable)]
#[diesel(table_name = certificates)]
pub struct NewCertificate<'a> {
    pub serial: &'a str,
    pub host_id: &'a str,
    pub subject: &'a str,
    pub names: &'a str,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub fingerprint_sha256: &'a str,
    pub pem: &'a str,
    pub token_name: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub issued_via: IssuedVia,
    pub acme_account_id: Option<&'a str>,
    pub replaces: Option<&'a str>,
    pub issuer_id: Option<i64>,
    pub renew_by: Option<NaiveDateTime>,
}

#[derive(Clone, Debug)]
pub struct CertFilter {
    pub q: String,
    pub status: Option<CertStatus>,
    /// Only active certificates that expire within this many days.
    pub expires_within: Option<u32>,
    pub attention: Option<CertAttention>,
    pub sort: CertSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// How far back "expired, not renewed" looks: a host silent for longer is taken as retired.
pub const LAPSED_DAYS: i64 = 90;
/// What "recently revoked" means, in days.
pub const RECENT_DAYS: i64 = 7;

diesel::alias!(certificates as active_alias: ActiveAlias);

/// When half of the server's suggested renewal window (the last third of the lifetime) is
/// over: a host still on the certificate by then has missed its window.
pub fn renew_by_for(not_before: NaiveDateTime, not_after: NaiveDateTime) -> NaiveDateTime {
    not_before + (not_after - not_before) * 5 / 6
}

fn filtered<'a>(f: &CertFilter, now: NaiveDateTime) -> certificates::BoxedQuery<'a, Db> {
    let mut q = certificates::table.into_boxed();
    if !f.q.is_empty() {
        let p = contains_pattern(&f.q);
        q = q.filter(
            lower(certificates::names)
                .like(p.clone())
                .escape('\\')
                .or(lower(certificates::host_id).like(p.clone()).escape('\\'))
                .or(lower(certificates::serial).like(p).escape('\\')),
        );
    }
    if let Some(days) = f.expires_within {
        q = q
            .filter(certificates::revoked_at.is_null())
            .filter(certificates::not_after.gt(now))
            .filter(certificates::not_after.le(now + chrono::Duration::days(i64::from(days))));
    }
    match f.attention {
        None => {}
        Some(CertAttention::RenewalMissed) => {
            q = q
                .filter(certificates::revoked_at.is_null())
                .filter(certificates::not_after.gt(now))
                .filter(certificates::renew_by.le(now))
        }
        Some(CertAttention::Lapsed) => {
            q = q
                .filter(certificates::revoked_at.is_null())
                .filter(certificates::not_after.le(now))
                .filter(certificates::not_after.gt(now - chrono::Duration::days(LAPSED_DAYS)))
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    active_alias
                        .filter(
                            active_alias
                                .field(certificates::host_id)
                                .eq(certificates::host_id),
                        )
                        .filter(active_alias.field(certificates::revoked_at).is_null())
                        .filter(active_alias.field(certificates::not_after).gt(now)),
                )))
        }
        Some(CertAttention::RecentlyRevoked) => {
            q = q
                .filter(certificates::revoked_at.ge(now - chrono::Duration::days(RECENT_DAYS)))
                .filter(certificates::revocation_reason.ne(RevocationReason::Superseded))
        }
    }
    match f.status {
        None => {}
        Some(CertStatus::Active) => {
            q = q
                .filter(certificates::revoked_at.is_null())
                .filter(certificates::not_after.gt(now))
        }
        Some(CertStatus::Expired) => {
            q = q
                .filter(certificates::revoked_at.is_null())
                .filter(certificates::not_after.le(now))
        }
        Some(CertStatus::Revoked) => {
            q = q
                .filter(certificates::revoked_at.is_not_null())
                .filter(certificates::revocation_reason.ne(RevocationReason::Superseded))
        }
        Some(CertStatus::Superseded) => {
            q = q.filter(certificates::revocation_reason.eq(RevocationReason::Superseded))
        }
    }
    q
}

impl Certificate {
    pub fn status(&self, now: NaiveDateTime) -> CertStatus {
        match (&self.revoked_at, self.revocation_reason) {
            (Some(_), Some(RevocationReason::Superseded)) => CertStatus::Superseded,
            (Some(_), _) => CertStatus::Revoked,
            (None, _) if self.not_after <= now => CertStatus::Expired,
            _ => CertStatus::Active,
        }
    }

    pub fn primary_name(&self) -> &str {
        self.names.split(',').next().unwrap_or_default()
    }

    /// The DNS names of the certificate, primary name first, as stored.
    pub fn names(&self) -> Vec<&str> {
        self.names.split(',').collect()
    }

    pub fn insert(conn: &mut DbConn, new: &NewCertificate) -> QueryResult<usize> {
        diesel::insert_into(certificates::table)
            .values(new)
            .execute(conn)
    }

    pub fn find_by_serial(conn: &mut DbConn, serial: &str) -> QueryResult<Option<Certificate>> {
        certificates::table
            .filter(certificates::serial.eq(serial))
            .first(conn)
            .optional()
    }

    /// A host's certificates, newest first.
    pub fn for_host(conn: &mut DbConn, host_id: &str) -> QueryResult<Vec<Certificate>> {
        certificates::table
            .filter(certificates::host_id.eq(host_id))
            .order(certificates::id.desc())
            .load(conn)
    }

    /// Whether a host has ever been issued a certificate.
    pub fn host_has_any(conn: &mut DbConn, host_id: &str) -> QueryResult<bool> {
        let n: i64 = certificates::table
            .filter(certificates::host_id.eq(host_id))
            .count()
            .get_result(conn)?;
        Ok(n > 0)
    }

    /// The host's newest certificate that is neither revoked nor expired.
    pub fn active_for_host(
        conn: &mut DbConn,
        host_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<Certificate>> {
        certificates::table
            .filter(certificates::host_id.eq(host_id))
            .filter(certificates::revoked_at.is_null())
            .filter(certificates::not_after.gt(now))
            .order(certificates::id.desc())
            .first(conn)
            .optional()
    }

    /// What OCSP answers from: the signing CA, revocation time and reason of `serial`
    /// (one lookup on the unique serial index).
    pub fn ocsp_status(conn: &mut DbConn, serial: &str) -> QueryResult<Option<OcspStatusRow>> {
        certificates::table
            .filter(certificates::serial.eq(serial))
            .select((
                certificates::issuer_id,
                certificates::revoked_at,
                certificates::revocation_reason,
                certificates::not_after,
            ))
            .first(conn)
            .optional()
    }

    pub fn max_id(conn: &mut DbConn) -> QueryResult<Option<i64>> {
        certificates::table
            .select(diesel::dsl::max(certificates::id))
            .first(conn)
    }

    /// The certificates numbered after `id`, in order (the OCSP producer).
    pub fn issued_after(conn: &mut DbConn, id: i64, limit: i64) -> QueryResult<Vec<(i64, String)>> {
        certificates::table
            .filter(certificates::id.gt(id))
            .order(certificates::id.asc())
            .select((certificates::id, certificates::serial))
            .limit(limit)
            .load(conn)
    }

    /// The certificates revoked after `(at, id)`, oldest revocation first (the OCSP
    /// producer, from the `certificates_revoked_at` index): a keyset, so a batch boundary
    /// inside one moment's revocations loses none of them.
    pub fn revoked_since(
        conn: &mut DbConn,
        (at, id): (NaiveDateTime, i64),
        limit: i64,
    ) -> QueryResult<Vec<(NaiveDateTime, i64, String)>> {
        certificates::table
            .filter(
                certificates::revoked_at
                    .gt(at)
                    .or(certificates::revoked_at.eq(at).and(certificates::id.gt(id))),
            )
            .order((certificates::revoked_at.asc(), certificates::id.asc()))
            .select((
                certificates::revoked_at.assume_not_null(),
                certificates::id,
                certificates::serial,
            ))
            .limit(limit)
            .load(conn)
    }

    /// Revokes one certificate unless it already is; returns whether it changed.
    pub fn revoke(
        conn: &mut DbConn,
        serial: &str,
        reason: RevocationReason,
        by: &str,
        at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            certificates::table
                .filter(certificates::serial.eq(serial))
                .filter(certificates::revoked_at.is_null()),
        )
        .set((
            certificates::revoked_at.eq(Some(at)),
            certificates::revocation_reason.eq(Some(reason)),
            certificates::revoked_by.eq(Some(by)),
        ))
        .execute(conn)?;
        if n == 1 {
            crate::metrics::count_on_commit(crate::metrics::Count::Revoked(reason));
        }
        Ok(n == 1)
    }

    pub fn account_has_any(conn: &mut DbConn, account_id: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            certificates::table.filter(certificates::acme_account_id.eq(account_id)),
        ))
        .get_result(conn)
    }

    /// Serials of the certificates an ACME account obtained for exactly `names` (in any
    /// order) that are not revoked yet: the ones a new certificate for those names renews.
    pub fn unrevoked_of_account_for(
        conn: &mut DbConn,
        account_id: &str,
        names: &[String],
    ) -> QueryResult<Vec<String>> {
        let mut wanted: Vec<&str> = names.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        let rows: Vec<(String, String)> = certificates::table
            .filter(certificates::acme_account_id.eq(account_id))
            .filter(certificates::revoked_at.is_null())
            .select((certificates::serial, certificates::names))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter(|(_, n)| {
                let mut have: Vec<&str> = n.split(',').collect();
                have.sort_unstable();
                have == wanted
            })
            .map(|(serial, _)| serial)
            .collect())
    }

    /// Serials of a host's certificates that are not revoked yet.
    pub fn unrevoked_serials(conn: &mut DbConn, host_id: &str) -> QueryResult<Vec<String>> {
        certificates::table
            .filter(certificates::host_id.eq(host_id))
            .filter(certificates::revoked_at.is_null())
            .select(certificates::serial)
            .load(conn)
    }

    /// What the CRL lists: revoked certificates that have not expired yet.
    /// Serial, revocation time (Unix seconds: converted by the database, which is much
    /// faster for a CRL of 100,000 than parsing each timestamp here) and reason.
    /// The revoked, unexpired certificates of one CA (what its CRL lists).
    pub fn revoked_unexpired(
        conn: &mut DbConn,
        issuer_id: i64,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<RevokedRow>> {
        let revoked_at = match conn {
            DbConn::Sqlite(_) => "CAST(strftime('%s', revoked_at) AS BIGINT)",
            DbConn::Pg(_) => "CAST(EXTRACT(EPOCH FROM revoked_at) AS BIGINT)",
        };
        certificates::table
            .filter(certificates::revoked_at.is_not_null())
            .filter(certificates::not_after.gt(now))
            .filter(certificates::issuer_id.eq(issuer_id))
            .select((
                certificates::serial,
                diesel::dsl::sql::<diesel::sql_types::BigInt>(revoked_at),
                certificates::revocation_reason,
            ))
            .load(conn)
    }

    pub fn list(
        conn: &mut DbConn,
        f: &CertFilter,
        now: NaiveDateTime,
    ) -> QueryResult<(Vec<Certificate>, i64)> {
        let total: i64 = filtered(f, now).count().get_result(conn)?;
        let q = filtered(f, now);
        let q = match (f.sort, f.descending) {
            (CertSort::Host, false) => {
                q.order((certificates::names.asc(), certificates::id.desc()))
            }
            (CertSort::Host, true) => {
                q.order((certificates::names.desc(), certificates::id.desc()))
            }
            (CertSort::Serial, false) => q.order(certificates::serial.asc()),
            (CertSort::Serial, true) => q.order(certificates::serial.desc()),
            (CertSort::Issued, false) => q.order(certificates::id.asc()),
            (CertSort::Issued, true) => q.order(certificates::id.desc()),
            (CertSort::Expires, false) => {
                q.order((certificates::not_after.asc(), certificates::id.asc()))
            }
            (CertSort::Expires, true) => {
                q.order((certificates::not_after.desc(), certificates::id.desc()))
            }
        };
        let rows = q.offset(f.offset).limit(f.limit).load(conn)?;
        Ok((rows, total))
    }
}

impl Certificate {
    pub fn latest_for_host(conn: &mut DbConn, host_id: &str) -> QueryResult<Option<Certificate>> {
        certificates::table
            .filter(certificates::host_id.eq(host_id))
            .order(certificates::id.desc())
            .first(conn)
            .optional()
    }
}

/// Who revokes a certificate that a renewal superseded.
pub const REVOKED_BY_RENEWAL: &str = "renewal";

impl Certificate {
    /// When the host last renewed: the latest supersession by a renewal.
    pub fn last_renewal(conn: &mut DbConn, host_id: &str) -> QueryResult<Option<NaiveDateTime>> {
        certificates::table
            .filter(certificates::host_id.eq(host_id))
            .filter(certificates::revoked_by.eq(REVOKED_BY_RENEWAL))
            .select(diesel::dsl::max(certificates::revoked_at))
            .first(conn)
    }
}

/// The counts the overview page and `/metrics` show: each one indexed query (the partial
/// indexes of unrevoked certificates by expiry and renewal time, and `revoked_at`).
impl Certificate {
    /// Unrevoked certificates with `from < not_after <= to`.
    pub fn count_unrevoked_expiring(
        conn: &mut DbConn,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> QueryResult<i64> {
        certificates::table
            .filter(certificates::revoked_at.is_null())
            .filter(certificates::not_after.gt(from))
            .filter(certificates::not_after.le(to))
            .count()
            .get_result(conn)
    }

    /// Unrevoked certificates expired at `now`.
    pub fn count_expired(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<i64> {
        certificates::table
            .filter(certificates::revoked_at.is_null())
            .filter(certificates::not_after.le(now))
            .count()
            .get_result(conn)
    }

    /// Revoked certificates, superseded (`true`) or revoked for another reason.
    pub fn count_revoked(conn: &mut DbConn, superseded: bool) -> QueryResult<i64> {
        let q = certificates::table.filter(certificates::revoked_at.is_not_null());
        if superseded {
            q.filter(certificates::revocation_reason.eq(RevocationReason::Superseded))
                .count()
                .get_result(conn)
        } else {
            q.filter(certificates::revocation_reason.ne(RevocationReason::Superseded))
                .count()
                .get_result(conn)
        }
    }

    /// How many certificates a view of the list holds (the overview's numbers are the
    /// list's totals, so that a number and the list it links to always agree).
    pub fn count(conn: &mut DbConn, f: &CertFilter, now: NaiveDateTime) -> QueryResult<i64> {
        filtered(f, now).count().get_result(conn)
    }

    /// Unrevoked certificates expiring in each of `weeks` weeks from `now`.
    pub fn expiring_per_week(
        conn: &mut DbConn,
        now: NaiveDateTime,
        weeks: u32,
    ) -> QueryResult<Vec<i64>> {
        (0..i64::from(weeks))
            .map(|w| {
                Certificate::count_unrevoked_expiring(
                    conn,
                    now + chrono::Duration::weeks(w),
                    now + chrono::Duration::weeks(w + 1),
                )
            })
            .collect()
    }
}
