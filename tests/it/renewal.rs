//! Renewal: fresh (a nonce in the CSR, used once, bound to its host, expiring), never a
//! way to add names, at most once per interval unless an administrator allows it, with
//! CRL rebuilds coalesced; and a host client that checks what it is given.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{openssl, openssl_csr, renew_csr, spawn_app, spawn_app_with, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, host_mappings, nonces};
use serde_json::{json, Value};
use x509_parser::prelude::FromDer;

/// A host enrolled with a token by an openssl key: (key path, host ID, certificate JSON).
async fn enrolled(app: &TestApp, name: &str) -> (PathBuf, String, Value) {
    let token = app.token_value(&format!("t-{name}"), "1").await;
    let (key, csr) = openssl_csr(&app.scratch(), name, name, &[]);
    let (s, b) = app.enroll(name, &csr, Some(&token)).await;
    assert_eq!(s, 201, "{b}");
    (key, b["host_id"].as_str().unwrap().to_string(), b)
}

/// Refused renewals are aggregated per source and minute: write the open minute first.
fn failed_renewals(app: &TestApp) -> Vec<String> {
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    audit_events::table
        .filter(audit_events::category.eq("CERT"))
        .filter(audit_events::action.eq("renew"))
        .filter(audit_events::outcome.eq("failure"))
        .select(audit_events::description)
        .load(&mut *app.conn())
        .unwrap()
}

fn set_interval(app: &TestApp, minutes: i32) {
    app.change_settings(|s| s.renewal_interval_minutes = Some(minutes.to_string()));
}

fn message(b: &Value) -> &str {
    b["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_renewal_needs_a_fresh_nonce_of_its_own_host() {
    let app = spawn_app().await;
    app.login().await;
    set_interval(&app, 0);
    let dir = app.scratch();
    let (key, host_id, first) = enrolled(&app, "web.example.com").await;
    let (_, other_host, _) = enrolled(&app, "db.example.com").await;

    // No nonce: refused, and the message says what to do.
    let bare = renew_csr(&dir, &key, "web.example.com", None, &[]);
    let (s, b) = app.renew(&host_id, &bare).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("fresh nonce"), "{b}");

    // A nonce issued for another host: refused.
    let theirs = app.renewal_nonce(&other_host).await;
    let csr = renew_csr(&dir, &key, "web.example.com", Some(&theirs), &[]);
    let (s, b) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).contains("fresh nonce"), "{b}");

    // A nonce nobody issued: refused.
    let csr = renew_csr(
        &dir,
        &key,
        "web.example.com",
        Some("AAAAAAAAAAAAAAAAAAAAAA"),
        &[],
    );
    let (s, b) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 422, "{b}");

    // An expired nonce: refused, and it is not consumed by the refusal either.
    let old = app.renewal_nonce(&host_id).await;
    diesel::update(nonces::table.find(hostca::services::renewal::nonce_digest(&old)))
        .set(nonces::expires_at.eq(hostca::db::now() - chrono::Duration::seconds(1)))
        .execute(&mut *app.conn())
        .unwrap();
    let csr = renew_csr(&dir, &key, "web.example.com", Some(&old), &[]);
    let (s, b) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 422, "{b}");
    assert!(message(&b).contains("expired"), "{b}");

    // The nonce is stored as a digest only, and expires five minutes after it was issued.
    let (s, answer) = app
        .post_json(
            "/api/v1/certificates/renew/nonce",
            &json!({ "host_id": host_id }),
        )
        .await;
    assert_eq!(s, 201, "{answer}");
    let nonce = answer["nonce"].as_str().unwrap().to_string();
    assert!(nonce.len() >= 22, "128 bits or more: {nonce}");
    assert!(nonce
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    let stored: Vec<(String, Option<String>, String)> = nonces::table
        .select((nonces::digest, nonces::host_id, nonces::purpose))
        .load(&mut *app.conn())
        .unwrap();
    assert!(stored.iter().all(|(d, _, _)| d != &nonce));
    assert!(stored.iter().any(
        |(d, h, p)| *d == hostca::services::renewal::nonce_digest(&nonce)
            && h.as_deref() == Some(host_id.as_str())
            && p == "renew"
    ));
    let expires = chrono::NaiveDateTime::parse_from_str(
        answer["expires_at"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%SZ",
    )
    .unwrap();
    let seconds = (expires - hostca::db::now()).num_seconds();
    assert!((240..=300).contains(&seconds), "{seconds}");

    // The good request: 201, and the new certificate is for the same host and key.
    let csr = renew_csr(&dir, &key, "web.example.com", Some(&nonce), &[]);
    let (s, renewed) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 201, "{renewed}");
    assert_ne!(renewed["serial"], first["serial"]);

    // The same request recorded and replayed: refused.
    let (s, b) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 422, "{b}");
    assert!(message(&b).contains("already used"), "{b}");

    // Unknown and malformed host IDs.
    let (s, _) = app
        .post_json(
            "/api/v1/certificates/renew/nonce",
            &json!({ "host_id": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .post_json(
            "/api/v1/certificates/renew/nonce",
            &json!({ "host_id": "x" }),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .post_json("/api/v1/certificates/renew/nonce", &json!({}))
        .await;
    assert_eq!(s, 400);

    // Every refusal is audited: aggregated per source and minute, each one counted, the
    // actor the requesting address and not the claimed host.
    let refused = failed_renewals(&app);
    let counted: Vec<(i64, String)> = audit_events::table
        .filter(audit_events::action.eq("renew"))
        .filter(audit_events::outcome.eq("failure"))
        .select((audit_events::occurrences, audit_events::actor))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        counted.iter().map(|(n, _)| n).sum::<i64>(),
        5,
        "{refused:?}"
    );
    assert!(
        counted.iter().all(|(_, a)| a == "host:127.0.0.1"),
        "{counted:?}"
    );
    assert!(refused.iter().all(|d| d.contains("nonce")), "{refused:?}");

    // Asking for many nonces keeps only a few alive per host.
    for _ in 0..20 {
        app.renewal_nonce(&host_id).await;
    }
    let live: i64 = nonces::table
        .filter(nonces::host_id.eq(&host_id))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert!(
        live as usize <= hostca::services::renewal::NONCES_PER_HOST + 1,
        "{live}"
    );
    // Expired nonces are swept.
    diesel::update(nonces::table)
        .set(nonces::expires_at.eq(hostca::db::now() - chrono::Duration::seconds(1)))
        .execute(&mut *app.conn())
        .unwrap();
    assert!(hostca::services::renewal::sweep_nonces(&app.ctx).unwrap() > 0);
    let left: i64 = nonces::table.count().get_result(&mut *app.conn()).unwrap();
    assert_eq!(left, 0);
}

/// The names of a certificate as `openssl x509 -text` prints them.
fn sans_of(app: &TestApp, pem: &str) -> String {
    let path = app
        .scratch()
        .join(format!("{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, pem).unwrap();
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        path.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(ok, "{text}");
    text
}

#[tokio::test]
async fn a_renewal_never_adds_names() {
    let app = spawn_app_with(|c| c.tls_names = vec!["ca.example.com".into()]).await;
    app.login().await;
    app.set_auto_map(true);
    let dir = app.scratch();
    let (key, host_id, _) = enrolled(&app, "app.example.com").await;
    let (_, _, _) = enrolled(&app, "taken.example.com").await;
    // An approved alias is in every renewed certificate, asked for or not.
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/mappings"),
            &[("name", "alias.example.com")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);

    let nonce = app.renewal_nonce(&host_id).await;
    let csr = renew_csr(
        &dir,
        &key,
        "ca.example.com",
        Some(&nonce),
        &[
            "DNS:ca.example.com",
            "DNS:localhost",
            "DNS:10.0.0.5",
            "IP:10.0.0.5",
            "DNS:taken.example.com",
            "DNS:new.example.com",
        ],
    );
    let (s, b) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 201, "{b}");
    let sans = sans_of(&app, b["certificate"].as_str().unwrap());
    for absent in [
        "ca.example.com",
        "localhost",
        "10.0.0.5",
        "taken.example.com",
        "new.example.com",
    ] {
        assert!(!sans.contains(absent), "{absent} in {sans}");
    }
    assert!(
        sans.contains("DNS:app.example.com, DNS:alias.example.com"),
        "{sans}"
    );
    let stored: String = certificates::table
        .filter(certificates::serial.eq(b["serial"].as_str().unwrap()))
        .select(certificates::names)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(stored, "app.example.com,alias.example.com");

    // A new name waits for an administrator; reserved and taken names are ignored.
    let mappings: Vec<(String, String)> = host_mappings::table
        .filter(host_mappings::host_id.eq(&host_id))
        .select((host_mappings::name, host_mappings::state))
        .order(host_mappings::name.asc())
        .load(&mut *app.conn())
        .unwrap();
    let state = |n: &str| {
        mappings
            .iter()
            .find(|(m, _)| m == n)
            .map(|(_, s)| s.as_str())
    };
    assert_eq!(state("new.example.com"), Some("pending"), "{mappings:?}");
    assert_ne!(state("10.0.0.5"), Some("approved"), "{mappings:?}");
    for ignored in ["ca.example.com", "localhost", "taken.example.com"] {
        assert_eq!(state(ignored), None, "{mappings:?}");
    }
}

#[tokio::test]
async fn renewals_are_limited_per_interval_unless_an_administrator_allows_one() {
    let app = spawn_app().await;
    app.login().await;
    let dir = app.scratch();
    let (key, host_id, _) = enrolled(&app, "rl.example.com").await;
    let renew = |nonce: String| renew_csr(&dir, &key, "rl.example.com", Some(&nonce), &[]);

    // The default interval is 60 minutes: a first renewal, then a second one is too soon.
    let (s, b) = app
        .renew(&host_id, &renew(app.renewal_nonce(&host_id).await))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = app
        .renew(&host_id, &renew(app.renewal_nonce(&host_id).await))
        .await;
    assert_eq!(s, 429, "{b}");
    assert!(message(&b).contains("allowed at"), "{b}");
    assert!(failed_renewals(&app).iter().any(|d| d.contains("(429)")));

    // The allowance needs the form's CSRF token and an administrator.
    let path = format!("/security/hosts/{host_id}/allow-renewal");
    let r = app.post_raw(&path, &[]).await;
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .post(
            "/admin/users",
            &[
                ("username", "viewer1"),
                ("role", "viewer"),
                ("password", "viewer1 initial password"),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let viewer = app.new_browser();
    let r = viewer.login_as("viewer1", "viewer1 initial password").await;
    assert_eq!(r.status().as_u16(), 303);
    let r = viewer.post(&path, &[]).await;
    let to_password = r
        .headers()
        .get("location")
        .is_some_and(|l| l == "/account/password");
    assert!(r.status().as_u16() == 403 || to_password, "{}", r.status());
    let allowed: Option<chrono::NaiveDateTime> = hostca::db::schema::hosts::table
        .filter(hostca::db::schema::hosts::host_id.eq(&host_id))
        .select(hostca::db::schema::hosts::renewal_allowed_until)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(allowed, None, "a viewer cannot allow an early renewal");

    let r = app.post(&path, &[]).await;
    assert_eq!(r.status().as_u16(), 303);
    let html = app.get_html(&format!("/security/hosts/{host_id}")).await;
    assert!(html.contains("Allow an early renewal") && html.contains("once, until"));
    let (s, b) = app
        .renew(&host_id, &renew(app.renewal_nonce(&host_id).await))
        .await;
    assert_eq!(s, 201, "{b}");
    // One renewal only.
    let (s, b) = app
        .renew(&host_id, &renew(app.renewal_nonce(&host_id).await))
        .await;
    assert_eq!(s, 429, "{b}");
    let allowed: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("allow_renewal"))
        .select(audit_events::outcome)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(allowed.iter().filter(|o| *o == "success").count(), 1);

    // The interval is a setting: validated, audited, 0 turns the limit off.
    let form = |minutes: &'static str| {
        vec![
            ("security_level", "high"),
            ("auto_map_host_names", "on"),
            ("certificate_validity_days", "365"),
            ("auto_reissue_minutes", "2880"),
            ("audit_retention_days", "90"),
            ("renewal_interval_minutes", minutes),
            ("reason", "renewal limit"),
        ]
    };
    for bad in ["-1", "10081", "soon"] {
        let r = app.post("/security/settings", &form(bad)).await;
        assert_eq!(r.status().as_u16(), 422, "{bad}");
        let html = r.text().await.unwrap();
        assert!(
            common::element_text(&html, "renewal_interval_minutes-error").is_some(),
            "{bad}"
        );
    }
    let r = app.post("/security/settings", &form("0")).await;
    assert_eq!(r.status().as_u16(), 303);
    let changed: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("change_setting"))
        .filter(audit_events::target.eq("renewal_interval_minutes"))
        .select(audit_events::description)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        changed,
        vec!["renewal_interval_minutes changed from 60 to 0"]
    );
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("id=\"renewal_interval_minutes\""));
    for _ in 0..2 {
        let (s, b) = app
            .renew(&host_id, &renew(app.renewal_nonce(&host_id).await))
            .await;
        assert_eq!(s, 201, "{b}");
    }
}

/// The CRL as served: its number and the serials it lists.
async fn served_crl(app: &TestApp) -> (u64, Vec<String>) {
    let der = app.get("/crl").await.bytes().await.unwrap();
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n.clone()).ok())
        .unwrap();
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| hostca::pki::serial_hex(r.raw_serial()))
        .collect();
    (number, serials)
}

/// A CSR for `key` with `nonce` as its challengePassword, made with rcgen (the openssl
/// path is tested above; this one is fast).
fn rcgen_renew_csr(key: &rcgen::KeyPair, name: &str, nonce: &str) -> String {
    let mut value = vec![0x0c, nonce.len() as u8];
    value.extend_from_slice(nonce.as_bytes());
    let mut set = vec![0x31, value.len() as u8];
    set.extend(value);
    rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .serialize_request_with_attributes(
            key,
            vec![rcgen::Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 7],
                values: set,
            }],
        )
        .unwrap()
        .pem()
        .unwrap()
}

#[tokio::test]
async fn a_burst_of_renewals_re_signs_the_crl_once() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("burst", "20").await;
    let mut hosts = Vec::new();
    for i in 0..20 {
        let name = format!("burst{i}.example.com");
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![name.clone()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let (s, b) = app.enroll(&name, &csr, Some(&token)).await;
        assert_eq!(s, 201, "{b}");
        hosts.push((
            name,
            key,
            b["host_id"].as_str().unwrap().to_string(),
            b["serial"].as_str().unwrap().to_string(),
        ));
    }
    let (before, listed) = served_crl(&app).await;
    assert!(listed.is_empty());
    let mut csrs = Vec::new();
    for (name, key, host_id, _) in &hosts {
        let nonce = app.renewal_nonce(host_id).await;
        csrs.push((host_id.clone(), rcgen_renew_csr(key, name, &nonce)));
    }
    let started = std::time::Instant::now();
    let results =
        futures_util::future::join_all(csrs.iter().map(|(host_id, csr)| app.renew(host_id, csr)))
            .await;
    for (s, b) in &results {
        assert_eq!(*s, 201, "{b}");
    }
    let superseded: Vec<&String> = hosts.iter().map(|h| &h.3).collect();
    let (after, listed) = loop {
        let (number, listed) = served_crl(&app).await;
        if superseded.iter().all(|s| listed.contains(s)) {
            break (number, listed);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the CRL lists {} of the 20 superseded certificates after 10 s",
            listed.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(listed.len(), 20);
    assert!(
        (1..=2).contains(&(after - before)),
        "20 renewals moved the CRL number from {before} to {after}"
    );
    // And it stays so: nothing else is pending.
    tokio::time::sleep(hostca::services::pki::CRL_COALESCE * 2).await;
    assert_eq!(served_crl(&app).await.0, after);
}

// ---- The host client, as a real process, against servers that lie. ----

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn hostca(args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"))
        .args(args)
        .env_remove("HOSTCA_API_KEY")
        .env_remove("HOSTCA_SERVER")
        .env_remove("HOSTCA_HOST_DIR")
        .output()
        .expect("hostca runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

type Routes = Arc<Mutex<HashMap<String, (u16, &'static str, Vec<u8>)>>>;

/// A tiny HTTP server that answers each path with what the test put there.
fn fake_server() -> (String, Routes) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let routes: Routes = Arc::default();
    let served = routes.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, kind, body) = served.lock().unwrap().get(&path).cloned().unwrap_or((
                404,
                "application/json",
                b"{\"error\":\"not_found\",\"message\":\"no such route\"}".to_vec(),
            ));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (address, routes)
}

fn answer(routes: &Routes, path: &str, status: u16, kind: &'static str, body: Vec<u8>) {
    routes
        .lock()
        .unwrap()
        .insert(path.to_string(), (status, kind, body));
}

fn offset(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn leaf(
    name: &str,
    host_id: &str,
    key: &impl rcgen::PublicKeyData,
    issuer: &rcgen::Issuer<'_, impl rcgen::SigningKey>,
) -> String {
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    p.subject_alt_names.push(rcgen::SanType::URI(
        format!("urn:uuid:{host_id}").try_into().unwrap(),
    ));
    p.not_before = offset(-1);
    p.not_after = offset(30);
    p.signed_by(key, issuer).unwrap().pem()
}

fn crl(issuer: &rcgen::Issuer<'_, impl rcgen::SigningKey>, number: u64, next_days: i64) -> Vec<u8> {
    rcgen::CertificateRevocationListParams {
        this_update: offset(next_days - 7),
        next_update: offset(next_days),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .pem()
    .unwrap()
    .into_bytes()
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[tokio::test]
async fn the_host_client_stores_only_what_it_can_verify() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("cli", "1").await;
    let dir = app.scratch().join("host");
    let d = dir.to_str().unwrap();
    let real = app.address.as_str();

    // No CA pinned yet: the client refuses before asking, and pins nothing from an answer.
    let r = hostca(&[
        "get-certificate",
        "--hostname",
        "cli.example.com",
        "--token",
        &token,
        "--server",
        real,
        "--dir",
        d,
    ]);
    assert!(
        !r.ok && r.stderr.contains("get-ca-certificate"),
        "{}",
        r.stderr
    );
    assert!(!dir.join("ca.pem").exists() && !dir.join("host.key").exists());

    let fp = app.ctx.pki.root_fingerprint();
    let r = hostca(&[
        "get-ca-certificate",
        "--fingerprint",
        &fp,
        "--server",
        real,
        "--dir",
        d,
    ]);
    assert!(r.ok, "{}", r.stderr);
    let r = hostca(&[
        "get-certificate",
        "--hostname",
        "cli.example.com",
        "--token",
        &token,
        "--server",
        real,
        "--dir",
        d,
    ]);
    assert!(r.ok, "{}", r.stderr);
    // The real client renews with a nonce; a second renewal at once meets the interval.
    let r = hostca(&["renew-certificate", "--server", real, "--dir", d]);
    assert!(
        r.ok && r.stdout.contains("Renewed"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    let r = hostca(&["renew-certificate", "--server", real, "--dir", d]);
    assert!(!r.ok && r.stderr.contains("429"), "{}", r.stderr);
    let r = hostca(&["get-crl", "--server", real, "--dir", d]);
    assert!(r.ok, "{}", r.stderr);

    let (ca_pem, host_pem, crl_pem) = (
        read(&dir, "ca.pem"),
        read(&dir, "host.pem"),
        read(&dir, "crl.pem"),
    );
    let (_, x) = x509_parser::pem::parse_x509_pem(&host_pem).unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&x.contents).unwrap();
    let host_id = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .find_map(|g| match g {
            x509_parser::extensions::GeneralName::URI(u) => u.strip_prefix("urn:uuid:"),
            _ => None,
        })
        .unwrap()
        .to_string();
    let host_key =
        rcgen::KeyPair::from_pem(&String::from_utf8(read(&dir, "host.key")).unwrap()).unwrap();
    let signing = app.ctx.pki.signing();
    let real_ca = signing.issuer().unwrap();
    let other_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut other_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca_pem = other_ca.self_signed(&other_ca_key).unwrap().pem();
    let other_ca = rcgen::Issuer::new(other_ca, other_ca_key);

    // A server that lies about renewal.
    let (fake, routes) = fake_server();
    answer(
        &routes,
        "/api/v1/certificates/renew/nonce",
        201,
        "application/json",
        json!({"nonce": "n", "expires_at": "2099-01-01T00:00:00Z"})
            .to_string()
            .into_bytes(),
    );
    let renewed = |certificate: String, ca: &str| {
        json!({"host_id": host_id, "serial": "01", "certificate": certificate,
               "ca_certificate": ca, "not_after": "2099-01-01T00:00:00Z"})
        .to_string()
        .into_bytes()
    };
    // Signed by the real CA, but for a key that is not the host's.
    let stranger = rcgen::KeyPair::generate().unwrap();
    let ca_text = String::from_utf8(ca_pem.clone()).unwrap();
    answer(
        &routes,
        "/api/v1/certificates/renew",
        201,
        "application/json",
        renewed(
            leaf("cli.example.com", &host_id, &stranger, real_ca),
            &ca_text,
        ),
    );
    let r = hostca(&["renew-certificate", "--server", &fake, "--dir", d]);
    assert!(
        !r.ok && r.stderr.contains("not for this host's key"),
        "{}",
        r.stderr
    );
    assert_eq!(read(&dir, "host.pem"), host_pem);
    // For the host's key, but signed by another CA that the answer offers as its own.
    answer(
        &routes,
        "/api/v1/certificates/renew",
        201,
        "application/json",
        renewed(
            leaf("cli.example.com", &host_id, &host_key, &other_ca),
            &other_ca_pem,
        ),
    );
    let r = hostca(&["renew-certificate", "--server", &fake, "--dir", d]);
    assert!(
        !r.ok && r.stderr.contains("not signed by the CA pinned"),
        "{}",
        r.stderr
    );
    assert_eq!(
        (read(&dir, "host.pem"), read(&dir, "ca.pem")),
        (host_pem.clone(), ca_pem.clone())
    );

    // A server that lies about the CRL.
    let get_crl = |body: Vec<u8>| {
        // The CRL of the host's own CA, as its certificate names it.
        let path = format!("/crl/{}.pem", app.ctx.pki.signing().id);
        answer(&routes, &path, 200, "application/x-pem-file", body);
        hostca(&["get-crl", "--server", &fake, "--dir", d])
    };
    let r = get_crl(crl(real_ca, 1000, -1));
    assert!(!r.ok && r.stderr.contains("out of date"), "{}", r.stderr);
    assert_eq!(read(&dir, "crl.pem"), crl_pem);
    let r = get_crl(crl(&other_ca, 1000, 7));
    assert!(!r.ok && r.stderr.contains("not signed"), "{}", r.stderr);
    assert_eq!(read(&dir, "crl.pem"), crl_pem);
    let newer = crl(real_ca, 1000, 7);
    let r = get_crl(newer.clone());
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(read(&dir, "crl.pem"), newer);
    let r = get_crl(crl(real_ca, 999, 7));
    assert!(!r.ok && r.stderr.contains("lower"), "{}", r.stderr);
    assert_eq!(read(&dir, "crl.pem"), newer);
    // The real server's CRL is older than the one now stored: refused too.
    let r = hostca(&["get-crl", "--server", real, "--dir", d]);
    assert!(!r.ok && r.stderr.contains("lower"), "{}", r.stderr);
    assert_eq!(read(&dir, "crl.pem"), newer);
}
