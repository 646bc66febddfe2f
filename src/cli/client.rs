//! The command line's HTTP client: one server, optionally an API key, and the CA
//! certificate the server's TLS certificate must chain to.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// A failure, printed as one line on stderr.
pub type CliResult<T> = Result<T, String>;

pub struct Client {
    http: reqwest::blocking::Client,
    server: String,
    api_key: Option<String>,
    /// The host ID this host names itself with (`Hostca-Host-Id`) when it fetches the
    /// trust bundle or a CRL: how a CA migration learns it has the new CA.
    host_id: Option<String>,
}

impl Client {
    /// `ca_pem`: the CA to verify an https server against (none for plain http).
    pub fn new(server: &str, api_key: Option<String>, ca_pem: Option<&[u8]>) -> CliResult<Client> {
        let server = server.trim_end_matches('/').to_string();
        if !server.starts_with("http://") && !server.starts_with("https://") {
            return Err(format!(
                "--server must start with http:// or https://, not '{server}'"
            ));
        }
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("hostca/", env!("CARGO_PKG_VERSION")));
        if server.starts_with("https://") {
            let Some(pem) = ca_pem else {
                return Err("the server uses https: first run 'hostca get-ca-certificate' (or pass --ca-cert) so that it can be verified".into());
            };
            // Every CA of the trust bundle: during a CA migration the server's own
            // certificate may come from the new CA, under a new root.
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA certificate cannot be read: {e}"))?;
            if certs.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Client {
            http: builder.build().map_err(|e| format!("HTTP client: {e}"))?,
            server,
            api_key,
            host_id: None,
        })
    }

    /// A client that does not verify the server: only to fetch the CA certificate, whose
    /// fingerprint the user then checks.
    pub fn unverified(server: &str) -> CliResult<Client> {
        let server = server.trim_end_matches('/').to_string();
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Client {
            http,
            server,
            api_key: None,
            host_id: None,
        })
    }

    /// Names this host in every request (see `host_id`).
    pub fn as_host(mut self, host_id: Option<String>) -> Client {
        self.host_id = host_id;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.server, path)
    }

    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> CliResult<reqwest::blocking::Response> {
        let req = match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let req = match &self.host_id {
            Some(id) => req.header(crate::web::public::HOST_ID_HEADER, id),
            None => req,
        };
        req.send()
            .map_err(|e| format!("cannot reach {}: {}", self.server, root_cause(&e)))
    }

    /// A JSON request; an error answer becomes its message.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req)?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| format!("reading the answer: {e}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if status.is_success() {
            return Ok(value);
        }
        let message = value["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(text);
        Err(format!("{} ({})", message, status.as_u16()))
    }

    /// A plain download.
    pub fn bytes(&self, path: &str) -> CliResult<Vec<u8>> {
        let resp = self.send(self.http.get(self.url(path)))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{} answered {} for {path}",
                self.server,
                resp.status()
            ));
        }
        Ok(resp
            .bytes()
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_vec())
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

/// The CA certificate to trust: `--ca-cert`, else the one `get-ca-certificate` stored.
pub fn load_ca(explicit: Option<&Path>, dir: &Path) -> Option<Vec<u8>> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("ca.pem"));
    std::fs::read(path).ok()
}
