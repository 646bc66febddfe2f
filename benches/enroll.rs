//! Enrollment throughput: pre-generated CSRs posted to `POST /api/v1/certificates` over
//! HTTP keep-alive by many concurrent clients, against a release build of hostca and, in
//! the same run, against `cfssl serve` (if it is installed) signing the same CSRs with and
//! without its SQLite certificate database.
//!
//!     cargo bench --bench enroll
//!
//! ACME issuance is measured too: accounts registered beforehand (one per client, bound by
//! a token), then orders to certificate (newOrder, finalize, certificate download), each
//! a renewal of the client's host.
//!
//! Environment: BENCH_REQUESTS (default 20000), BENCH_CLIENTS (32), BENCH_ACME_REQUESTS
//! (default 5000; 0 skips ACME),
//! BENCH_DATABASE_URL (postgres://... to measure hostca on PostgreSQL), BENCH_CFSSL=0 to
//! skip cfssl.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use hostca::config::Config;
use hostca::models::user::Role;
use hostca::services::{tokens, Actor};
use hostca::startup::Application;

#[allow(dead_code)]
#[path = "../tests/it/acme_client.rs"]
mod acme_client;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn csrs(n: usize, prefix: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}.bench.example");
            let key = rcgen::KeyPair::generate().unwrap();
            let csr = rcgen::CertificateParams::new(vec![name.clone()])
                .unwrap()
                .serialize_request(&key)
                .unwrap()
                .pem()
                .unwrap();
            (name, csr)
        })
        .collect()
}

/// The cryptographic limit on this machine, measured with hostca's own code: verifying a
/// CSR and signing its certificate, on as many threads as there are cores, with no HTTP
/// and no database. No enrollment service can go faster than this.
fn crypto_limit(n: usize) -> f64 {
    let ca = hostca::pki::ca::Ca::create_legacy("CN=bench limit", hostca::db::now()).unwrap();
    let pems: Vec<String> = csrs(n, "l").into_iter().map(|(_, csr)| csr).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pem) = pems.get(i) else { break };
                let csr = hostca::pki::csr::verify_pem(pem).unwrap();
                let names = [format!("l{i}.bench.example")];
                hostca::pki::issue::issue(
                    &ca,
                    &hostca::pki::issue::LeafRequest {
                        names: &names,
                        host_id: Some("0190a5b8-0000-7000-8000-000000000000"),
                        spki_der: &csr.spki_der,
                        validity_days: 365,
                        validity_minutes: None,
                        now: hostca::db::now(),
                        public_url: "http://127.0.0.1:8080",
                    },
                )
                .unwrap();
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

struct Result {
    label: String,
    ok: usize,
    failed: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Result {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    fn print(&self) {
        println!(
            "{:<44} {:>7} ok {:>5} failed {:>9.0} certs/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            self.label,
            self.ok,
            self.failed,
            self.rate(),
            self.p50_ms,
            self.p99_ms
        );
    }
}

/// Posts one JSON body per CSR with `clients` concurrent keep-alive connections.
async fn drive(
    label: &str,
    url: String,
    bodies: Vec<serde_json::Value>,
    clients: usize,
    expect: u16,
) -> Result {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                match client.post(&url).json(body).send().await {
                    Ok(r) if r.status().as_u16() == expect => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    Ok(r) => {
                        if failed == 0 {
                            eprintln!("{}: {}", r.status(), r.text().await.unwrap_or_default());
                        }
                        failed += 1;
                    }
                    Err(e) => {
                        if failed == 0 {
                            eprintln!("{e}");
                        }
                        failed += 1;
                    }
                }
            }
            (latencies, failed)
        }));
    }
    collect(label, tasks, start).await
}

/// Waits for the clients (each: its latencies and its failures) and sums them up.
async fn collect(
    label: &str,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    start: Instant,
) -> Result {
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Result {
        label: label.to_string(),
        ok: all.len(),
        failed,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// A token with enough uses for the whole run; returns its value.
async fn bench_token(ctx: hostca::services::Ctx) -> String {
    let admin = Actor {
        username: "admin".into(),
        role: Role::Administrator,
    };
    let input = tokens::TokenInput {
        name: "bench".into(),
        max_uses: "99999".into(),
        valid_for: "1d".into(),
        reason: "benchmark".into(),
    };
    tokio::task::spawn_blocking(move || {
        tokens::create(&ctx, &admin, &input).unwrap();
        tokens::reveal(&ctx, &admin, "bench").unwrap().1
    })
    .await
    .unwrap()
}

async fn bench_hostca(n: usize, clients: usize, database_url: Option<String>) -> Result {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    config.database_url = database_url.clone();
    config.workers = Some(2);
    let app = Application::build(&config).unwrap();
    let url = format!("http://127.0.0.1:{}/api/v1/certificates", app.port());
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let value = bench_token(ctx.clone()).await;
    let label = if database_url.is_some() {
        "hostca (PostgreSQL, token + audit, durable)"
    } else {
        "hostca (SQLite, token + audit, durable)"
    };
    let bodies = csrs(n, "h")
        .into_iter()
        .map(|(name, csr)| serde_json::json!({"hostname": name, "csr": csr, "token": value}))
        .collect();
    let result = drive(label, url, bodies, clients, 201).await;
    // Every acknowledged certificate is in the database.
    let c3 = ctx.clone();
    let stored = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        let mut conn = hostca::db::get(&c3.pool).unwrap();
        hostca::db::schema::certificates::table
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(stored as usize, result.ok, "every 201 is stored");
    result
}

/// ACME issuance on SQLite: `clients` accounts, registered first (not timed), each renewing
/// its host's certificate in a loop: newOrder, finalize, download. A certificate per loop.
async fn bench_acme(n: usize, clients: usize) -> Result {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    config.workers = Some(2);
    let app = Application::build(&config).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let value = bench_token(ctx.clone()).await;
    let per_client = n.div_ceil(clients);
    let mut accounts = Vec::new();
    for k in 0..clients {
        let mut c = acme_client::Acme::at(&base, reqwest::Client::new()).await;
        let r = c.register(Some(("bench", &value))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let name = format!("acme{k}.bench.example");
        let csrs: Vec<Vec<u8>> = (0..per_client)
            .map(|_| acme_client::csr_der(&[&name]).0)
            .collect();
        accounts.push((c, name, csrs));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, name, csrs) in accounts {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            for csr in csrs {
                if next.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
                let t = Instant::now();
                let order = c.new_order(&[&name]).await;
                let done = if order.status == 201 {
                    c.finalize(&order.json(), &csr).await
                } else {
                    Err(order)
                };
                match done {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(r) => {
                        if failed == 0 {
                            eprintln!("ACME: {} {}", r.status, r.body);
                        }
                        failed += 1;
                    }
                }
            }
            (latencies, failed)
        }));
    }
    collect("hostca ACME (SQLite, order to certificate)", tasks, start).await
}

/// The same load against a separate `hostca serve` process, to read the server's own peak
/// memory from /proc.
async fn bench_hostca_process(n: usize, clients: usize) -> Option<(Result, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = Config::new(data.clone());
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    let app = Application::build(&config).unwrap();
    let handle = app.handle();
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let value = bench_token(ctx).await;
    handle.stop(true).await;
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_hostca"))
        .args([
            "serve",
            "--data-dir",
            data.to_str()?,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "2",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Cfssl { child };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bodies = csrs(n, "p")
        .into_iter()
        .map(|(name, csr)| serde_json::json!({"hostname": name, "csr": csr, "token": value}))
        .collect();
    let result = drive(
        "hostca serve process (SQLite)",
        format!("http://127.0.0.1:{port}/api/v1/certificates"),
        bodies,
        clients,
        201,
    )
    .await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", guard.child.id())).ok()?;
    let peak_mb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)?;
    Some((result, peak_mb))
}

struct Cfssl {
    child: Child,
}

impl Drop for Cfssl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_cfssl(dir: &std::path::Path, with_db: bool) -> Option<(Cfssl, u16)> {
    let key = dir.join("ca-key.pem");
    let cert = dir.join("ca.pem");
    if !cert.exists() {
        let ok = Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&key)
            .status()
            .ok()?
            .success()
            && Command::new("openssl")
                .args(["req", "-x509", "-new", "-key"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .args(["-subj", "/CN=cfssl bench CA", "-days", "30"])
                .status()
                .ok()?
                .success();
        if !ok {
            return None;
        }
    }
    let port = free_port();
    let mut cmd = Command::new("cfssl");
    cmd.args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
        .arg("-ca")
        .arg(&cert)
        .arg("-ca-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if with_db {
        let db = dir.join("certs.db");
        let _ = std::fs::remove_file(&db);
        let mut conn = diesel::SqliteConnection::establish(db.to_str()?).ok()?;
        conn.batch_execute(
            "CREATE TABLE certificates (serial_number blob NOT NULL, authority_key_identifier blob NOT NULL,
               ca_label blob, status blob NOT NULL, reason int, created_at timestamp, expiry timestamp,
               revoked_at timestamp, pem blob NOT NULL, issued_at timestamp, not_before timestamp,
               metadata text, sans text, common_name text,
               PRIMARY KEY(serial_number, authority_key_identifier));
             CREATE TABLE ocsp_responses (serial_number blob NOT NULL, authority_key_identifier blob NOT NULL,
               body blob NOT NULL, expiry timestamp, PRIMARY KEY(serial_number, authority_key_identifier));",
        )
        .ok()?;
        let cfg = dir.join("db.json");
        std::fs::write(
            &cfg,
            format!(r#"{{"driver":"sqlite3","data_source":"{}"}}"#, db.display()),
        )
        .ok()?;
        cmd.arg("-db-config").arg(&cfg);
    }
    let child = cmd.spawn().ok()?;
    let guard = Cfssl { child };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((guard, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

async fn bench_cfssl(
    n: usize,
    clients: usize,
    with_db: bool,
    dir: &std::path::Path,
) -> Option<Result> {
    let (_guard, port) = start_cfssl(dir, with_db)?;
    let label = if with_db {
        "cfssl serve (SQLite certdb)"
    } else {
        "cfssl serve (no storage)"
    };
    let bodies = csrs(n, if with_db { "d" } else { "c" })
        .into_iter()
        .map(|(_, csr)| serde_json::json!({"certificate_request": csr}))
        .collect();
    Some(
        drive(
            label,
            format!("http://127.0.0.1:{port}/api/v1/cfssl/sign"),
            bodies,
            clients,
            200,
        )
        .await,
    )
}

fn main() {
    let n = env_or("BENCH_REQUESTS", 20_000);
    let clients = env_or("BENCH_CLIENTS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "{n} enrollments per target, {clients} concurrent clients, keep-alive, P-256 CSRs"
        );
        let mut results = vec![bench_hostca(n, clients, None).await];
        results[0].print();
        let acme_n = env_or("BENCH_ACME_REQUESTS", 5_000);
        if acme_n > 0 {
            let r = bench_acme(acme_n, clients).await;
            r.print();
            println!(
                "{:<44} {:.2} of the JSON API's rate",
                "",
                r.rate() / results[0].rate()
            );
            results.push(r);
        }
        if std::env::var("BENCH_PROCESS")
            .map(|v| v != "0")
            .unwrap_or(true)
        {
            if let Some((r, peak)) = bench_hostca_process(n, clients).await {
                r.print();
                println!(
                    "{:<44} peak resident memory of the server process: {peak:.0} MB",
                    ""
                );
            }
        }
        if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
            let base = url.clone();
            let name = format!("hostca_bench_{}", std::process::id());
            let mut admin = diesel::PgConnection::establish(&base).expect("BENCH_DATABASE_URL");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let db_url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
            let r = bench_hostca(n, clients, Some(db_url)).await;
            r.print();
            results.push(r);
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        let use_cfssl = std::env::var("BENCH_CFSSL")
            .map(|v| v != "0")
            .unwrap_or(true)
            && Command::new("cfssl").arg("version").output().is_ok();
        if use_cfssl {
            let dir = tempfile::tempdir().unwrap();
            for with_db in [false, true] {
                match bench_cfssl(n, clients, with_db, dir.path()).await {
                    Some(r) => {
                        r.print();
                        results.push(r);
                    }
                    None => println!("cfssl could not be started (with_db={with_db})"),
                }
            }
        } else {
            println!(
                "cfssl not installed (apt-get install golang-cfssl) or BENCH_CFSSL=0: skipped"
            );
        }
        let limit = tokio::task::spawn_blocking(move || crypto_limit(n.min(20_000)))
            .await
            .unwrap();
        println!(
            "{:<44} {limit:>23.0} verify + sign/s (no HTTP, no database)",
            "cryptographic limit (hostca's code, all cores)"
        );
        println!("share of the cryptographic limit:");
        for r in &results {
            println!("  {:<42} {:.2}", r.label, r.rate() / limit);
        }
        let hostca = results[0].rate();
        println!("hostca on SQLite ({hostca:.0}/s) divided by:");
        for r in &results[1..] {
            println!("  {:<42} {:.2}", r.label, hostca / r.rate());
        }
    });
}
