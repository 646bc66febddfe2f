//! One module per table: its data and its queries.

pub mod acme;
pub mod api_key;
pub mod audit_event;
pub mod certificate;
pub mod host;
pub mod host_mapping;
pub mod issuer;
pub mod kinds;
pub mod login_attempt;
pub mod nonce;
pub mod notification;
pub mod ocsp_response;
pub mod settings;
pub mod token;
pub mod user;

/// The backend type of `DbConn`, for boxed queries.
pub type Db = <crate::db::DbConn as diesel::Connection>::Backend;

/// `LIKE` pattern that matches `text` anywhere, with the wildcards in it escaped.
pub fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
