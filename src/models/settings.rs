use diesel::prelude::*;

use crate::db::schema::settings;
use crate::db::{DbConn, WriteTx};

pub use super::kinds::SecurityLevel;

/// The domain's global security settings: one row.
#[derive(Queryable, Insertable, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = settings)]
pub struct Settings {
    pub id: i64,
    pub security_level: SecurityLevel,
    pub auto_map_host_names: bool,
    pub certificate_validity_days: i32,
    pub auto_reissue_minutes: i32,
    pub audit_retention_days: i32,
    pub crl_number: i64,
    /// SHA-256 of the CA certificate this database belongs to; empty before the CA exists.
    pub ca_fingerprint: String,
    /// The audit chain starts after this event (older events were removed by retention).
    pub audit_anchor_id: i64,
    pub audit_anchor_hash: String,
    pub updated_at: Option<chrono::NaiveDateTime>,
    /// The name policy's DNS suffixes, one a line; empty means any name.
    #[serde(default)]
    pub allowed_domains: String,
    /// Names an administrator reserved, one a line (the server's own are added at run time).
    #[serde(default)]
    pub reserved_names: String,
    /// At most one renewal per host in this many minutes (0: no limit).
    #[serde(default = "default_renewal_interval")]
    pub renewal_interval_minutes: i32,
    /// Identifies the audit.key that keys this database's chain (derived from it; not
    /// secret). Empty until the first start that keys the chain.
    #[serde(default)]
    pub audit_key_id: String,
    /// The last event of the old, unkeyed chain (0: none).
    #[serde(default)]
    pub audit_legacy_through: i64,
    /// HMAC of the anchor and `audit_legacy_through` with the audit key, so that moving
    /// them by hand shows.
    #[serde(default)]
    pub audit_seal: String,
    /// Raised on every change of the issuers table: server processes reload the CAs when
    /// it moves.
    #[serde(default)]
    pub issuers_generation: i64,
}

/// What a backup made before the setting existed restores to (the column's default).
fn default_renewal_interval() -> i32 {
    60
}

impl Settings {
    /// The settings row (inside a write transaction, `WriteTx::settings` reads it once
    /// per group-commit batch).
    pub fn load(conn: &mut DbConn) -> QueryResult<Settings> {
        settings::table.find(1i64).first(conn)
    }
}

/// The setters take a `WriteTx`: the row is changed only under the writers' lock, and a
/// group-commit batch forgets the copy it read.
impl Settings {
    pub fn set_ca_fingerprint(tx: &mut WriteTx, fingerprint: &str) -> QueryResult<usize> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set(settings::ca_fingerprint.eq(fingerprint))
            .execute(conn)
    }

    /// Takes the next CRL number.
    pub fn next_crl_number(tx: &mut WriteTx) -> QueryResult<i64> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set(settings::crl_number.eq(settings::crl_number + 1))
            .execute(conn)?;
        settings::table
            .find(1i64)
            .select(settings::crl_number)
            .first(conn)
    }
}

/// The values an administrator changes on the settings page.
#[derive(AsChangeset, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = settings)]
pub struct SettingsChange {
    pub security_level: SecurityLevel,
    pub auto_map_host_names: bool,
    pub certificate_validity_days: i32,
    pub auto_reissue_minutes: i32,
    pub audit_retention_days: i32,
    pub updated_at: Option<chrono::NaiveDateTime>,
    /// `None` leaves the value as it is (a form or script that does not send it).
    pub renewal_interval_minutes: Option<i32>,
    pub allowed_domains: String,
    pub reserved_names: String,
}

impl Settings {
    pub fn change(tx: &mut WriteTx, c: &SettingsChange) -> QueryResult<usize> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set(c)
            .execute(conn)
    }

    pub fn set_audit_anchor(tx: &mut WriteTx, id: i64, hash: &str) -> QueryResult<usize> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set((
                settings::audit_anchor_id.eq(id),
                settings::audit_anchor_hash.eq(hash),
            ))
            .execute(conn)
    }
}

impl Settings {
    /// Records which key keys the audit chain, where the unkeyed chain ends, and the seal.
    pub fn set_audit_keying(
        tx: &mut WriteTx,
        key_id: &str,
        legacy_through: i64,
        seal: &str,
    ) -> QueryResult<usize> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set((
                settings::audit_key_id.eq(key_id),
                settings::audit_legacy_through.eq(legacy_through),
                settings::audit_seal.eq(seal),
            ))
            .execute(conn)
    }

    pub fn set_audit_seal(tx: &mut WriteTx, seal: &str) -> QueryResult<usize> {
        tx.forget_settings();
        let conn: &mut DbConn = tx;
        diesel::update(settings::table.find(1i64))
            .set(settings::audit_seal.eq(seal))
            .execute(conn)
    }
}
