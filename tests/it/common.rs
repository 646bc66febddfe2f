//! Starts the real application for a test: port 0, a temporary data directory, and a
//! fresh database: SQLite by default, PostgreSQL when HOSTCA_TEST_DATABASE_URL is set.
#![allow(dead_code)]

use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use hostca::config::Config;
pub use hostca::models::user::Role;
use hostca::services::settings::SettingsInput;
use hostca::services::Ctx;
use hostca::startup::Application;
use reqwest::redirect::Policy;
use reqwest::Response;

/// The password a user made by `TestApp::user` chose.
pub fn user_password(name: &str) -> String {
    format!("{name} chosen password")
}

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// One browser: an address and a cookie jar.
#[derive(Clone)]
pub struct Browser {
    pub address: String,
    pub client: reqwest::Client,
}

pub struct TestApp {
    pub browser: Browser,
    pub ctx: Ctx,
    pub config: Config,
    handle: ServerHandle,
    _dir: std::sync::Arc<tempfile::TempDir>,
    pg_database: Option<(String, String)>,
}

/// A fresh PostgreSQL database for one test, on the server HOSTCA_TEST_DATABASE_URL names.
pub fn fresh_database() -> (Option<String>, Option<(String, String)>) {
    let Ok(base) = std::env::var("HOSTCA_TEST_DATABASE_URL") else {
        return (None, None);
    };
    if base.is_empty() {
        return (None, None);
    }
    let name = format!("hostca_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::PgConnection::establish(&base)
        .unwrap_or_else(|e| panic!("HOSTCA_TEST_DATABASE_URL {base}: {e}"));
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let url = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    };
    (Some(url), Some((base, name)))
}

/// Whether the suites run with the issuing CA's key in a PKCS#11 token
/// (`HOSTCA_TEST_ISSUING_KEY=pkcs11`; CI makes a SoftHSMv2 token and sets
/// `SOFTHSM2_CONF`, `HOSTCA_PKCS11_MODULE` and `HOSTCA_PKCS11_PIN_FILE`).
pub fn issuing_key_in_token() -> bool {
    std::env::var("HOSTCA_TEST_ISSUING_KEY").is_ok_and(|v| v == "pkcs11")
}

pub fn test_config(dir: PathBuf, database_url: Option<String>) -> Config {
    let mut config = Config::new(dir);
    if issuing_key_in_token() {
        let token =
            std::env::var("HOSTCA_TEST_PKCS11_TOKEN").unwrap_or_else(|_| "hostca-ci".into());
        // One object per test installation, in the one token.
        config.ca.issuing_key = Some(format!(
            "pkcs11:token={token};object=issuing-{}",
            uuid::Uuid::new_v4().simple()
        ));
    }
    config.listen = "127.0.0.1:0".into();
    config.database_url = database_url;
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.workers = Some(2);
    config.pool_size = 8;
    config
}

pub fn client() -> reqwest::Client {
    client_for(None)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the application with a changed configuration (e.g. `tls`).
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let (url, pg) = fresh_database();
    let mut config = test_config(dir.path().join("data"), url);
    change(&mut config);
    start(config, dir, pg, None).await
}

/// How long a test client keeps an idle connection for reuse: well under the server's
/// 5-second keep-alive, so that on a loaded machine a request never goes out on a
/// connection the server is closing at that moment (an `IncompleteMessage` error).
pub const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A browser-like client; for https it trusts the CA in `ca_pem` only.
pub fn client_for(ca_pem: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .cookie_store(true)
        .pool_idle_timeout(CLIENT_IDLE)
        .redirect(Policy::none());
    if let Some(pem) = ca_pem {
        b = b
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn start(
    config: Config,
    dir: std::sync::Arc<tempfile::TempDir>,
    pg_database: Option<(String, String)>,
    client: Option<reqwest::Client>,
) -> TestApp {
    let app = Application::build(&config).expect("the application starts");
    let address = app.base_url();
    let ca = config.tls.then(|| app.ctx.pki.bundle_pem());
    let client = client.unwrap_or_else(|| client_for(ca.as_deref()));
    let handle = app.handle();
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        browser: Browser { address, client },
        ctx,
        config,
        handle,
        _dir: dir,
        pg_database,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg_database.take() {
            if let Ok(mut conn) = diesel::PgConnection::establish(&base) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The value of `<input name="csrf_token" value="...">` in a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")?;
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The text of the element with `id`, e.g. `<code id="token-value" ...>TEXT</code>`.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_string())
}

impl std::ops::Deref for TestApp {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// The session's CSRF token, read from a page as a browser would.
    pub async fn csrf(&self) -> String {
        let html = self.get_html("/login").await;
        csrf_in(&html).expect("the login page carries a CSRF token")
    }

    /// Posts a form with this session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let csrf = self.csrf().await;
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly the given fields, no CSRF token added.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn login_as(&self, username: &str, password: &str) -> Response {
        self.post("/login", &[("username", username), ("password", password)])
            .await
    }

    pub async fn login(&self) {
        let r = self.login_as("admin", ADMIN_PASSWORD).await;
        assert_eq!(r.status().as_u16(), 303, "admin logs in");
    }
}

impl TestApp {
    /// Another browser, with no cookies yet.
    pub fn new_browser(&self) -> Browser {
        let ca = self.config.tls.then(|| self.ctx.pki.bundle_pem());
        Browser {
            address: self.address.clone(),
            client: client_for(ca.as_deref()),
        }
    }

    pub async fn create_token(
        &self,
        name: &str,
        max_uses: &str,
        valid_for: &str,
        reason: &str,
    ) -> Response {
        self.post(
            "/security/tokens",
            &[
                ("name", name),
                ("max_uses", max_uses),
                ("valid_for", valid_for),
                ("reason", reason),
            ],
        )
        .await
    }

    /// Creates a token and returns its value, read from the details page's Show.
    pub async fn token_value(&self, name: &str, max_uses: &str) -> String {
        let r = self.create_token(name, max_uses, "1d", "").await;
        assert_eq!(r.status().as_u16(), 303);
        let html = self
            .post(&format!("/security/tokens/{name}/show"), &[])
            .await
            .text()
            .await
            .unwrap();
        element_text(&html, "token-value").expect("the value is shown")
    }

    /// Stops the server and starts it again on the same data directory and database,
    /// keeping this client (and its cookies).
    pub async fn restart(mut self) -> TestApp {
        self.handle.stop(true).await;
        let pg = self.pg_database.take();
        let config = self.config.clone();
        let dir = self._dir.clone();
        let client = self.browser.client.clone();
        drop(self);
        start(config, dir, pg, Some(client)).await
    }

    /// A new user with `role`, added by an administrator on the Users page, who has logged
    /// in and chosen their own password (`user_password(name)`): their browser, logged in.
    /// Everything goes through the product, as a real user's first day does.
    pub async fn user(&self, role: Role, name: &str) -> Browser {
        let admin = self.new_browser();
        admin.login().await;
        let initial = format!("{name} initial password");
        let r = admin
            .post(
                "/admin/users",
                &[
                    ("username", name),
                    ("role", role.key()),
                    ("password", &initial),
                ],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "user {name} created");
        let b = self.new_browser();
        let r = b.login_as(name, &initial).await;
        assert_eq!(r.status().as_u16(), 303, "{name} logs in");
        let chosen = user_password(name);
        let r = b
            .post(
                "/account/password",
                &[
                    ("current", &initial),
                    ("new", &chosen),
                    ("confirm", &chosen),
                ],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "{name} chooses a password");
        b
    }

    /// The database, for what only an intruder with database access can do: tests that
    /// edit or delete rows to prove the product notices. Set-up goes through the product.
    pub fn conn(&self) -> hostca::db::PooledConn {
        hostca::db::get(&self.ctx.pool).unwrap()
    }
}

/// A key and CSR made by the `openssl` command line, with extensions openssl adds on
/// request (including a CA:TRUE that the CA must ignore). Returns (key path, CSR PEM).
pub fn openssl_csr(
    dir: &std::path::Path,
    label: &str,
    cn: &str,
    extra_sans: &[&str],
) -> (PathBuf, String) {
    let key = dir.join(format!("{label}.key"));
    let csr = dir.join(format!("{label}.csr"));
    let mut san = format!("subjectAltName=DNS:{cn}");
    for s in extra_sans {
        san.push_str(&format!(",DNS:{s}"));
    }
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", &format!("/CN={cn}/O=Requested Org")])
        .args(["-addext", &san])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=keyCertSign,digitalSignature"])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, std::fs::read_to_string(csr).unwrap())
}

/// A CSR for an existing key (renewal).
pub fn openssl_csr_for_key(dir: &std::path::Path, key: &std::path::Path, cn: &str) -> String {
    let csr = dir.join(format!("renew-{}.csr", uuid::Uuid::new_v4().simple()));
    let out = std::process::Command::new("openssl")
        .args(["req", "-new", "-key"])
        .arg(key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", &format!("/CN={cn}")])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(csr).unwrap()
}

/// Runs openssl with `args`; returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// POSTs a DER OCSP request to `url` (a responder's `/ocsp`).
pub async fn ocsp_post(url: &str, request: Vec<u8>) -> reqwest::Response {
    client()
        .post(url)
        .header("Content-Type", "application/ocsp-request")
        .body(request)
        .send()
        .await
        .unwrap()
}

/// `openssl ocsp -resp_text` on a response for `leaf` (files in `dir`), after asserting
/// that openssl verifies it against `ca`; returns openssl's output.
pub fn openssl_ocsp_verified(
    dir: &std::path::Path,
    der: &[u8],
    issuer: &str,
    leaf: &str,
    ca: &str,
) -> String {
    let p = dir.join("verified-resp.der");
    std::fs::write(&p, der).unwrap();
    let (ok, out) = openssl(&[
        "ocsp",
        "-respin",
        p.to_str().unwrap(),
        "-issuer",
        issuer,
        "-cert",
        leaf,
        "-CAfile",
        ca,
        "-resp_text",
    ]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    out
}

impl TestApp {
    /// POST /api/v1/certificates; returns (status, JSON body).
    pub async fn enroll(
        &self,
        hostname: &str,
        csr: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut body = serde_json::json!({"hostname": hostname, "csr": csr});
        if let Some(t) = token {
            body["token"] = serde_json::Value::String(t.to_string());
        }
        self.post_json("/api/v1/certificates", &body).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        json_reply(self.client.post(self.url(path)).json(body)).await
    }

    /// Changes global settings as an administrator would on the Settings page (through
    /// the same service, so the change is validated and audited).
    pub fn change_settings(&self, change: impl FnOnce(&mut SettingsInput)) {
        use hostca::services::{settings, Actor};
        let admin = Actor {
            username: "admin".into(),
            role: Role::Administrator,
        };
        settings::update_with(&self.ctx, &admin, |input: &mut SettingsInput| {
            change(input);
            input.reason = "test set-up".into();
        })
        .unwrap_or_else(|e| panic!("the settings were refused: {e:?}"));
    }

    pub fn set_security_level(&self, level: &str) {
        self.change_settings(|s| s.security_level = level.into());
    }

    pub fn set_auto_map(&self, on: bool) {
        self.change_settings(|s| s.auto_map_host_names = on);
    }

    pub fn set_allowed_domains(&self, domains: &str) {
        self.change_settings(|s| s.allowed_domains = domains.into());
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    pub fn scratch(&self) -> PathBuf {
        let d = self._dir.path().join("scratch");
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Browser {
    /// POST JSON with an API key.
    pub async fn post_json_with_key(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        json_reply(self.client.post(self.url(path)).bearer_auth(key).json(body)).await
    }
}

/// Sends a request and returns its status and JSON body (`null` if the body is not JSON).
async fn json_reply(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A P-256 CSR made with rcgen (fast, for loads; openssl_csr is the independent client).
pub fn quick_csr(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `hostca serve` process, killed and reaped when dropped.
pub struct ServerProcess(pub std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hostca serve` on `port` and waits until it accepts connections.
pub fn serve_process(
    data: &std::path::Path,
    port: u16,
    database_url: Option<&str>,
) -> ServerProcess {
    serve_process_with(data, port, database_url, &[])
}

/// `serve_process` with more flags (e.g. `--leaf-validity-minutes 2`).
pub fn serve_process_with(
    data: &std::path::Path,
    port: u16,
    database_url: Option<&str>,
    extra: &[&str],
) -> ServerProcess {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"));
    cmd.args([
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--workers",
        "2",
    ])
    .env("HOSTCA_ADMIN_PASSWORD", ADMIN_PASSWORD)
    .env("RUST_LOG", "error")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    if let Some(u) = database_url {
        cmd.args(["--database-url", u]);
    }
    cmd.args(extra);
    let server = ServerProcess(cmd.spawn().unwrap());
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("hostca serve did not start");
}

/// A client logged in as admin on the server at `base`, and its CSRF token.
pub async fn admin_client(base: &str) -> (reqwest::Client, String) {
    let c = client();
    let html = c
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&html).unwrap();
    let r = c
        .post(format!("{base}/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let html = c
        .get(format!("{base}/security/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (c, csrf_in(&html).unwrap())
}

/// A CSR made by openssl for an existing key (renewal), carrying `nonce` in its PKCS#9
/// challengePassword attribute and the SANs given (`DNS:name`, `IP:address`), if any.
pub fn renew_csr(
    dir: &std::path::Path,
    key: &std::path::Path,
    cn: &str,
    nonce: Option<&str>,
    sans: &[&str],
) -> String {
    let label = uuid::Uuid::new_v4().simple().to_string();
    let (config, csr) = (
        dir.join(format!("renew-{label}.cnf")),
        dir.join(format!("renew-{label}.csr")),
    );
    let mut text = format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = {cn}\n[attrs]\n"
    );
    if let Some(n) = nonce {
        text.push_str(&format!("challengePassword = {n}\n"));
    }
    std::fs::write(&config, text).unwrap();
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["req", "-new", "-key"])
        .arg(key)
        .arg("-config")
        .arg(&config)
        .arg("-out")
        .arg(&csr);
    if !sans.is_empty() {
        cmd.args(["-addext", &format!("subjectAltName={}", sans.join(","))]);
    }
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(csr).unwrap()
}

impl TestApp {
    /// POST /api/v1/certificates/renew/nonce: a fresh nonce for the host's next renewal.
    pub async fn renewal_nonce(&self, host_id: &str) -> String {
        let (s, b) = self
            .post_json(
                "/api/v1/certificates/renew/nonce",
                &serde_json::json!({ "host_id": host_id }),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["nonce"].as_str().unwrap().to_string()
    }

    /// POST /api/v1/certificates/renew; returns (status, JSON body).
    pub async fn renew(&self, host_id: &str, csr: &str) -> (u16, serde_json::Value) {
        self.post_json(
            "/api/v1/certificates/renew",
            &serde_json::json!({"host_id": host_id, "csr": csr}),
        )
        .await
    }
}

/// What a `hostca` command printed, and whether it succeeded.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `hostca` binary with `envs` (and none of the HOSTCA_ variables of the
/// environment the tests run in).
pub fn hostca(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"));
    cmd.args(args)
        .env_remove("HOSTCA_API_KEY")
        .env_remove("HOSTCA_SERVER")
        .env_remove("HOSTCA_HOST_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("hostca runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// An API key made on the account page, as a user would.
pub async fn api_key(b: &Browser, name: &str) -> String {
    let html = b
        .post("/account/api-keys", &[("name", name)])
        .await
        .text()
        .await
        .unwrap();
    element_text(&html, "api-key-value").expect("the new key is shown once")
}

pub fn status(r: &Response) -> u16 {
    r.status().as_u16()
}

/// Where a redirect points.
pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// What `openssl x509 -noout -text` says of a PEM certificate.
pub fn openssl_text(pem: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}
