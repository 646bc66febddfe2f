//! Enrollment throughput: pre-generated CSRs posted to `POST /api/v1/certificates` over
//! HTTP keep-alive by many concurrent clients, against a release build of hostca and, in
//! the same run, against `cfssl serve` (if it is installed) signing the same kind of CSRs
//! without storage and with its SQLite certificate database.
//!
//!     cargo bench --bench enroll
//!
//! The targets alternate in rounds (hostca, cfssl, hostca on PostgreSQL if asked, ACME,
//! cfssl with its database; then the next round), each round with fresh CSRs against the
//! same servers, so a noisy neighbour weighs on all of them alike. Each round prints its
//! ratios (hostca / cfssl, PostgreSQL / cfssl, ACME / the JSON API, the share of the
//! cryptographic limit measured in that round); the summary gives each one's median and
//! range over the rounds.
//!
//! ACME issuance: accounts registered beforehand (one per client, bound by a token), then
//! orders to certificate (newOrder, finalize, certificate download), each a renewal of the
//! client's host.
//!
//! Environment: BENCH_REQUESTS (default 20000 per target and round), BENCH_CLIENTS (32),
//! BENCH_ROUNDS (3), BENCH_ACME_REQUESTS (default 5000; 0 skips ACME), BENCH_DATABASE_URL
//! (postgres://... to measure hostca on PostgreSQL too), BENCH_CFSSL=0 to skip cfssl,
//! BENCH_PROCESS=0 to skip the separate-process memory run.

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

#[allow(dead_code)]
mod support;
use support::{collect, env_or, median, range, Run};

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

fn print(r: &Run) {
    println!(
        "{:<44} {:>7} ok {:>5} failed {:>9.0} certs/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
        r.label,
        r.ok,
        r.failed,
        r.rate(),
        r.p50_ms,
        r.p99_ms
    );
}

/// Posts one JSON body per CSR with `clients` concurrent keep-alive connections.
async fn drive(
    label: &str,
    url: String,
    bodies: Vec<serde_json::Value>,
    clients: usize,
    expect: u16,
) -> Run {
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

/// A token named `name` with enough uses for one round; returns its value.
async fn bench_token(ctx: hostca::services::Ctx, name: &str) -> String {
    let admin = Actor {
        username: "admin".into(),
        role: Role::Administrator,
    };
    let input = tokens::TokenInput {
        name: name.into(),
        max_uses: "99999".into(),
        valid_for: "1d".into(),
        reason: "benchmark".into(),
    };
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        tokens::create(&ctx, &admin, &input).unwrap();
        tokens::reveal(&ctx, &admin, &name).unwrap().1
    })
    .await
    .unwrap()
}

/// A hostca server (in this process) that lives across the rounds.
struct Hostca {
    label: &'static str,
    url: String,
    ctx: hostca::services::Ctx,
    /// Certificates acknowledged so far, checked against the database after each round.
    acknowledged: usize,
    _dir: tempfile::TempDir,
}

impl Hostca {
    async fn start(database_url: Option<String>) -> Hostca {
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
        let label = if database_url.is_some() {
            "hostca (PostgreSQL, token + audit, durable)"
        } else {
            "hostca (SQLite, token + audit, durable)"
        };
        Hostca {
            label,
            url,
            ctx,
            acknowledged: 0,
            _dir: dir,
        }
    }

    /// One round of `n` enrollments with fresh CSRs and a fresh token.
    async fn round(&mut self, round: usize, n: usize, clients: usize) -> Run {
        let value = bench_token(self.ctx.clone(), &format!("bench{round}")).await;
        let prefix = format!("r{round}h");
        let bodies = csrs(n, &prefix)
            .into_iter()
            .map(|(name, csr)| serde_json::json!({"hostname": name, "csr": csr, "token": value}))
            .collect();
        let result = drive(self.label, self.url.clone(), bodies, clients, 201).await;
        self.acknowledged += result.ok;
        // Every acknowledged certificate is in the database.
        let ctx = self.ctx.clone();
        let stored = tokio::task::spawn_blocking(move || {
            use diesel::prelude::*;
            let mut conn = hostca::db::get(&ctx.pool).unwrap();
            hostca::db::schema::certificates::table
                .count()
                .get_result::<i64>(&mut *conn)
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(stored as usize, self.acknowledged, "every 201 is stored");
        result
    }
}

/// ACME issuance on SQLite: `clients` accounts, registered first (not timed), each renewing
/// its host's certificate in a loop: newOrder, finalize, download. A certificate per loop.
async fn bench_acme(n: usize, clients: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    config.workers = Some(2);
    let app = Application::build(&config).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let value = bench_token(ctx.clone(), "bench").await;
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
async fn bench_hostca_process(n: usize, clients: usize) -> Option<(Run, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = Config::new(data.clone());
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    let app = Application::build(&config).unwrap();
    let handle = app.handle();
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let value = bench_token(ctx, "bench").await;
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
    // BENCH_PERF=FILE: the server's stacks under this load, for a flame graph (README).
    let perf = std::env::var("BENCH_PERF").ok().and_then(|out| {
        Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                "dwarf,32768",
                "-o",
                &out,
            ])
            .args(["-p", &guard.child.id().to_string(), "--", "sleep", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    });
    let result = drive(
        "hostca serve process (SQLite)",
        format!("http://127.0.0.1:{port}/api/v1/certificates"),
        bodies,
        clients,
        201,
    )
    .await;
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
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

/// One round of `n` signatures by a running `cfssl serve`.
async fn bench_cfssl(port: u16, with_db: bool, round: usize, n: usize, clients: usize) -> Run {
    let label = if with_db {
        "cfssl serve (SQLite certdb)"
    } else {
        "cfssl serve (no storage)"
    };
    let prefix = format!("r{round}{}", if with_db { "d" } else { "c" });
    let bodies = csrs(n, &prefix)
        .into_iter()
        .map(|(_, csr)| serde_json::json!({"certificate_request": csr}))
        .collect();
    drive(
        label,
        format!("http://127.0.0.1:{port}/api/v1/cfssl/sign"),
        bodies,
        clients,
        200,
    )
    .await
}

/// What one target did over the rounds.
#[derive(Default)]
struct Series {
    label: String,
    rates: Vec<f64>,
    p99s: Vec<f64>,
}

impl Series {
    fn add(&mut self, r: &Run) {
        self.label = r.label.clone();
        self.rates.push(r.rate());
        self.p99s.push(r.p99_ms);
    }

    fn print(&self) {
        if self.rates.is_empty() {
            return;
        }
        let (lo, hi) = range(&self.rates);
        let (plo, phi) = range(&self.p99s);
        println!(
            "  {:<44} {:>7.0}/s ({lo:.0}–{hi:.0})   p99 {:>6.2} ms ({plo:.2}–{phi:.2})",
            self.label,
            median(&self.rates),
            median(&self.p99s)
        );
    }
}

/// A ratio per round, and its median and range.
#[derive(Default)]
struct Ratios(Vec<(String, Vec<f64>)>);

impl Ratios {
    fn add(&mut self, what: &str, round: usize, value: f64) {
        println!("  round {round}: {what:<40} {value:.2}");
        match self.0.iter_mut().find(|(w, _)| w == what) {
            Some((_, v)) => v.push(value),
            None => self.0.push((what.to_string(), vec![value])),
        }
    }

    fn print(&self) {
        for (what, v) in &self.0 {
            let (lo, hi) = range(v);
            println!(
                "  {what:<44} median {:.2} (range {lo:.2}–{hi:.2}, {} rounds)",
                median(v),
                v.len()
            );
        }
    }
}

fn main() {
    let n = env_or("BENCH_REQUESTS", 20_000);
    let clients = env_or("BENCH_CLIENTS", 32);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let acme_n = env_or("BENCH_ACME_REQUESTS", 5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "{n} enrollments per target and round, {rounds} rounds, {clients} concurrent \
             clients, keep-alive, P-256 CSRs"
        );
        let mut sqlite = Hostca::start(None).await;
        let pg_admin = std::env::var("BENCH_DATABASE_URL").ok().map(|base| {
            let name = format!("hostca_bench_{}", std::process::id());
            let mut admin = diesel::PgConnection::establish(&base).expect("BENCH_DATABASE_URL");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
            (admin, name, url)
        });
        let mut pg = match &pg_admin {
            Some((_, _, url)) => Some(Hostca::start(Some(url.clone())).await),
            None => None,
        };
        let use_cfssl = std::env::var("BENCH_CFSSL")
            .map(|v| v != "0")
            .unwrap_or(true)
            && Command::new("cfssl").arg("version").output().is_ok();
        let cfssl_dir = tempfile::tempdir().unwrap();
        let (cfssl, cfssl_db) = if use_cfssl {
            let plain = start_cfssl(cfssl_dir.path(), false);
            let db = start_cfssl(cfssl_dir.path(), true);
            if plain.is_none() || db.is_none() {
                println!("cfssl could not be started");
            }
            (plain, db)
        } else {
            println!(
                "cfssl not installed (apt-get install golang-cfssl) or BENCH_CFSSL=0: skipped"
            );
            (None, None)
        };
        let mut series: Vec<Series> = (0..5).map(|_| Series::default()).collect();
        let mut ratios = Ratios::default();
        let mut limits = Vec::new();
        for round in 1..=rounds {
            println!("round {round}:");
            let a = sqlite.round(round, n, clients).await;
            print(&a);
            series[0].add(&a);
            let b = match &cfssl {
                Some((_, port)) => {
                    let b = bench_cfssl(*port, false, round, n, clients).await;
                    print(&b);
                    series[1].add(&b);
                    ratios.add(
                        "hostca SQLite / cfssl (no storage)",
                        round,
                        a.rate() / b.rate(),
                    );
                    Some(b)
                }
                None => None,
            };
            if let Some(pg) = pg.as_mut() {
                let p = pg.round(round, n, clients).await;
                print(&p);
                series[2].add(&p);
                if let Some(b) = &b {
                    ratios.add(
                        "hostca PostgreSQL / cfssl (no storage)",
                        round,
                        p.rate() / b.rate(),
                    );
                }
            }
            if acme_n > 0 {
                let r = bench_acme(acme_n, clients).await;
                print(&r);
                series[3].add(&r);
                ratios.add("ACME / the JSON API (SQLite)", round, r.rate() / a.rate());
            }
            if let Some((_, port)) = &cfssl_db {
                let d = bench_cfssl(*port, true, round, n, clients).await;
                print(&d);
                series[4].add(&d);
                ratios.add(
                    "hostca SQLite / cfssl (SQLite certdb)",
                    round,
                    a.rate() / d.rate(),
                );
            }
            let limit = tokio::task::spawn_blocking(move || crypto_limit(n.min(20_000)))
                .await
                .unwrap();
            println!(
                "{:<44} {limit:>23.0} verify + sign/s (no HTTP, no database)",
                "cryptographic limit (hostca's code, all cores)"
            );
            limits.push(limit);
            ratios.add(
                "hostca SQLite / cryptographic limit",
                round,
                a.rate() / limit,
            );
        }
        println!("summary over {rounds} rounds: median (range)");
        for s in &series {
            s.print();
        }
        let (lo, hi) = range(&limits);
        println!(
            "  {:<44} {:>7.0}/s ({lo:.0}–{hi:.0})",
            "cryptographic limit",
            median(&limits)
        );
        ratios.print();
        drop(pg);
        if let Some((mut admin, name, _)) = pg_admin {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        if std::env::var("BENCH_PROCESS")
            .map(|v| v != "0")
            .unwrap_or(true)
        {
            if let Some((r, peak)) = bench_hostca_process(n, clients).await {
                print(&r);
                println!(
                    "{:<44} peak resident memory of the server process: {peak:.0} MB",
                    ""
                );
            }
        }
    });
}
