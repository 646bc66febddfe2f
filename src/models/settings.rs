use diesel::prelude::*;

use crate::db::schema::settings;
use crate::db::DbConn;

/// The domain's global security settings: one row.
#[derive(Queryable, Clone, Debug)]
pub struct Settings {
    pub id: i64,
    pub security_level: String,
    pub auto_map_host_names: bool,
    pub certificate_validity_days: i32,
    pub auto_reissue_minutes: i32,
    pub audit_retention_days: i32,
    pub crl_number: i64,
}

impl Settings {
    pub fn load(conn: &mut DbConn) -> QueryResult<Settings> {
        settings::table.find(1i64).first(conn)
    }
}
