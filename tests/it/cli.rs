//! The real `hostca` binary as a subprocess against the real server, over HTTPS and HTTP:
//! the admin commands through the API, and the host-side commands.

use crate::common;

use std::path::Path;

use common::{api_key, element_text, hostca, openssl, spawn_app, spawn_app_with, Run};
use serde_json::Value;

struct Cli {
    server: String,
    key: String,
    dir: String,
}

impl Cli {
    fn admin(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server, "--dir", &self.dir]);
        hostca(&all, &[("HOSTCA_API_KEY", &self.key)])
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let r = self.admin(&all);
        assert!(r.ok, "{args:?}: {}", r.stderr);
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", r.stdout))
    }

    fn host(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server, "--dir", &self.dir]);
        hostca(&all, envs)
    }

    fn details(&self) -> Value {
        let r = hostca(&["list-cert-details", "--dir", &self.dir, "--json"], &[]);
        assert!(r.ok, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

/// The one error line on stderr; warnings (e.g. a secret given as a flag) may precede it.
fn one_line_error(r: &Run) -> &str {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    let errors: Vec<&str> = r
        .stderr
        .trim()
        .lines()
        .filter(|l| !l.starts_with("hostca: warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line on stderr: {}", r.stderr);
    let line = errors[0];
    assert!(line.starts_with("hostca: "), "{line}");
    line
}

#[tokio::test]
async fn the_command_line_over_https_end_to_end() {
    let app = spawn_app_with(|c| {
        c.tls = true;
        c.tls_names = vec!["localhost".into()];
    })
    .await;
    assert!(app.address.starts_with("https://"));
    // Over TLS the session cookie is Secure.
    let r = app.login_as("admin", common::ADMIN_PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    let dir = app.scratch().join("host");
    let cli = Cli {
        server: app.address.clone(),
        key: api_key(&app, "cli").await,
        dir: dir.display().to_string(),
    };

    // Before the CA is stored, an https command says what to do.
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "web01.example.com",
            "--token",
            "x",
        ],
        &[],
    );
    assert!(one_line_error(&r).contains("get-ca-certificate"));
    // The CA: a wrong fingerprint is refused, the right one stores it.
    let r = cli.host(&["get-ca-certificate", "--fingerprint", "00:11"], &[]);
    assert!(one_line_error(&r).contains("does not match"));
    assert!(!dir.join("ca.pem").exists());
    let fp = app.ctx.pki.root_fingerprint();
    let r = cli.host(
        &["get-ca-certificate", "--fingerprint", &fp.to_lowercase()],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains(&fp));
    assert!(dir.join("ca.pem").exists());

    // A token by CLI, its value by CLI, then the host gets its certificate.
    let t = cli.json(&[
        "token",
        "create",
        "--name",
        "web",
        "--max-uses",
        "2",
        "--valid-for",
        "1d2h",
        "--reason",
        "from the CLI",
    ]);
    assert_eq!(
        (t["name"].as_str(), t["max_uses"].as_i64()),
        (Some("web"), Some(2))
    );
    let r = cli.admin(&["token", "create", "--name", "web"]);
    assert!(one_line_error(&r).contains("already exists"));
    let value = cli
        .admin(&["token", "show", "web"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(value.len(), 29);
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "web01.example.com",
            "--token-env",
            "HOST_TOKEN",
        ],
        &[("HOST_TOKEN", &value)],
    );
    assert!(r.ok, "{}", r.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("host.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let (ca, pem) = (dir.join("ca.pem"), dir.join("host.pem"));
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let first = cli.details();
    let host_id = first["host_id"].as_str().unwrap().to_string();
    assert_eq!(first["names"], "web01.example.com");
    let tokens = cli.json(&["token", "list"]);
    assert_eq!(tokens["tokens"][0]["uses"], 1);
    let table = cli.admin(&["token", "list"]).stdout;
    assert!(
        table.starts_with("NAME") && table.contains("1 / 2"),
        "{table}"
    );

    // Revoke by CLI; the host fetches the CRL and sees its certificate revoked.
    let serial = first["serial"].as_str().unwrap().to_string();
    let r = cli.admin(&[
        "cert",
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "key_compromise",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let r = cli.host(&["get-crl"], &[]);
    assert!(
        r.ok && r.stdout.contains("1 revoked"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert!(
        cli.details()["crl_status"]
            .as_str()
            .unwrap()
            .starts_with("revoked"),
        "{}",
        cli.details()
    );
    let (ok, _) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        ca.to_str().unwrap(),
        "-CRLfile",
        dir.join("crl.pem").to_str().unwrap(),
        pem.to_str().unwrap(),
    ]);
    assert!(!ok);
    let r = cli.host(&["renew-certificate"], &[]);
    assert!(one_line_error(&r).contains("reissue token"));

    // A reissue token by CLI keeps the host ID.
    let r = cli.admin(&[
        "token",
        "create",
        "--reissue",
        "--host",
        "web01.example.com",
        "--name",
        "again",
        "--valid-for",
        "1h",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let reissue = cli
        .admin(&["token", "show", "again"])
        .stdout
        .trim()
        .to_string();
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "web01.example.com",
            "--token",
            &reissue,
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let second = cli.details();
    assert_eq!(second["host_id"].as_str().unwrap(), host_id);
    assert_ne!(second["serial"], first["serial"]);

    // Renewal with the same key.
    let r = cli.host(&["renew-certificate"], &[]);
    assert!(r.ok, "{}", r.stderr);
    let third = cli.details();
    assert_eq!(third["host_id"].as_str().unwrap(), host_id);
    assert_ne!(third["serial"], second["serial"]);
    let certs = cli.json(&["cert", "list", "--status", "superseded"]);
    assert_eq!(certs["total"], 1);
    assert!(cli
        .admin(&["cert", "list"])
        .stdout
        .contains("web01.example.com"));

    // Hosts and mappings.
    let hosts = cli.json(&["host", "list"]);
    assert_eq!(hosts["hosts"][0]["host_id"].as_str().unwrap(), host_id);
    let (s, _) = app
        .post_json_with_key(
            &cli.key,
            &format!("/api/v1/hosts/{host_id}/mappings"),
            &serde_json::json!({"name": "web-alias.example.com"}),
        )
        .await;
    assert_eq!(s, 201);
    let r = cli.admin(&[
        "mapping",
        "reject",
        "--host",
        "web01.example.com",
        "--name",
        "web-alias.example.com",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let r = cli.admin(&[
        "mapping",
        "approve",
        "--host",
        &host_id,
        "--name",
        "web-alias.example.com",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let r = cli.admin(&[
        "mapping",
        "approve",
        "--host",
        &host_id,
        "--name",
        "nope.example.com",
    ]);
    assert!(one_line_error(&r).contains("no mapping"));

    // Revoke a host, delete and clean up tokens.
    let r = cli.admin(&[
        "cert",
        "revoke",
        "--host",
        "web01.example.com",
        "--reason",
        "cessation_of_operation",
    ]);
    assert!(
        r.ok && r.stdout.contains("Revoked 1"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = cli.admin(&["token", "cleanup"]);
    assert!(r.ok && r.stdout.contains("removed 1"), "{}", r.stdout);
    let r = cli.admin(&["token", "delete", "web"]);
    assert!(r.ok, "{}", r.stderr);
    let r = cli.admin(&["token", "show", "web"]);
    assert!(one_line_error(&r).contains("404"));

    // Bad credentials and servers are one clear line and a non-zero exit.
    let r = hostca(
        &["token", "list", "--server", &app.address, "--dir", &cli.dir],
        &[("HOSTCA_API_KEY", "hca_bogus")],
    );
    assert!(one_line_error(&r).contains("401"));
    let r = hostca(
        &["token", "list", "--dir", &cli.dir],
        &[("HOSTCA_API_KEY", "hca_x")],
    );
    assert!(one_line_error(&r).contains("--server"));
    let r = hostca(
        &[
            "token",
            "list",
            "--server",
            "https://localhost:1",
            "--dir",
            &cli.dir,
        ],
        &[("HOSTCA_API_KEY", "hca_x")],
    );
    assert!(one_line_error(&r).contains("cannot reach"));
    // A client with another CA refuses the server.
    let other = app.scratch().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (ok, _) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        other.join("k").to_str().unwrap(),
        "-out",
        other.join("ca.pem").to_str().unwrap(),
        "-subj",
        "/CN=other",
        "-days",
        "1",
    ]);
    assert!(ok);
    let r = hostca(
        &[
            "token",
            "list",
            "--server",
            &app.address,
            "--dir",
            other.to_str().unwrap(),
        ],
        &[("HOSTCA_API_KEY", &cli.key)],
    );
    assert!(one_line_error(&r).contains("cannot reach"), "{}", r.stderr);
}

#[tokio::test]
async fn the_host_commands_over_plain_http() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("plain", "1").await;
    let dir = app.scratch().join("h");
    let cli = Cli {
        server: app.address.clone(),
        key: String::new(),
        dir: dir.display().to_string(),
    };
    let r = cli.host(&["get-ca-certificate", "--yes"], &[]);
    assert!(r.ok, "{}", r.stderr);
    let token_file = app.scratch().join("token.txt");
    std::fs::write(&token_file, format!("{}\n", value.to_lowercase())).unwrap();
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "plain.example.com",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "plain.example.com",
            "--token",
            "a",
            "--token-env",
            "B",
        ],
        &[],
    );
    assert!(one_line_error(&r).contains("once"));
    let r = cli.host(
        &[
            "get-certificate",
            "--hostname",
            "other.example.com",
            "--token",
            &value,
        ],
        &[],
    );
    assert!(one_line_error(&r).contains("used up"));
    let r = cli.host(&["get-crl"], &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(cli.details()["crl_status"], "not revoked");
    let r = hostca(&["list-cert-details", "--dir", "/nonexistent"], &[]);
    assert!(one_line_error(&r).contains("get-certificate"));
    // Without a terminal and without --fingerprint, the CA is not trusted blindly.
    let r = hostca(
        &[
            "get-ca-certificate",
            "--server",
            &app.address,
            "--dir",
            app.scratch().join("x").to_str().unwrap(),
        ],
        &[],
    );
    assert!(one_line_error(&r).contains("--fingerprint"));
}

#[tokio::test]
async fn api_keys_carry_their_owners_role_and_can_be_revoked() {
    let app = spawn_app().await;
    app.login().await;
    app.create_token("secret", "1", "1d", "").await;
    let key = api_key(&app, "admin-key").await;
    let html = app.get_html("/account/api-keys").await;
    assert!(!html.contains(&key), "a key is shown only once");
    assert!(html.contains("admin-key") && html.contains(&key[..10]));
    assert_eq!(
        app.post("/account/api-keys", &[("name", "admin-key")])
            .await
            .status()
            .as_u16(),
        409
    );
    let r = app
        .post("/account/api-keys", &[("name", "x"), ("valid_for", "soon")])
        .await;
    assert_eq!(r.status().as_u16(), 422);

    let get = |k: Option<String>, path: &'static str| {
        let url = app.url(path);
        async move {
            let mut req = reqwest::Client::new().get(url);
            if let Some(k) = k {
                req = req.bearer_auth(k);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, b) = get(None, "/api/v1/tokens").await;
    assert_eq!((s, b["error"].as_str()), (401, Some("unauthorized")));
    let (s, _) = get(Some("hca_nope".into()), "/api/v1/tokens").await;
    assert_eq!(s, 401);
    let (s, b) = get(Some(key.clone()), "/api/v1/tokens").await;
    assert_eq!(s, 200);
    assert_eq!(b["tokens"][0]["name"], "secret");
    assert!(
        app.get_html("/account/api-keys").await.contains("just now"),
        "the last use is shown"
    );

    // A viewer's key reads but cannot show or change.
    let viewer = app.user(common::Role::Viewer, "val").await;
    let vkey = element_text(
        &viewer
            .post("/account/api-keys", &[("name", "v")])
            .await
            .text()
            .await
            .unwrap(),
        "api-key-value",
    )
    .unwrap();
    let (s, _) = app
        .post_json_with_key(&vkey, "/api/v1/tokens/secret/show", &Value::Null)
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post_json_with_key(&vkey, "/api/v1/tokens", &serde_json::json!({"name": "v1"}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = get(Some(vkey.clone()), "/api/v1/settings").await;
    assert_eq!(s, 200);
    // The key follows its owner: disabled owner, revoked key, expired key.
    app.post("/admin/users/val/disable", &[]).await;
    assert_eq!(get(Some(vkey.clone()), "/api/v1/settings").await.0, 401);
    assert_eq!(
        app.post("/account/api-keys/admin-key/revoke", &[])
            .await
            .status()
            .as_u16(),
        303
    );
    assert_eq!(get(Some(key.clone()), "/api/v1/tokens").await.0, 401);
    assert_eq!(
        app.post("/account/api-keys/admin-key/revoke", &[])
            .await
            .status()
            .as_u16(),
        409
    );
    let short = element_text(
        &app.post(
            "/account/api-keys",
            &[("name", "short"), ("valid_for", "1m")],
        )
        .await
        .text()
        .await
        .unwrap(),
        "api-key-value",
    )
    .unwrap();
    assert_eq!(get(Some(short.clone()), "/api/v1/tokens").await.0, 200);
    {
        use diesel::prelude::*;
        use hostca::db::schema::api_keys;
        diesel::update(api_keys::table.filter(api_keys::name.eq("short")))
            .set(api_keys::expires_at.eq(Some(hostca::db::now() - chrono::Duration::seconds(1))))
            .execute(&mut *app.conn())
            .unwrap();
    }
    let (s, b) = get(Some(short), "/api/v1/tokens").await;
    assert_eq!(s, 401);
    assert!(b["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn the_admin_api_mirrors_the_pages() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "k").await;
    let call = |method: &'static str, path: String, body: Value| {
        let (url, key) = (app.url(&path), key.clone());
        async move {
            let r = reqwest::Client::new()
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, t) = call(
        "POST",
        "/api/v1/tokens".into(),
        serde_json::json!({"name": "api", "max_uses": 3, "valid_for": "2h", "reason": "<i>x</i>"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["state"], "active");
    assert!(t.get("value").is_none(), "no value in a token's JSON");
    let (s, b) = call(
        "POST",
        "/api/v1/tokens".into(),
        serde_json::json!({"name": "bad name", "max_uses": 0}),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        b["message"].as_str().unwrap().contains("max_uses")
            && b["message"].as_str().unwrap().contains("name")
    );
    let (s, _) = call(
        "POST",
        "/api/v1/tokens".into(),
        serde_json::json!({"max_uses": 1}),
    )
    .await;
    assert_eq!(s, 400, "name missing");
    let (s, _) = call(
        "POST",
        "/api/v1/tokens".into(),
        serde_json::json!({"name": "api"}),
    )
    .await;
    assert_eq!(s, 409);
    let (s, v) = call("POST", "/api/v1/tokens/api/show".into(), Value::Null).await;
    assert_eq!(s, 200);
    let value = v["value"].as_str().unwrap().to_string();
    assert_eq!(v["eab_kid"], "api");
    assert_eq!(
        v["eab_hmac_key"].as_str(),
        hostca::acme::eab_mac_key_text(&value).as_deref(),
        "the token as an ACME External Account Binding"
    );
    let (_k, csr) = common::openssl_csr(&app.scratch(), "a", "api.example.com", &[]);
    let (s, e) = app.enroll("api.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let host_id = e["host_id"].as_str().unwrap().to_string();
    let serial = e["serial"].as_str().unwrap().to_string();
    let (s, c) = call("GET", format!("/api/v1/certificates/{serial}"), Value::Null).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("active")));
    assert!(c["pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    let (s, h) = call("GET", "/api/v1/hosts/api.example.com".into(), Value::Null).await;
    assert_eq!((s, h["host_id"].as_str()), (200, Some(host_id.as_str())));
    let (s, r) = call(
        "POST",
        "/api/v1/tokens/reissue".into(),
        serde_json::json!({"host_id": host_id, "name": "ri", "valid_for": "1h"}),
    )
    .await;
    assert_eq!((s, r["kind"].as_str()), (201, Some("reissue")));
    let (s, _) = call(
        "POST",
        "/api/v1/tokens/reissue".into(),
        serde_json::json!({"name": "ri2"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        "POST",
        format!("/api/v1/certificates/{serial}/revoke"),
        serde_json::json!({"reason": "nope"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, c) = call(
        "POST",
        format!("/api/v1/certificates/{serial}/revoke"),
        serde_json::json!({"reason": "superseded"}),
    )
    .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("superseded")));
    let (s, set) = call(
        "PUT",
        "/api/v1/settings".into(),
        serde_json::json!({"security_level": "very_high", "reason": "api"}),
    )
    .await;
    assert_eq!(
        (s, set["security_level"].as_str()),
        (200, Some("very_high"))
    );
    let (s, _) = call(
        "PUT",
        "/api/v1/settings".into(),
        serde_json::json!({"security_level": "very_high"}),
    )
    .await;
    assert_eq!(s, 422, "a reason is required");
    let (s, _) = call(
        "PUT",
        "/api/v1/settings".into(),
        serde_json::json!({"colour": "blue", "reason": "x"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, a) = call(
        "GET",
        "/api/v1/audit?category=SEC_CONFIG".into(),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200);
    assert!(a["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["user"] == "admin" && e["reason"] == "api"));
    let (s, d) = call(
        "POST",
        "/api/v1/tokens/delete".into(),
        serde_json::json!({"names": ["api", "ri"]}),
    )
    .await;
    assert_eq!((s, d["deleted"].as_i64()), (200, Some(2)));
    let (s, b) = call("GET", "/api/v1/nothing".into(), Value::Null).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_matches_the_routes() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    // OpenAPI 3.1, derived from the handlers; tests/openapi-validate.sh validates it.
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = hostca::web::admin_api::ROUTES
        .iter()
        .chain(hostca::web::api::ROUTES)
        .chain(hostca::web::PUBLIC_ROUTES)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "every route is documented, and nothing else"
    );
    // Every documented route is really served (a route that did not exist would answer
    // the API's own 404 "there is no API route").
    for (method, path) in &documented {
        let concrete = path
            .replace("{name}", "x")
            .replace("{serial}", "AB")
            .replace("{host}", "h.example.com");
        let r = reqwest::Client::new()
            .request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                app.url(&concrete),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            !body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no API route")
                && status != 405,
            "{method} {path}: {status} {body}"
        );
    }
}

#[tokio::test]
async fn plain_http_stays_on_loopback_and_admin_commands_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path().join("d"), None);
    config.listen = "0.0.0.0:0".into();
    let err = hostca::startup::Application::build(&config)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--insecure-http"), "{err}");
    config.insecure_http = true;
    assert!(hostca::startup::Application::build(&config).is_ok());

    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let r = hostca(
        &[
            "admin",
            "create-user",
            "--data-dir",
            d,
            "--username",
            "ops",
            "--role",
            "administrator",
            "--password-env",
            "PW",
        ],
        &[("PW", "a long ops password")],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = hostca(
        &[
            "admin",
            "create-user",
            "--data-dir",
            d,
            "--username",
            "ops",
            "--password-env",
            "PW",
        ],
        &[("PW", "a long ops password")],
    );
    assert!(one_line_error(&r).contains("already exists"));
    let r = hostca(
        &[
            "admin",
            "reset-password",
            "--data-dir",
            d,
            "--username",
            "ops",
            "--password-env",
            "PW",
        ],
        &[("PW", "short")],
    );
    assert!(one_line_error(&r).contains("12"));
    let r = hostca(
        &[
            "admin",
            "reset-password",
            "--data-dir",
            d,
            "--username",
            "ops",
            "--password-env",
            "PW",
        ],
        &[("PW", "another long password")],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = hostca(&["audit", "verify", "--data-dir", d], &[]);
    assert!(r.ok && r.stdout.contains("audit chain OK"), "{}", r.stdout);
    let r = hostca(
        &[
            "audit",
            "verify",
            "--data-dir",
            Path::new("/nonexistent").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!r.ok);
}
