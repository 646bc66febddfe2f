//! Server configuration: flags and environment, resolved into one value.

use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    /// `postgres://...` for PostgreSQL; `None` is the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// The first administrator's password; generated when absent.
    pub admin_password: Option<String>,
    /// HTTP worker threads; `None` is one per core.
    pub workers: Option<usize>,
    /// Largest number of database connections.
    pub pool_size: u32,
    /// Serve HTTPS with a certificate from the server's own CA; session cookies are then
    /// Secure.
    pub tls: bool,
    /// Names (or addresses) the TLS certificate is for; default the host name and localhost.
    pub tls_names: Vec<String>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// Subject of the root CA created on the first start.
    pub ca_name: Option<String>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            admin_password: None,
            workers: None,
            pool_size: 16,
            tls: false,
            tls_names: Vec::new(),
            insecure_http: false,
            ca_name: None,
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => self.data_dir.join("hostca.sqlite3").display().to_string(),
        }
    }
}
