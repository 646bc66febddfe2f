//! Scale: the token list page with 100,000 tokens, cleanup of 100,000 expired tokens, a
//! CRL of 100,000 revoked certificates, and the server's memory.
//!
//!     cargo bench --bench scale
//!
//! BENCH_DATABASE_URL=postgres://... measures on PostgreSQL instead of SQLite.

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
use support::median;

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

fn main() {
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
        let client = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let html = client.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let at = html.find("name=\"csrf_token\" value=\"").unwrap() + 25;
        let csrf = &html[at..at + 64];
        client.post(format!("{base}/login")).form(&[("csrf_token", csrf), ("username", "admin"), ("password", "bench password 1")]).send().await.unwrap();
        for (label, path) in [
            ("token list, newest first", "/security/tokens"),
            ("token list, sorted by name, page 1000", "/security/tokens?sort=name&page=1000"),
            ("token list, search", "/security/tokens?q=bulk-0999"),
            ("token list, state filter", "/security/tokens?state=active"),
        ] {
            let mut times = Vec::new();
            for _ in 0..60 {
                let t = Instant::now();
                let r = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let _ = r.bytes().await;
                times.push(t.elapsed());
            }
            println!("{label:<40} median {:>7.2} ms over HTTP", median(&times).as_secs_f64() * 1000.0);
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
        let mut times = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            let r = client.get(format!("{base}/crl")).send().await.unwrap();
            let _ = r.bytes().await;
            times.push(t.elapsed());
        }
        println!("GET /crl served from memory: median {:.2} ms", median(&times).as_secs_f64() * 1000.0);
        println!("resident memory of the process (server and client): {:.0} MB", rss_mb());
    });
    if let Some(base) = pg_base {
        let _ = diesel::PgConnection::establish(&base)
            .unwrap()
            .batch_execute(&format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"));
    }
}
