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
    /// How the first start makes the CA (`--ca-name`, `--ca-key-type`, `--ca-key`) and
    /// where PKCS#11 keys are reached.
    pub ca: crate::services::pki::CaOptions,
    /// The base URL hosts reach this server at (CRL distribution point, CA issuers); default
    /// from `listen` and the TLS names.
    pub public_url: Option<String>,
    /// The append-only audit sink: a file, `-` for standard output; `None` is
    /// `<data-dir>/audit.log`.
    pub audit_log: Option<String>,
    /// Reverse proxies in front of hostca: only from these is `X-Forwarded-For` believed
    /// (login throttling and audit events need the client's own address).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `/metrics` answers a client with this bearer token (`--metrics-token-file`).
    pub metrics_token: Option<String>,
    /// `/metrics` answers a client from these networks without a token (`--metrics-allow`;
    /// default the loopback addresses).
    pub metrics_allow: Vec<Cidr>,
    /// Host certificates last this many minutes instead of the setting's days: renewal
    /// drills and tests (`--leaf-validity-minutes`).
    pub leaf_validity_minutes: Option<i64>,
    /// OCSP responses are good for this many hours (`--ocsp-validity-hours`, default 24).
    pub ocsp_validity_hours: Option<u64>,
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The loopback networks: the default `/metrics` allow-list.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr {
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                prefix: 8,
            },
            Cidr {
                addr: std::net::Ipv6Addr::LOCALHOST.into(),
                prefix: 128,
            },
        ]
    }

    pub fn contains(&self, a: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let a = match a {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.addr, a) {
            (V4(net), V4(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            (V6(net), V6(a)) => prefix_eq(&net.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an address or network (like 10.0.0.0/8 or ::1)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
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
            ca: Default::default(),
            public_url: None,
            audit_log: None,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            metrics_allow: Cidr::loopback(),
            leaf_validity_minutes: None,
            ocsp_validity_hours: None,
        }
    }

    /// The names the TLS certificate is for: `--tls-name`, or the host name and localhost.
    pub fn tls_names(&self) -> Vec<String> {
        if self.tls_names.is_empty() {
            crate::tls::default_names()
        } else {
            self.tls_names.clone()
        }
    }

    /// The public base URL, once the port is known (`--listen` may ask for port 0).
    pub fn public_url(&self, port: u16) -> String {
        if let Some(u) = self.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return u.trim().trim_end_matches('/').to_string();
        }
        let host = if self.tls {
            self.tls_names()
                .into_iter()
                .next()
                .unwrap_or_else(|| "localhost".into())
        } else {
            match self.listen.rsplit_once(':') {
                Some((h, _)) if h == "0.0.0.0" || h == "[::]" || h.is_empty() => {
                    crate::tls::default_names()
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| "localhost".into())
                }
                Some((h, _)) => h.to_string(),
                None => "localhost".into(),
            }
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{port}")
    }

    /// Names no host may be certified for: the server's own.
    pub fn server_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tls_names()
            .into_iter()
            .chain(crate::tls::default_names())
            .map(|n| crate::names::without_root_dot(n.trim()).to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => self.data_dir.join("hostca.sqlite3").display().to_string(),
        }
    }
}
