//! PostgreSQL only (HOSTCA_TEST_DATABASE_URL): two `hostca serve` processes on one
//! database serve the same users and sessions and never over-use a token between them;
//! with HOSTCA_TEST_PG_RESTART=1 (run alone by .ci/run, since it restarts the machine's
//! PostgreSQL), a restart under load gives clear 503s and the server recovers by itself.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::element_text;
use diesel::connection::SimpleConnection;
use diesel::Connection;

struct Db {
    base: String,
    name: String,
    url: String,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = diesel::PgConnection::establish(&self.base) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn pg() -> Option<Db> {
    match common::fresh_database() {
        (Some(url), Some((base, name))) => Some(Db { base, name, url }),
        _ => {
            eprintln!("SKIPPED: set HOSTCA_TEST_DATABASE_URL to run the PostgreSQL cluster tests");
            None
        }
    }
}

/// Two `hostca serve` processes on one data directory and database.
struct Pair {
    _a: common::ServerProcess,
    _b: common::ServerProcess,
    base_a: String,
    base_b: String,
    data: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn two_servers(db: &Db) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (pa, pb) = (common::free_port(), common::free_port());
    Pair {
        _a: common::serve_process(&data, pa, Some(&db.url)),
        _b: common::serve_process(&data, pb, Some(&db.url)),
        base_a: format!("http://127.0.0.1:{pa}"),
        base_b: format!("http://127.0.0.1:{pb}"),
        data,
        _dir: dir,
    }
}

async fn token(c: &reqwest::Client, base: &str, csrf: &str, name: &str, uses: &str) -> String {
    let r = c
        .post(format!("{base}/security/tokens"))
        .form(&[("csrf_token", csrf), ("name", name), ("max_uses", uses)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let html = c
        .post(format!("{base}/security/tokens/{name}/show"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    element_text(&html, "token-value").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_users_sessions_and_tokens() {
    let Some(db) = pg() else { return };
    let pair = two_servers(&db);
    let (base_a, base_b) = (pair.base_a.clone(), pair.base_b.clone());
    // A session opened on A is valid on B (same keys, same users).
    let (c, csrf) = common::admin_client(&base_a).await;
    let r = c
        .get(format!("{base_b}/security/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the session works on the other server"
    );
    let value = token(&c, &base_b, &csrf, "shared", "5").await;
    assert_eq!(
        c.get(format!("{base_a}/security/tokens/shared"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // 40 enrollments, half on each server, on a token of 5 uses: exactly 5 certificates.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let base = if i % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("h{i}.cluster.example");
            reqwest::Client::new()
                .post(format!("{base}/api/v1/certificates"))
                .json(&serde_json::json!({"hostname": name, "csr": common::quick_csr(&name), "token": value}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let pool = hostca::db::connect(&db.url, 2).unwrap();
    let mut conn = hostca::db::get(&pool).unwrap();
    // The chain is keyed with the servers' audit.key.
    hostca::services::audit::use_key_of(&pair.data).unwrap();
    assert!(
        matches!(
            hostca::services::audit::verify_chain(&mut conn).unwrap(),
            hostca::services::audit::ChainStatus::Intact { .. }
        ),
        "one audit chain across both servers"
    );
    drop(pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_gives_503s_and_recovers() {
    if std::env::var("HOSTCA_TEST_PG_RESTART").is_err() {
        eprintln!(
            "SKIPPED: set HOSTCA_TEST_PG_RESTART=1 to restart the machine's PostgreSQL under load"
        );
        return;
    }
    let Some(db) = pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let _server = common::serve_process(&data, port, Some(&db.url));
    let base = format!("http://127.0.0.1:{port}");
    let (c, csrf) = common::admin_client(&base).await;
    let value = token(&c, &base, &csrf, "load", "99999").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let load = {
        let (base, value) = (base.clone(), value.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut seen = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                i += 1;
                let name = format!("r{i}.restart.example");
                let r = client
                    .post(format!("{base}/api/v1/certificates"))
                    .json(&serde_json::json!({"hostname": name, "csr": common::quick_csr(&name), "token": value}))
                    .send()
                    .await;
                let (status, body) = match r {
                    Ok(r) => (
                        r.status().as_u16(),
                        r.json::<serde_json::Value>().await.unwrap_or_default(),
                    ),
                    Err(e) => panic!("the server itself must keep answering: {e}"),
                };
                seen.push((
                    Instant::now(),
                    status,
                    body["message"].as_str().unwrap_or_default().to_string(),
                ));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let restart_at = Instant::now();
    // Down for longer than the server waits for a connection, then back.
    let ctl = |action: &str| {
        Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                version.to_str().unwrap(),
                "main",
                action,
            ])
            .status()
            .unwrap()
            .success()
    };
    assert!(ctl("stop"), "PostgreSQL stopped");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(ctl("start"), "PostgreSQL started again");
    let seen = load.await.unwrap();
    let failures: Vec<_> = seen.iter().filter(|(_, s, _)| *s != 201).collect();
    for (_, status, message) in &failures {
        assert_eq!(
            *status, 503,
            "only clear 503s while the database is away: {message}"
        );
        assert!(!message.is_empty());
    }
    assert!(
        !failures.is_empty(),
        "requests during the outage were answered 503"
    );
    let recovered = seen
        .iter()
        .any(|(t, s, _)| *t > restart_at + Duration::from_secs(9) && *s == 201);
    assert!(
        recovered,
        "requests succeed again after the restart, without restarting hostca"
    );
    eprintln!(
        "{} requests, {} answered 503 during the restart",
        seen.len(),
        failures.len()
    );
}

/// ACME across two processes: a nonce given by one is taken by the other exactly once, and
/// a token's uses (bound accounts) never pass its maximum, whichever process binds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_acme_nonces_and_token_uses() {
    use crate::acme_client::{self, sign, Acme};
    let Some(db) = pg() else { return };
    let pair = two_servers(&db);
    let (base_a, base_b) = (pair.base_a.clone(), pair.base_b.clone());
    let (c, csrf) = common::admin_client(&base_a).await;
    let value = token(&c, &base_a, &csrf, "acme-cluster", "3").await;

    // A nonce from A, spent at B, then replayed at A.
    let mut at_a = Acme::at(&base_a, common::client()).await;
    let mut at_b = Acme::at(&base_b, common::client()).await;
    let nonce = at_a.fresh_nonce().await;
    let url_b = at_b.url("newAccount");
    let mac = hostca::acme::eab_mac_key(&value).unwrap();
    let payload = serde_json::json!({
        "externalAccountBinding": acme_client::eab(&at_b.key, "acme-cluster", &mac, &url_b)
    });
    let header = serde_json::json!({"alg": "ES256", "nonce": nonce, "url": url_b, "jwk": acme_client::jwk_of(&at_b.key)});
    let jws = sign(&at_b.key, &header, Some(&payload));
    let r = at_b.send_jws(&url_b, jws).await;
    assert_eq!(r.status, 201, "a nonce of A is good at B: {}", r.body);
    let url_a = at_a.url("newAccount");
    let header = serde_json::json!({"alg": "ES256", "nonce": nonce, "url": url_a, "jwk": acme_client::jwk_of(&at_a.key)});
    let jws = sign(&at_a.key, &header, Some(&serde_json::json!({})));
    let r = at_a.send_jws(&url_a, jws).await;
    assert_eq!(
        r.problem(),
        "badNonce",
        "spent at B, refused at A: {}",
        r.body
    );

    // Eight more registrations race over both servers for the token's two remaining uses.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Acme::at(&base, common::client()).await;
            c.register(Some(("acme-cluster", &value))).await.status
        }));
    }
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 201 || s == 403, "{s}");
        created += usize::from(s == 201);
    }
    assert_eq!(created, 2, "three uses in all, one taken before the race");
}

/// Polls `check` for up to 15 seconds (the CAs reload every 5).
async fn within_seconds(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} did not happen within 15 seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_migration_on_one_server_reaches_the_other() {
    let Some(db) = pg() else { return };
    let pair = two_servers(&db);
    let (base_a, base_b) = (pair.base_a.clone(), pair.base_b.clone());
    let (c, csrf) = common::admin_client(&base_a).await;
    let bundle = |base: String| {
        let c = c.clone();
        async move {
            c.get(format!("{base}/ca.pem"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count()
        }
    };
    assert_eq!(bundle(base_b.clone()).await, 2);
    let html = c
        .get(format!("{base_a}/security/ca"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf_ca = common::csrf_in(&html).unwrap_or(csrf.clone());
    let r = c
        .post(format!("{base_a}/security/ca/migration/initiate"))
        .form(&[
            ("csrf_token", csrf_ca.as_str()),
            ("reason", "across processes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // B's trust bundle carries the new CA within seconds.
    within_seconds("B serving the new CA in its bundle", async || {
        bundle(base_b.clone()).await == 3
    })
    .await;
    let r = c
        .post(format!("{base_a}/security/ca/migration/activate"))
        .form(&[("csrf_token", csrf_ca.as_str()), ("reason", "go")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // Then B signs with it: its certificates name the new CA's CRL.
    let value = token(&c, &base_a, &csrf, "moved", "20").await;
    let mut n = 0;
    within_seconds("B signing with the new CA", async || {
        n += 1;
        let name = format!("b{n}.example.com");
        let r: serde_json::Value = c
            .post(format!("{base_b}/api/v1/certificates"))
            .json(&serde_json::json!({"hostname": name, "csr": common::quick_csr(&name), "token": value}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["chain"].as_str().is_some_and(|chain| chain.contains("BEGIN CERTIFICATE"))
            && !r["certificate"].as_str().unwrap_or_default().is_empty()
            && crate::common::openssl_text(r["certificate"].as_str().unwrap()).contains("/crl/3")
    })
    .await;
    let _ = &pair.data;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_answer_ocsp_alike_and_a_revocation_crosses_within_a_second() {
    let Some(db) = pg() else { return };
    let pair = two_servers(&db);
    let (base_a, base_b) = (pair.base_a.clone(), pair.base_b.clone());
    let (c, csrf) = common::admin_client(&base_a).await;
    let value = token(&c, &base_a, &csrf, "ocsp", "1").await;
    let name = "o1.cluster.example";
    let issued: serde_json::Value = reqwest::Client::new()
        .post(format!("{base_a}/api/v1/certificates"))
        .json(
            &serde_json::json!({"hostname": name, "csr": common::quick_csr(name), "token": value}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let serial = issued["serial"].as_str().expect("issued").to_string();
    let files = tempfile::tempdir().unwrap();
    let put = |file: &str, text: &str| {
        let p = files.path().join(file);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let first_pem = |bundle: &str| {
        let end = "-----END CERTIFICATE-----";
        bundle[..bundle.find(end).unwrap() + end.len()].to_string()
    };
    let chain = issued["chain"].as_str().unwrap();
    let issuer = if chain.trim().is_empty() {
        first_pem(issued["ca_certificate"].as_str().unwrap())
    } else {
        first_pem(chain)
    };
    let issuer = put("issuer.pem", &issuer);
    let leaf = put("leaf.pem", issued["certificate"].as_str().unwrap());
    let ca = put("ca.pem", issued["ca_certificate"].as_str().unwrap());
    let req = files.path().join("req.der").display().to_string();
    let (ok, out) = common::openssl(&[
        "ocsp",
        "-issuer",
        &issuer,
        "-cert",
        &leaf,
        "-no_nonce",
        "-reqout",
        &req,
    ]);
    assert!(ok, "{out}");
    let request = std::fs::read(&req).unwrap();
    let ask = |base: String, request: Vec<u8>| async move {
        let url = format!("{base}/ocsp");
        let r = common::ocsp_post(&url, request).await;
        r.bytes().await.unwrap().to_vec()
    };
    let status = |der: &[u8]| {
        let out = common::openssl_ocsp_verified(files.path(), der, &issuer, &leaf, &ca);
        out.lines()
            .find(|l| l.contains(".pem:") || l.contains(": good") || l.contains(": revoked"))
            .unwrap_or_default()
            .to_string()
    };
    // Both processes send the same bytes: the response one of them stored.
    let a = ask(base_a.clone(), request.clone()).await;
    let b = ask(base_b.clone(), request.clone()).await;
    assert_eq!(a, b, "the two servers answer alike");
    assert!(status(&a).ends_with(": good"), "{}", status(&a));
    // Revoked on A; B answers revoked within a second.
    let r = c
        .post(format!("{base_a}/security/certificates/{serial}/revoke"))
        .form(&[("csrf_token", csrf.as_str()), ("reason", "key_compromise")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let revoked = Instant::now();
    // Both answer it within a second (each process's producer sees it in the database).
    for (base, who) in [(&base_b, "B"), (&base_a, "A")] {
        loop {
            let der = ask(base.clone(), request.clone()).await;
            if status(&der).ends_with(": revoked") {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "{who} does not answer the revocation within a second"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let a = ask(base_a.clone(), request.clone()).await;
    let b = ask(base_b.clone(), request.clone()).await;
    assert_eq!(a, b, "alike after the revocation too");
    drop(pair);
}
