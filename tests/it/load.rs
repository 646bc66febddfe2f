//! Under load and faults: a bounded mixed load (enrollments, token creations, page views,
//! revocations at once) against the in-process server, and the same load against a
//! `hostca serve` process that is killed with SIGKILL in the middle and started again.
//! Afterwards: every certificate a client received is stored and verifies, no token was
//! used more than its maximum, every change has its audit event, the chain verifies (and
//! SQLite's integrity check passes). HOSTCA_LOAD_SECONDS sets the load's length (60).

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{csrf_in, element_text};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, tokens};
use x509_parser::prelude::FromDer;

fn load_seconds(default: u64) -> u64 {
    std::env::var("HOSTCA_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the clients were told.
#[derive(Default)]
struct Received {
    /// serial -> PEM of every certificate a client got a 201 for
    certs: HashMap<String, String>,
    tokens_created: Vec<String>,
    revoked: Vec<String>,
    errors_5xx: usize,
}

struct Load {
    base: String,
    cookie_client: reqwest::Client,
    token_values: Vec<String>,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
}

async fn csrf(c: &reqwest::Client, base: &str) -> Option<String> {
    let html = c
        .get(format!("{base}/security/tokens"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    csrf_in(&html)
}

async fn prepare_tokens(c: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let csrf = csrf(c, base).await.unwrap();
    let mut values = Vec::new();
    for i in 0..n {
        let name = format!("load-{i}");
        // Some tokens run out during the load, most do not.
        let uses = if i % 4 == 0 {
            (i % 7 + 1).to_string()
        } else {
            "99999".to_string()
        };
        let r = c
            .post(format!("{base}/security/tokens"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("name", &name),
                ("max_uses", &uses),
                ("valid_for", "1d"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let html = c
            .post(format!("{base}/security/tokens/{name}/show"))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        values.push(element_text(&html, "token-value").unwrap());
    }
    values
}

fn run_load(
    load: &Load,
    seconds: u64,
    rt: &tokio::runtime::Handle,
) -> Vec<tokio::task::JoinHandle<()>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Enrollers.
    for w in 0..8 {
        let (base, values, received, stop, counter) = (
            load.base.clone(),
            load.token_values.clone(),
            load.received.clone(),
            load.stop.clone(),
            counter.clone(),
        );
        tasks.push(rt.spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0usize;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && counter.fetch_add(1, Ordering::Relaxed) < 20_000 {
                i += 1;
                let name = format!("w{w}-{i}.load.example");
                let body = serde_json::json!({"hostname": name, "csr": common::quick_csr(&name), "token": values[(w * 31 + i) % values.len()]});
                match client.post(format!("{base}/api/v1/certificates")).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            received.lock().unwrap().certs.insert(v["serial"].as_str().unwrap().to_string(), v["certificate"].as_str().unwrap().to_string());
                        }
                    }
                    Ok(r) if r.status().is_server_error() && r.status().as_u16() != 503 => received.lock().unwrap().errors_5xx += 1,
                    _ => {}
                }
            }
        }));
    }
    // Token creators and page viewers share the admin session.
    for kind in 0..3 {
        let (base, c, received, stop) = (
            load.base.clone(),
            load.cookie_client.clone(),
            load.received.clone(),
            load.stop.clone(),
        );
        tasks.push(rt.spawn(async move {
            let mut i = 0;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && i < 3000 {
                i += 1;
                let Some(csrf) = csrf(&c, &base).await else {
                    continue;
                };
                match kind {
                    0 => {
                        let name = format!("made-{i}");
                        if let Ok(r) = c
                            .post(format!("{base}/security/tokens"))
                            .form(&[
                                ("csrf_token", csrf.as_str()),
                                ("name", &name),
                                ("max_uses", "2"),
                            ])
                            .send()
                            .await
                        {
                            if r.status().as_u16() == 303 {
                                received.lock().unwrap().tokens_created.push(name);
                            } else if r.status().is_server_error() && r.status().as_u16() != 503 {
                                received.lock().unwrap().errors_5xx += 1;
                            }
                        }
                    }
                    1 => {
                        for p in [
                            "/security/tokens?sort=name",
                            "/security/certificates",
                            "/security/hosts",
                            "/security/audit?category=CERT",
                        ] {
                            if let Ok(r) = c.get(format!("{base}{p}")).send().await {
                                if r.status().is_server_error() && r.status().as_u16() != 503 {
                                    received.lock().unwrap().errors_5xx += 1;
                                }
                            }
                        }
                    }
                    _ => {
                        let serial = received.lock().unwrap().certs.keys().nth(i % 7).cloned();
                        if let Some(serial) = serial {
                            if let Ok(r) = c
                                .post(format!("{base}/security/certificates/{serial}/revoke"))
                                .form(&[
                                    ("csrf_token", csrf.as_str()),
                                    ("reason", "key_compromise"),
                                ])
                                .send()
                                .await
                            {
                                if r.status().as_u16() == 303 {
                                    received.lock().unwrap().revoked.push(serial);
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    tasks
}

/// The invariants, read straight from the database.
fn check_invariants(pool: &hostca::db::Pool, bundle: &str, received: &Received) {
    let mut conn = hostca::db::get(pool).unwrap();
    let cas: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(bundle.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect();
    // Every certificate a client received is stored, unchanged, and verifies.
    let stored: HashMap<String, String> = certificates::table
        .select((certificates::serial, certificates::pem))
        .load::<(String, String)>(&mut *conn)
        .unwrap()
        .into_iter()
        .collect();
    for (serial, pem) in &received.certs {
        assert_eq!(
            stored.get(serial),
            Some(pem),
            "certificate {serial} was acknowledged but is not stored"
        );
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, x) = x509_parser::certificate::X509Certificate::from_der(&p.contents).unwrap();
        assert!(
            cas.iter().any(|der| {
                let (_, ca) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
                x.verify_signature(Some(ca.public_key())).is_ok()
            }),
            "{serial} is signed by a CA of the bundle"
        );
    }
    // No token was used more than its maximum, and uses match the certificates they paid for.
    let rows: Vec<(String, i32, i32)> = tokens::table
        .select((tokens::name, tokens::uses, tokens::max_uses))
        .load(&mut *conn)
        .unwrap();
    for (name, uses, max) in &rows {
        assert!(uses <= max, "token {name}: {uses} uses of {max}");
        let paid: i64 = certificates::table
            .filter(certificates::token_name.eq(name))
            .count()
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(
            paid,
            i64::from(*uses),
            "token {name}: uses and certificates agree"
        );
    }
    // Every change has its audit event.
    let issued: i64 = audit_events::table
        .filter(audit_events::action.eq("issue"))
        .filter(audit_events::outcome.eq("success"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(
        issued as usize,
        stored.len(),
        "one issue event per stored certificate"
    );
    let created: Vec<String> = audit_events::table
        .filter(audit_events::category.eq("TOKEN"))
        .filter(audit_events::action.eq("create"))
        .select(audit_events::target)
        .load(&mut *conn)
        .unwrap();
    for t in &received.tokens_created {
        assert!(created.contains(t), "token {t} has its create event");
    }
    let revokes: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("revoke"))
        .select(audit_events::target)
        .load(&mut *conn)
        .unwrap();
    for s in &received.revoked {
        assert!(revokes.contains(s), "revocation of {s} has its event");
    }
    assert!(
        matches!(
            hostca::services::audit::verify_chain(&mut conn).unwrap(),
            hostca::services::audit::ChainStatus::Intact { .. }
        ),
        "the audit chain verifies"
    );
    if let hostca::db::DbConn::Sqlite(_) = &mut *conn {
        #[derive(QueryableByName)]
        struct Check {
            #[diesel(sql_type = diesel::sql_types::Text)]
            integrity_check: String,
        }
        let r: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
            .load(&mut *conn)
            .unwrap();
        assert_eq!(r[0].integrity_check, "ok");
    }
    assert_eq!(received.errors_5xx, 0, "no 500s under load");
}

#[test]
fn a_minute_of_mixed_load_keeps_every_promise() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(common::spawn_app());
    let base = app.address.clone();
    let cookie_client = rt.block_on(common::admin_client(&base)).0;
    let token_values = rt.block_on(prepare_tokens(&cookie_client, &base, 40));
    let load = Load {
        base,
        cookie_client,
        token_values,
        received: Arc::new(Mutex::new(Received::default())),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let tasks = run_load(&load, load_seconds(60), rt.handle());
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let received = load.received.lock().unwrap();
    assert!(
        received.certs.len() >= 50,
        "the load issued certificates: {}",
        received.certs.len()
    );
    check_invariants(&app.ctx.pool, &app.ctx.pki.bundle_pem(), &received);
    eprintln!(
        "load: {} certificates, {} tokens created, {} revocations",
        received.certs.len(),
        received.tokens_created.len(),
        received.revoked.len()
    );
}

#[test]
fn killed_mid_load_it_restarts_with_nothing_acknowledged_lost() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (db_url, pg) = common::fresh_database();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let server = common::serve_process(&data, port, db_url.as_deref());
    let cookie_client = rt.block_on(common::admin_client(&base)).0;
    let token_values = rt.block_on(prepare_tokens(&cookie_client, &base, 20));
    let load = Load {
        base: base.clone(),
        cookie_client,
        token_values,
        received: Arc::new(Mutex::new(Received::default())),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let seconds = load_seconds(60).clamp(4, 20);
    let tasks = run_load(&load, seconds, rt.handle());
    std::thread::sleep(Duration::from_secs(seconds / 2));
    // SIGKILL: no shutdown, no flush, in the middle of group commits.
    let pid = server.0.id();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    drop(server);
    let restarted = common::serve_process(&data, port, db_url.as_deref());
    let cookie_client = rt.block_on(common::admin_client(&base)).0;
    assert_eq!(
        rt.block_on(cookie_client.get(format!("{base}/security/tokens")).send())
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let url = db_url
        .clone()
        .unwrap_or_else(|| data.join("hostca.sqlite3").display().to_string());
    let pool = hostca::db::connect(&url, 2).unwrap();
    // The server process's chain is keyed with its data directory's audit.key.
    hostca::services::audit::use_key_of(&data).unwrap();
    let ca: String = {
        use diesel::prelude::*;
        hostca::db::schema::issuers::table
            .select(hostca::db::schema::issuers::cert_pem)
            .load::<String>(&mut *hostca::db::get(&pool).unwrap())
            .unwrap()
            .concat()
    };
    let mut received = load.received.lock().unwrap();
    received.errors_5xx = 0; // connections cut by the kill are not server errors
    assert!(!received.certs.is_empty());
    check_invariants(&pool, &ca, &received);
    drop(restarted);
    drop(pool);
    if let Some((base_url, name)) = pg {
        if let Ok(mut c) = diesel::PgConnection::establish(&base_url) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
