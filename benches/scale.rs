//! Scale: the token list page with 100,000 tokens, cleanup of 100,000 expired tokens, a
//! CRL of 100,000 revoked certificates, and the server's memory; then a data directory
//! with 1,000,000 certificates (of 250,000 hosts) and 1,000,000 audit events: start-up,
//! the list pages, searches by name, host ID and serial, the host page, the CSV export,
//! the audit page and the overview.
//!
//!     cargo bench --bench scale
//!
//! BENCH_DATABASE_URL=postgres://... measures on PostgreSQL instead of SQLite;
//! BENCH_SCALE_CERTS (default 1000000; 0 skips that part) sets how many certificates and
//! audit events.

use std::time::Instant;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use hostca::config::Config;
use hostca::models::certificate::{Certificate, NewCertificate};
use hostca::models::token::{NewToken, Token};
use hostca::models::user::Role;
use hostca::services::Actor;
use hostca::startup::Application;

const N: usize = 100_000;

#[allow(dead_code)]
mod support;
use support::{env_or, median};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn insert_tokens(ctx: &hostca::services::Ctx, valid_until: NaiveDateTime) {
    let mut conn = hostca::db::get(&ctx.pool).unwrap();
    let now = hostca::db::now();
    hostca::db::write_tx(&mut conn, |c| {
        for i in 0..N {
            let name = format!("bulk-{i:06}");
            Token::insert(
                c,
                &NewToken {
                    name: &name,
                    kind: hostca::models::kinds::TokenKind::Authorization,
                    value_encrypted: &[0u8; 40],
                    value_digest: &format!("{i:064}"),
                    max_uses: 10,
                    uses: 0,
                    valid_until,
                    reason: "",
                    host_id: None,
                    created_by: "bench",
                    created_at: now,
                },
            )?;
        }
        Ok(())
    })
    .unwrap();
}

/// Certificates of four per host and as many audit events (chained, through the audit
/// trail's own code), written into the data directory of `config` by a process of their
/// own (`BENCH_SCALE_FILL`): the server measured afterwards starts on an existing data
/// directory, as after a restart, instead of producing OCSP responses for the new rows.
fn fill(config: &Config, n: usize) {
    let app = Application::build(config).unwrap();
    let ctx = app.ctx.clone();
    let mut conn = hostca::db::get(&ctx.pool).unwrap();
    let now = hostca::db::now();
    let issuer = ctx.pki.signing().id;
    for chunk in 0..n.div_ceil(10_000) {
        hostca::db::write_tx(&mut conn, |c| {
            for i in chunk * 10_000..((chunk + 1) * 10_000).min(n) {
                let host_id = format!("0190a000-0000-7000-8000-{:012}", i / 4);
                let name = format!("host-{:06}.scale.example", i / 4);
                if i % 4 == 0 {
                    hostca::services::hosts::create_row(c, &host_id, &name, "bench", now)?;
                }
                let serial = format!(
                    "{:032X}",
                    0x5000_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
                );
                let issued = now - chrono::Duration::days(((n - i) * 365 / n) as i64);
                Certificate::insert(
                    c,
                    &NewCertificate {
                        serial: &serial,
                        host_id: &host_id,
                        subject: &format!("CN={name}"),
                        names: &name,
                        not_before: issued,
                        not_after: issued + chrono::Duration::days(365),
                        fingerprint_sha256: "",
                        pem: "",
                        token_name: Some("scale"),
                        created_at: issued,
                        issued_via: hostca::models::certificate::IssuedVia::Enrollment,
                        acme_account_id: None,
                        replaces: None,
                        issuer_id: Some(issuer),
                        renew_by: None,
                    },
                )?;
                hostca::services::audit::record(
                    c,
                    &hostca::services::audit::Event::new(
                        hostca::models::kinds::AuditCategory::Cert,
                        "issue",
                        &name,
                        &serial,
                    )
                    .describe(format!(
                        "certificate {serial} issued to {name} (host ID {host_id})"
                    )),
                )?;
            }
            Ok(())
        })
        .unwrap();
    }
    // Out before the OCSP producer's next round sees the new certificates.
    std::process::exit(0);
}

/// Times `path` over HTTP (median of `times` GETs, each read to its end).
async fn page(client: &reqwest::Client, base: &str, path: &str, times: usize) -> f64 {
    let mut took = Vec::new();
    for _ in 0..times {
        let t = Instant::now();
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let _ = r.bytes().await;
        took.push(t.elapsed());
    }
    median(&took).as_secs_f64() * 1000.0
}

async fn login(base: &str, password: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let csrf = html[at..at + 64].to_string();
    client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "admin"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    client
}

/// The 1,000,000-certificate part: filled by a child process, then measured.
fn at_scale(rt: &tokio::runtime::Runtime, config: &Config, n: usize) {
    let t = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_SCALE_FILL", &config.data_dir)
        .envs(
            config
                .database_url
                .as_ref()
                .map(|u| ("BENCH_SCALE_FILL_URL", u)),
        )
        .status()
        .unwrap();
    assert!(status.success());
    println!(
        "filled {n} certificates of {} hosts and {n} audit events in {:.0} s",
        n / 4,
        t.elapsed().as_secs_f64()
    );
    // Start-up of `hostca serve` on that data directory: from the exec to the first
    // accepted connection (migrations checked, CA keys loaded, the CRL built).
    let mut starts = Vec::new();
    for _ in 0..5 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Instant::now();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"));
        cmd.args([
            "serve",
            "--data-dir",
            config.data_dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some(url) = &config.database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed().as_secs() < 60, "hostca serve did not start");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        starts.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "start-up of hostca serve on that data directory (median of 5): {:.0} ms (range {:.0}–{:.0})",
        median(&starts).as_secs_f64() * 1000.0,
        starts.iter().min().unwrap().as_secs_f64() * 1000.0,
        starts.iter().max().unwrap().as_secs_f64() * 1000.0
    );
    rt.block_on(async {
        let app = Application::build(config).unwrap();
        let base = app.base_url();
        tokio::spawn(app.run_until_stopped());
        let client = login(&base, "bench password 1").await;
        let last = n - 1;
        let host = format!("0190a000-0000-7000-8000-{:012}", last / 4);
        let serial = format!(
            "{:032X}",
            0x5000_0000_0000_0000_0000_0000_0000_0000u128 + last as u128
        );
        let old_serial = format!("{:032X}", 0x5000_0000_0000_0000_0000_0000_0000_0000u128 + 7);
        let name = format!("host-{:06}.scale.example", n / 8);
        for (label, path) in [
            ("overview /", "/".to_string()),
            (
                "certificates, newest first",
                "/security/certificates".into(),
            ),
            (
                "certificates, page 1000",
                "/security/certificates?page=1000".into(),
            ),
            (
                "certificates, sorted by expiry",
                "/security/certificates?sort=expires".into(),
            ),
            (
                "certificates, expiring within 7 days",
                "/security/certificates?expires_within=7".into(),
            ),
            (
                "certificates, search by name",
                format!("/security/certificates?q={name}"),
            ),
            (
                "certificates, search by host ID",
                format!("/security/certificates?q={host}"),
            ),
            (
                "certificates, search by serial (newest)",
                format!("/security/certificates?q={serial}"),
            ),
            (
                "certificates, search by serial (oldest)",
                format!("/security/certificates?q={old_serial}"),
            ),
            (
                "certificate page",
                format!("/security/certificates/{serial}"),
            ),
            ("hosts, newest first", "/security/hosts".into()),
            ("hosts, search by name", format!("/security/hosts?q={name}")),
            ("host page", format!("/security/hosts/{host}")),
            ("audit, newest first", "/security/audit".into()),
            ("audit, page 1000", "/security/audit?page=1000".into()),
            (
                "audit, search by serial",
                format!("/security/audit?q={old_serial}"),
            ),
            ("CRL (GET /crl)", "/crl".into()),
        ] {
            println!(
                "{label:<44} median {:>8.2} ms over HTTP",
                page(&client, &base, &path, 5).await
            );
        }
        for (label, path) in [
            ("certificates CSV export, all", "/security/certificates.csv"),
            ("audit CSV export, all", "/security/audit.csv"),
        ] {
            let t = Instant::now();
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            let first = t.elapsed();
            let body = r.bytes().await.unwrap();
            println!(
                "{label:<44} first byte {:>6.1} ms, all {:>6.0} ms, {:.0} MB",
                first.as_secs_f64() * 1000.0,
                t.elapsed().as_secs_f64() * 1000.0,
                body.len() as f64 / 1e6
            );
        }
    });
}

fn main() {
    if let Some(dir) = std::env::var_os("BENCH_SCALE_FILL") {
        let mut config = Config::new(dir);
        config.admin_password = Some("bench password 1".into());
        config.database_url = std::env::var("BENCH_SCALE_FILL_URL").ok();
        fill(&config, env_or("BENCH_SCALE_CERTS", 1_000_000));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password 1".into());
    config.workers = Some(2);
    let pg_name = format!("hostca_scale_{}", std::process::id());
    let pg_base = std::env::var("BENCH_DATABASE_URL").ok();
    if let Some(base) = &pg_base {
        diesel::PgConnection::establish(base)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {pg_name}"))
            .unwrap();
        config.database_url = Some(format!("{}/{pg_name}", &base[..base.rfind('/').unwrap()]));
    }
    println!(
        "backend: {}",
        if pg_base.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    rt.block_on(async {
        let app = Application::build(&config).unwrap();
        let base = app.base_url();
        let ctx = app.ctx.clone();
        tokio::spawn(app.run_until_stopped());

        // 100,000 tokens, then the list page as a logged-in administrator.
        let t = Instant::now();
        let c2 = ctx.clone();
        tokio::task::spawn_blocking(move || insert_tokens(&c2, hostca::db::now() + chrono::Duration::days(1))).await.unwrap();
        println!("inserted {N} tokens in {:.1} s", t.elapsed().as_secs_f64());
        let client = login(&base, "bench password 1").await;
        for (label, path) in [
            ("token list, newest first", "/security/tokens"),
            ("token list, sorted by name, page 1000", "/security/tokens?sort=name&page=1000"),
            ("token list, search", "/security/tokens?q=bulk-0999"),
            ("token list, state filter", "/security/tokens?state=active"),
        ] {
            println!("{label:<40} median {:>7.2} ms over HTTP", page(&client, &base, path, 60).await);
        }

        // Cleanup of 100,000 expired tokens (one statement, one audit event).
        let c2 = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = hostca::db::get(&c2.pool).unwrap();
            conn.batch_execute("UPDATE tokens SET valid_until = '2001-01-01 00:00:00'").unwrap();
        })
        .await
        .unwrap();
        let c2 = ctx.clone();
        let (n, took) = tokio::task::spawn_blocking(move || {
            let admin = Actor { username: "admin".into(), role: Role::Administrator };
            let t = Instant::now();
            let n = hostca::services::tokens::cleanup(&c2, &admin).unwrap();
            (n, t.elapsed())
        })
        .await
        .unwrap();
        println!("cleanup of {n} expired tokens: {:.0} ms", took.as_secs_f64() * 1000.0);

        // A CRL of 100,000 revoked certificates.
        let c2 = ctx.clone();
        let took = tokio::task::spawn_blocking(move || {
            let mut conn = hostca::db::get(&c2.pool).unwrap();
            let now = hostca::db::now();
            hostca::db::write_tx(&mut conn, |c| {
                let host = hostca::services::hosts::create(c, "crl.bench.example", "bench", now)?;
                for i in 0..N {
                    let serial = format!("{:032X}", 0x4000_0000_0000_0000_0000_0000_0000_0000u128 + i as u128);
                    Certificate::insert(
                        c,
                        &NewCertificate {
                            serial: &serial,
                            host_id: &host.host_id,
                            subject: "CN=crl.bench.example",
                            names: "crl.bench.example",
                            not_before: now,
                            not_after: now + chrono::Duration::days(365),
                            fingerprint_sha256: "",
                            pem: "",
                            token_name: None,
                            created_at: now,
                            issued_via: hostca::models::certificate::IssuedVia::Enrollment,
                            acme_account_id: None,
                            replaces: None,
                            issuer_id: Some(c2.pki.signing().id),
                            renew_by: None,
                        },
                    )?;
                }
                c.batch_execute("UPDATE certificates SET revoked_at = created_at, revocation_reason = 'key_compromise', revoked_by = 'bench'")?;
                Ok(())
            })
            .unwrap();
            let mut times = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                hostca::services::pki::rebuild_crl(&c2).unwrap();
                times.push(t.elapsed());
            }
            median(&times)
        })
        .await
        .unwrap();
        let crl = ctx.pki.crl();
        println!("CRL with {} revoked certificates rebuilt in {:.0} ms (median of 7), {:.1} MB", crl.entries, took.as_secs_f64() * 1000.0, crl.der.len() as f64 / 1e6);
        println!("GET /crl served from memory: median {:.2} ms", page(&client, &base, "/crl", 30).await);
        println!("resident memory of the process (server and client): {:.0} MB", rss_mb());
    });
    let n = env_or("BENCH_SCALE_CERTS", 1_000_000);
    if n > 0 {
        let mut scaled = config.clone();
        scaled.data_dir = dir.path().join("scale");
        if let Some(base) = &pg_base {
            diesel::PgConnection::establish(base)
                .unwrap()
                .batch_execute(&format!("CREATE DATABASE {pg_name}_m"))
                .unwrap();
            scaled.database_url =
                Some(format!("{}/{pg_name}_m", &base[..base.rfind('/').unwrap()]));
        }
        at_scale(&rt, &scaled, n);
    }
    if let Some(base) = pg_base {
        let _ = diesel::PgConnection::establish(&base)
            .unwrap()
            .batch_execute(&format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE); DROP DATABASE IF EXISTS {pg_name}_m WITH (FORCE)"));
    }
}
