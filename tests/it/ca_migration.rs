//! The CA hierarchy and a CA migration end to end: 1,000 host rows and three real hosts
//! (the `hostca` client) move from one issuing CA to another; the console's counts match
//! SQL at each phase; openssl judges the certificates, the CRLs and mutual TLS between an
//! old-CA leaf and a new-CA leaf; a host that never moved stays listed.

use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, hosts};
use hostca::models::certificate::{Certificate, IssuedVia, NewCertificate};
use serde_json::{json, Value};

use crate::common::{self, api_key, hostca, openssl, spawn_app, Run, TestApp};

const ROWS: usize = 1000;

/// A real host: its own directory, driven through the `hostca` binary.
struct RealHost<'a> {
    app: &'a TestApp,
    dir: std::path::PathBuf,
}

impl RealHost<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        let dir = self.dir.display().to_string();
        all.extend(["--server", &self.app.address, "--dir", &dir]);
        hostca(&all, &[])
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn admin(app: &TestApp, key: &str, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--server", &app.address]);
    hostca(&all, &[("HOSTCA_API_KEY", key)])
}

fn admin_json(app: &TestApp, key: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let r = admin(app, key, &all);
    assert!(r.ok, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// Hosts with an active certificate of `issuer`, straight from SQL.
fn sql_pending_renewal(app: &TestApp, issuer: i64) -> i64 {
    let now = hostca::db::now();
    certificates::table
        .filter(certificates::issuer_id.eq(issuer))
        .filter(certificates::revoked_at.is_null())
        .filter(certificates::not_after.gt(now))
        .filter(certificates::host_id.ne(hostca::services::pki::SERVER_HOST_ID))
        .select(certificates::host_id)
        .distinct()
        .load::<String>(&mut *app.conn())
        .unwrap()
        .len() as i64
}

/// Hosts with an active certificate that have not reported since `since`, from SQL.
fn sql_pending_trust(app: &TestApp, since: chrono::NaiveDateTime) -> i64 {
    let now = hostca::db::now();
    let active: Vec<String> = certificates::table
        .filter(certificates::revoked_at.is_null())
        .filter(certificates::not_after.gt(now))
        .select(certificates::host_id)
        .distinct()
        .load(&mut *app.conn())
        .unwrap();
    let seen: Vec<(String, Option<chrono::NaiveDateTime>)> = hosts::table
        .select((hosts::host_id, hosts::trust_seen_at))
        .load(&mut *app.conn())
        .unwrap();
    seen.iter()
        .filter(|(h, t)| {
            h != hostca::services::pki::SERVER_HOST_ID
                && active.contains(h)
                && t.is_none_or(|t| t < since)
        })
        .count() as i64
}

/// The counts the console shows, checked against SQL.
async fn check_counts(app: &TestApp, key: &str, from: i64) -> (i64, i64) {
    let state = admin_json(app, key, &["ca", "show"]);
    let since = chrono::NaiveDateTime::parse_from_str(
        state["migration"]["initiated_at"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%SZ",
    )
    .unwrap();
    // initiated_at is stored with sub-second precision: compare at the second.
    let trust = state["pending_trust"].as_i64().unwrap();
    let renewal = state["pending_renewal"].as_i64().unwrap();
    assert_eq!(renewal, sql_pending_renewal(app, from), "pending renewal");
    let sql_trust = sql_pending_trust(app, since + chrono::Duration::seconds(1));
    assert!(
        (sql_pending_trust(app, since)..=sql_trust).contains(&trust),
        "pending trust {trust} against SQL {sql_trust}"
    );
    let page = app.get_html("/security/ca").await;
    assert_eq!(
        common::element_text(&page, "pending-trust-count").as_deref(),
        Some(trust.to_string().as_str())
    );
    assert_eq!(
        common::element_text(&page, "pending-renewal-count").as_deref(),
        Some(renewal.to_string().as_str())
    );
    (trust, renewal)
}

fn bundle_count(pem: &str) -> usize {
    pem.matches("BEGIN CERTIFICATE").count()
}

/// Mutual TLS with openssl: `server` serves, `client` connects, each with its own
/// certificate, each trusting only `bundle`; the server demands and verifies the client's.
fn mutual_tls(server: &RealHost, client: &RealHost, client_name: &str, bundle: &str) {
    let port = common::free_port().to_string();
    let s = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port,
            "-naccept",
            "1",
            "-www",
            "-cert",
            &server.file("host.pem"),
            "-key",
            &server.file("host.key"),
            "-CAfile",
            bundle,
            "-Verify",
            "3",
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_server runs");
    let mut out = String::new();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let c = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client -connect 127.0.0.1:{port} -cert {} -key {} -CAfile {bundle} -verify_return_error -verify 3 -quiet 2>&1",
                    client.file("host.pem"),
                    client.file("host.key")
                ),
            ])
            .output()
            .unwrap();
        out = String::from_utf8_lossy(&c.stdout).to_string();
        if !out.contains("Connection refused") && !out.contains("connect:errno") {
            break;
        }
    }
    assert!(out.contains("200 ok"), "s_client: {out}");
    let served = s.wait_with_output().unwrap();
    let served = format!(
        "{}{}",
        String::from_utf8_lossy(&served.stdout),
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(
        served.contains(&format!("CN = {client_name}")),
        "s_server verified the client: {served}"
    );
}

#[tokio::test]
async fn a_thousand_hosts_move_from_one_issuing_ca_to_another() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "ca").await;
    let old = app.ctx.pki.signing().id;

    // The hierarchy of a new installation: a root that signs only the issuing CA.
    let state = admin_json(&app, &key, &["ca", "show"]);
    let issuers = state["issuers"].as_array().unwrap();
    assert_eq!(issuers.len(), 2, "{state}");
    assert_eq!(
        (issuers[0]["role"].as_str(), issuers[1]["role"].as_str()),
        (Some("root"), Some("issuing"))
    );
    assert_eq!(issuers[1]["parent_id"], issuers[0]["id"]);
    assert!(state["migration"].is_null());
    let bundle = app.get_html("/ca.pem").await;
    assert_eq!(bundle_count(&bundle), 2);
    let bundle_file = app.scratch().join("bundle-1.pem");
    std::fs::write(&bundle_file, &bundle).unwrap();
    let (_, text) = openssl(&[
        "x509",
        "-in",
        app.scratch().join("bundle-1.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("CA:TRUE"), "{text}");

    // Three real hosts through the client, each pinning the root by its fingerprint.
    let token = app.token_value("fleet", "3").await;
    let fp = app.ctx.pki.root_fingerprint();
    let mut real = Vec::new();
    for i in 0..3 {
        let h = RealHost {
            app: &app,
            dir: app.scratch().join(format!("host{i}")),
        };
        let r = h.run(&["get-ca-certificate", "--fingerprint", &fp]);
        assert!(r.ok, "{}", r.stderr);
        assert_eq!(
            bundle_count(&std::fs::read_to_string(h.file("ca.pem")).unwrap()),
            2,
            "the root and the CA it signed"
        );
        let name = format!("real{i}.example.com");
        let r = h.run(&["get-certificate", "--hostname", &name, "--token", &token]);
        assert!(r.ok, "{}", r.stderr);
        let (ok, out) = openssl(&["verify", "-CAfile", &h.file("ca.pem"), &h.file("host.pem")]);
        assert!(ok, "{out}");
        real.push(h);
    }

    // 1,000 more hosts as rows, each with an active certificate of the issuing CA.
    let now = hostca::db::now();
    hostca::db::write_tx(&mut app.conn(), |c| {
        for i in 0..ROWS {
            let host =
                hostca::services::hosts::create(c, &format!("sim{i:04}.example.com"), "test", now)?;
            let serial = format!(
                "{:032X}",
                0x5000_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
            );
            Certificate::insert(
                c,
                &NewCertificate {
                    serial: &serial,
                    host_id: &host.host_id,
                    subject: "",
                    names: &host.primary_name,
                    not_before: now,
                    not_after: now + chrono::Duration::days(300),
                    fingerprint_sha256: "",
                    pem: "",
                    token_name: None,
                    created_at: now,
                    issued_via: IssuedVia::Enrollment,
                    acme_account_id: None,
                    replaces: None,
                    issuer_id: Some(old),
                    renew_by: None,
                },
            )?;
        }
        Ok(())
    })
    .unwrap();

    // Initiate: refused without a reason, and to a security administrator.
    let r = admin(&app, &key, &["ca", "migrate", "initiate", "--reason", " "]);
    assert!(!r.ok && r.stderr.contains("reason"), "{}", r.stderr);
    let secadmin = app
        .user(hostca::models::kinds::Role::SecurityAdmin, "sec")
        .await;
    let sec_key = api_key(&secadmin, "sec").await;
    let r = admin(
        &app,
        &sec_key,
        &["ca", "migrate", "initiate", "--reason", "mine"],
    );
    assert!(!r.ok && r.stderr.contains("403"), "{}", r.stderr);
    let m = admin_json(
        &app,
        &key,
        &["ca", "migrate", "initiate", "--reason", "yearly rotation"],
    );
    assert_eq!(m["phase"], "initiated");
    let new = m["to_issuer_id"].as_i64().unwrap();
    assert_eq!(m["from_issuer_id"].as_i64(), Some(old));
    // A key in a token stays in it: the new CA's key is a new object beside the old one.
    let set = app.ctx.pki.issuers();
    let (old_at, new_at) = (
        set.get(old).unwrap().row.key_location.clone(),
        set.get(new).unwrap().row.key_location.clone(),
    );
    assert_eq!(
        old_at.starts_with("pkcs11:"),
        common::issuing_key_in_token(),
        "{old_at}"
    );
    assert_eq!(
        new_at.starts_with("pkcs11:"),
        old_at.starts_with("pkcs11:"),
        "{new_at}"
    );
    assert_ne!(old_at, new_at);
    // A second migration waits for the first.
    let r = admin(
        &app,
        &key,
        &["ca", "migrate", "initiate", "--reason", "again"],
    );
    assert!(!r.ok && r.stderr.contains("409"), "{}", r.stderr);
    // The bundle carries old and new; nothing is signed by the new CA yet.
    let bundle = app.get_html("/ca.pem").await;
    assert_eq!(bundle_count(&bundle), 3);
    assert_eq!(app.ctx.pki.signing().id, old);
    let total = (ROWS + 3) as i64;
    assert_eq!(check_counts(&app, &key, old).await, (total, total));

    // A host that fetches its CRL (naming itself) now trusts the new CA.
    let r = real[0].run(&["get-crl"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(check_counts(&app, &key, old).await, (total - 1, total));

    // Activate: new certificates come from the new CA; renewals move hosts over.
    let m = admin_json(
        &app,
        &key,
        &["ca", "migrate", "activate", "--reason", "bundle is out"],
    );
    assert_eq!(m["phase"], "activated");
    assert_eq!(app.ctx.pki.signing().id, new);
    for h in &real[..2] {
        let r = h.run(&["renew-certificate"]);
        assert!(r.ok, "{}", r.stderr);
        assert!(
            r.stdout.contains("Now trusting"),
            "the renewal brought the new CA: {}",
            r.stdout
        );
        assert_eq!(
            bundle_count(&std::fs::read_to_string(h.file("ca.pem")).unwrap()),
            3
        );
        let (ok, out) = openssl(&["verify", "-CAfile", &h.file("ca.pem"), &h.file("host.pem")]);
        assert!(ok, "{out}");
        let (_, text) = openssl(&["x509", "-in", &h.file("host.pem"), "-noout", "-text"]);
        assert!(text.contains(&format!("/crl/{new}")), "{text}");
    }
    assert_eq!(check_counts(&app, &key, old).await, (total - 2, total - 2));
    // Complete is refused while the old CA has active certificates.
    let r = admin(
        &app,
        &key,
        &["ca", "migrate", "complete", "--reason", "early"],
    );
    assert!(!r.ok && r.stderr.contains("still has"), "{}", r.stderr);

    // Mutual TLS between an old-CA leaf (host 2) and a new-CA leaf (host 0), both ways,
    // each side trusting the bundle with both CAs.
    let both = app.scratch().join("bundle-both.pem");
    std::fs::write(&both, app.get_html("/ca.pem").await).unwrap();
    let both = both.display().to_string();
    mutual_tls(&real[0], &real[2], "real2.example.com", &both);
    mutual_tls(&real[2], &real[0], "real0.example.com", &both);

    // Mark all for renewal: every host still on the old CA may renew early once.
    let marked = admin_json(
        &app,
        &key,
        &["ca", "migrate", "mark-renewal", "--reason", "move now"],
    );
    assert_eq!(marked["marked"].as_i64(), Some(total - 2));
    let marked_rows: i64 = hosts::table
        .filter(hosts::renewal_allowed_until.is_not_null())
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(marked_rows, total - 2);

    // Both lists as CSV; host 2 never moved and is listed.
    let csv = app
        .get_html("/security/ca/migration/pending-renewal.csv")
        .await;
    assert_eq!(
        csv.lines().count() as i64,
        total - 2 + 1,
        "a header and one line a host"
    );
    assert!(csv.contains("real2.example.com") && !csv.contains("real0.example.com"));
    let listed = admin(&app, &key, &["ca", "pending-trust", "--csv"]);
    assert!(
        listed.ok
            && listed.stdout.contains("real2.example.com")
            && !listed.stdout.contains("real1.example.com")
    );

    // Complete by force; the old CA's CRL stays published, signed, and openssl reads it.
    let m = admin_json(
        &app,
        &key,
        &[
            "ca",
            "migrate",
            "complete",
            "--reason",
            "stragglers have tokens",
            "--force",
        ],
    );
    assert_eq!(
        (m["phase"].as_str(), m["forced"].as_bool()),
        (Some("completed"), Some(true))
    );
    let old_crl = app.scratch().join("old.crl.pem");
    std::fs::write(&old_crl, app.get_html(&format!("/crl/{old}.pem")).await).unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-in",
        old_crl.to_str().unwrap(),
        "-CAfile",
        &both,
        "-noout",
    ]);
    assert!(ok, "{out}");
    // A revocation of an old-CA certificate reaches the old CA's CRL.
    let serial = format!("{:032X}", 0x5000_0000_0000_0000_0000_0000_0000_0000u128 + 7);
    let (s, b) = app
        .post_json_with_key(
            &key,
            &format!("/api/v1/certificates/{serial}/revoke"),
            &json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let crl = app.get_html(&format!("/crl/{old}.pem")).await;
    std::fs::write(&old_crl, &crl).unwrap();
    let (_, text) = openssl(&["crl", "-in", old_crl.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains(&serial), "{text}");

    // Decommission: the old CA leaves the bundle; its root stays (it signed the new one).
    let m = admin_json(
        &app,
        &key,
        &["ca", "migrate", "decommission", "--reason", "done"],
    );
    assert_eq!(m["phase"], "decommissioned");
    let bundle = app.get_html("/ca.pem").await;
    assert_eq!(bundle_count(&bundle), 2);
    let state = admin_json(&app, &key, &["ca", "show"]);
    assert!(state["migration"].is_null());
    let old_view = state["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"].as_i64() == Some(old))
        .unwrap()
        .clone();
    assert_eq!(
        (old_view["state"].as_str(), old_view["in_bundle"].as_bool()),
        (Some("retired"), Some(false))
    );

    // Every step is audited with its reason.
    let steps: Vec<(String, String)> = audit_events::table
        .filter(audit_events::category.eq("CA"))
        .filter(audit_events::action.like("ca_migration_%"))
        .filter(audit_events::outcome.eq("success"))
        .order(audit_events::id.asc())
        .select((audit_events::action, audit_events::reason))
        .load(&mut *app.conn())
        .unwrap();
    let actions: Vec<&str> = steps.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "ca_migration_initiate",
            "ca_migration_activate",
            "ca_migration_mark_renewal",
            "ca_migration_complete",
            "ca_migration_decommission"
        ]
    );
    assert!(steps.iter().all(|(_, r)| !r.is_empty()));
}

#[tokio::test]
async fn an_installation_from_before_the_hierarchy_keeps_its_root_and_migrates_to_a_new_one() {
    // A data directory as the first release left it: ca.pem and ca.key, one root that
    // signs hosts.
    let legacy = hostca::pki::ca::Ca::create_legacy("CN=hostca CA OLD", hostca::db::now()).unwrap();
    let app = common::spawn_app_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        legacy.save_legacy(&c.data_dir).unwrap();
    })
    .await;
    let data = app.data_dir();
    app.login().await;
    let key = api_key(&app, "ca").await;
    let state = admin_json(&app, &key, &["ca", "show"]);
    let issuers = state["issuers"].as_array().unwrap();
    assert_eq!(issuers.len(), 1, "{state}");
    assert_eq!(issuers[0]["role"], "root_issuing");
    assert_eq!(
        issuers[0]["fingerprint_sha256"].as_str(),
        Some(legacy.sha256.as_str())
    );
    assert_eq!(
        app.get_html("/ca.pem").await,
        legacy.cert_pem,
        "the same CA, unchanged"
    );
    let token = app.token_value("old", "1").await;
    let (s, b) = app
        .enroll(
            "legacy.example.com",
            &common::quick_csr("legacy.example.com"),
            Some(&token),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    // Its root cannot leave the server (it signs hosts) until a migration gives a new root.
    let db = app.config.database_url.clone().unwrap_or_default();
    let mut envs = vec![("P", "a long passphrase")];
    if !db.is_empty() {
        envs.push(("DATABASE_URL", db.as_str()));
    }
    let r = hostca(
        &[
            "ca",
            "export-root",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            "/dev/null",
            "--passphrase-env",
            "P",
        ],
        &envs,
    );
    assert!(
        !r.ok && r.stderr.contains("signs hosts itself"),
        "{}",
        r.stderr
    );
    let m = admin_json(
        &app,
        &key,
        &["ca", "migrate", "initiate", "--reason", "to the hierarchy"],
    );
    let state = admin_json(&app, &key, &["ca", "show"]);
    let roles: Vec<&str> = state["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["root_issuing", "root", "issuing"],
        "a new root with its issuing CA"
    );
    assert_eq!(m["from_issuer_id"], 1);
    assert_eq!(bundle_count(&app.get_html("/ca.pem").await), 3);
}

#[tokio::test]
async fn what_the_ca_refuses() {
    let app = spawn_app().await;
    app.login().await;
    let count = |app: &TestApp| -> i64 {
        hostca::db::schema::ca_migrations::table
            .count()
            .get_result(&mut *app.conn())
            .unwrap()
    };
    // A forged form (no CSRF token), and a viewer's real one: nothing starts.
    let r = app
        .post_raw("/security/ca/migration/initiate", &[("reason", "forged")])
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let viewer = app
        .user(hostca::models::kinds::Role::Viewer, "watcher")
        .await;
    let r = viewer
        .post("/security/ca/migration/initiate", &[("reason", "mine")])
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let refused: i64 = audit_events::table
        .filter(audit_events::action.eq("ca_migration_initiate"))
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(refused, 1, "the viewer's attempt is audited");
    // A step out of order is a 409 that says what is needed.
    let r = app
        .post("/security/ca/migration/activate", &[("reason", "too soon")])
        .await;
    assert_eq!(r.status().as_u16(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("initiate a migration first"));
    let r = app
        .post("/security/ca/migration/teleport", &[("reason", "x")])
        .await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(count(&app), 0);

    // The signer answers, and /readyz says where it is.
    let health: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let key = health["signer"]["key"].as_str().unwrap();
    if common::issuing_key_in_token() {
        assert!(key.contains("PKCS#11"), "{health}");
    } else {
        assert_eq!(key, "key file", "{health}");
    }
    assert_eq!(
        health["signer"]["issuer_id"].as_i64(),
        Some(app.ctx.pki.signing().id)
    );
    // Paths that are no CA: 404, never a file of the server.
    for path in [
        "/crl/abc",
        "/crl/99999",
        "/crl/-1",
        "/ca/1.txt",
        "/ca/1",
        "/ca/99.pem",
    ] {
        assert_eq!(app.get(path).await.status().as_u16(), 404, "{path}");
    }
    // A trust report from a host ID that is no UUID, or from no host, records nothing.
    for claimed in [
        "not-a-uuid",
        "'; DROP TABLE hosts; --",
        "00000000-0000-0000-0000-000000000001",
    ] {
        let r = common::client()
            .get(app.url("/ca.pem"))
            .header("Hostca-Host-Id", claimed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let seen: i64 = hosts::table
        .filter(hosts::trust_seen_at.is_not_null())
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(seen, 0);

    // An issuers row edited to point a key outside the data directory stops the start.
    let config = app.config.clone();
    diesel::update(hostca::db::schema::issuers::table.find(2i64))
        .set(hostca::db::schema::issuers::key_location.eq("file:../../etc/passwd"))
        .execute(&mut *app.conn())
        .unwrap();
    diesel::update(hostca::db::schema::settings::table)
        .set(hostca::db::schema::settings::issuers_generation.eq(100i64))
        .execute(&mut *app.conn())
        .unwrap();
    let err = hostca::startup::Application::build(&config)
        .err()
        .expect("a key outside the data directory is refused");
    assert!(err.to_string().contains("not a key file name"), "{err}");
    // The running server keeps the CAs it had: a reload that fails changes nothing.
    assert!(hostca::services::pki::reload_if_changed(&app.ctx).is_err());
    let (s, b) = app
        .enroll(
            "still.example.com",
            &common::quick_csr("still.example.com"),
            Some(&app.token_value("t", "1").await),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test]
async fn the_root_key_goes_offline_and_comes_back_for_one_signature() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "ca").await;
    let data = app.data_dir();
    let db = app.config.database_url.clone().unwrap_or_default();
    let local = |args: &[&str], pass: &str| {
        let mut all = args.to_vec();
        let d = data.display().to_string();
        all.extend(["--data-dir", &d, "--passphrase-env", "P"]);
        let mut envs = vec![("P", pass)];
        if !db.is_empty() {
            envs.push(("DATABASE_URL", db.as_str()));
        }
        hostca(&all, &envs)
    };
    let exported = app.scratch().join("root.sealed");
    let out = exported.display().to_string();
    // A passphrase too short, then the export.
    let r = local(&["ca", "export-root", "--out", &out], "short");
    assert!(!r.ok && r.stderr.contains("at least"), "{}", r.stderr);
    let r = local(
        &["ca", "export-root", "--out", &out],
        "a long root passphrase",
    );
    assert!(r.ok, "{}", r.stderr);
    let sealed = std::fs::read(&exported).unwrap();
    assert!(sealed.starts_with(b"HOSTCA-ROOT-KEY-1\n"));
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
    // Removal needs a copy that opens with the passphrase and holds the root's key.
    let r = local(
        &["ca", "remove-root-key", "--exported", &out],
        "the wrong passphrase",
    );
    assert!(
        !r.ok && r.stderr.contains("passphrase is wrong"),
        "{}",
        r.stderr
    );
    let other = app.scratch().join("other.sealed");
    std::fs::write(&other, b"HOSTCA-ROOT-KEY-1\nnot a header\n").unwrap();
    let r = local(
        &[
            "ca",
            "remove-root-key",
            "--exported",
            other.to_str().unwrap(),
        ],
        "a long root passphrase",
    );
    assert!(!r.ok, "{}", r.stdout);
    let root_file = super::auth::ca_key_files(&data)
        .into_iter()
        .find(|f| f.to_string_lossy().contains("ca-root-"))
        .unwrap();
    let r = local(
        &["ca", "remove-root-key", "--exported", &out],
        "a long root passphrase",
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(!root_file.exists(), "the root's key file is gone");

    // The running server takes it up within seconds: the root is offline, hosts still enroll.
    let mut offline = false;
    for _ in 0..40 {
        let set = app.ctx.pki.issuers();
        if set.issuers[0].row.key_offline() && !set.issuers[0].ca.has_key() {
            offline = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(offline, "the server saw the root go offline");
    let page = app.get_html("/security/ca").await;
    assert!(
        page.contains("offline (not on this server)"),
        "the CA page says where the key is"
    );
    let token = app.token_value("after", "1").await;
    let (s, b) = app
        .enroll(
            "after.example.com",
            &common::quick_csr("after.example.com"),
            Some(&token),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        app.get("/crl/1").await.status().as_u16(),
        200,
        "the ARL is still served"
    );

    // A new issuing CA needs the root: refused without it, made with the exported file.
    let r = admin(
        &app,
        &key,
        &["ca", "migrate", "initiate", "--reason", "rotate"],
    );
    assert!(!r.ok && r.stderr.contains("offline"), "{}", r.stderr);
    let mut all = vec![
        "ca",
        "migrate",
        "initiate",
        "--reason",
        "rotate",
        "--root-key",
        &out,
        "--root-key-passphrase-env",
        "P",
    ];
    all.extend(["--server", &app.address, "--json"]);
    let r = hostca(
        &all,
        &[("HOSTCA_API_KEY", &key), ("P", "a long root passphrase")],
    );
    assert!(r.ok, "{}", r.stderr);
    let m: Value = serde_json::from_str(&r.stdout).unwrap();
    let set = app.ctx.pki.issuers();
    let new = set.get(m["to_issuer_id"].as_i64().unwrap()).unwrap();
    assert_eq!(
        new.row.parent_id,
        Some(set.issuers[0].row.id),
        "under the same root"
    );
    assert!(
        !set.issuers[0].ca.has_key(),
        "the server kept nothing of the root key"
    );
    let root = app.scratch().join("root.pem");
    std::fs::write(&root, &set.issuers[0].row.cert_pem).unwrap();
    let issuing = app.scratch().join("new.pem");
    std::fs::write(&issuing, &new.row.cert_pem).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        issuing.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}
