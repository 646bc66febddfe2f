//! `hostca backup` and `hostca restore`: a restored server keeps its CA, hosts, tokens,
//! users and audit chain.

use crate::common;

use std::process::Command;

use common::{element_text, openssl_csr, spawn_app, test_config};
use diesel::connection::SimpleConnection;
use diesel::Connection;

fn hostca(args: &[&str], passphrase: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hostca"))
        .args(args)
        .env("BACKUP_PASSPHRASE", passphrase)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_restored_server_keeps_its_ca_hosts_tokens_and_audit_chain() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("kept", "5").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "b", "backed.example.com", &[]);
    let (s, enrolled) = app.enroll("backed.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    // An ACME account bound by the same token, with its certificate.
    let mut acme = crate::acme_client::Acme::at(&app.address, app.client.clone()).await;
    assert_eq!(acme.register(Some(("kept", &value))).await.status, 201);
    acme.issue(&["acme-backed.example.com"]).await.unwrap();
    let ca_before = app.get_html("/ca.pem").await;
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("No backup yet"));

    let data = app.data_dir();
    let out = app.scratch().join("hostca.backup");
    let db_url = app.config.database_url();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &db_url,
            "--passphrase-env",
            "BACKUP_PASSPHRASE",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let a = args(&["--out", out.to_str().unwrap()]);
    let (ok, msg) = hostca(&a.iter().map(String::as_str).collect::<Vec<_>>(), "short");
    assert!(!ok && msg.contains("at least 12"), "{msg}");
    let (ok, msg) = hostca(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        "a long backup passphrase",
    );
    assert!(ok, "{msg}");
    let file = std::fs::read(&out).unwrap();
    assert!(file.starts_with(b"HOSTCA-BACKUP-2"));
    assert!(
        !String::from_utf8_lossy(&file).contains("BEGIN PRIVATE KEY"),
        "the backup is encrypted"
    );
    assert!(!String::from_utf8_lossy(&file).contains("backed.example.com"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let html = app.get_html("/security/settings").await;
    assert!(
        html.contains("The last backup was written"),
        "the checklist sees the backup"
    );

    // Restore: wrong passphrase, a directory in use, then a fresh one.
    let target = app.scratch().join("restored");
    let t = target.to_str().unwrap();
    let (ok, msg) = hostca(
        &[
            "restore",
            "--in",
            out.to_str().unwrap(),
            "--data-dir",
            t,
            "--passphrase-env",
            "BACKUP_PASSPHRASE",
        ],
        "wrong passphrase!!",
    );
    assert!(!ok && msg.contains("passphrase is wrong"), "{msg}");
    let (ok, msg) = hostca(
        &[
            "restore",
            "--in",
            out.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &db_url,
            "--passphrase-env",
            "BACKUP_PASSPHRASE",
        ],
        "a long backup passphrase",
    );
    assert!(!ok && msg.contains("empty data directory"), "{msg}");
    let (ok, msg) = hostca(
        &[
            "restore",
            "--in",
            out.to_str().unwrap(),
            "--data-dir",
            t,
            "--passphrase-env",
            "BACKUP_PASSPHRASE",
        ],
        "a long backup passphrase",
    );
    assert!(ok, "{msg}");

    // The restored installation (on SQLite, whatever the original ran on).
    let mut config = test_config(target.clone(), None);
    config.admin_password = None;
    let restored = hostca::startup::Application::build(&config).expect("the restored data starts");
    assert!(
        !target.join("initial-admin-password").exists(),
        "no new admin was made"
    );
    assert_eq!(restored.ctx.pki.bundle_pem(), ca_before, "the same CA");
    let base = restored.base_url();
    let ctx = restored.ctx.clone();
    tokio::spawn(restored.run_until_stopped());
    let b = common::Browser {
        address: base,
        client: common::client(),
    };
    assert_eq!(
        b.login_as("admin", common::ADMIN_PASSWORD)
            .await
            .status()
            .as_u16(),
        303,
        "the same users"
    );
    let html = b
        .post("/security/tokens/kept/show", &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        element_text(&html, "token-value").unwrap(),
        value,
        "token values decrypt with the restored key"
    );
    let html = b
        .get_html(&format!(
            "/security/hosts/{}",
            enrolled["host_id"].as_str().unwrap()
        ))
        .await;
    assert!(
        html.contains("backed.example.com") && html.contains(enrolled["serial"].as_str().unwrap())
    );
    assert!(b
        .get_html("/security/audit")
        .await
        .contains("The audit chain verifies"));
    // The ACME account works on the restored server: its key still signs as the account.
    let mut again = crate::acme_client::Acme::at(&b.address, b.client.clone()).await;
    again.key = acme.key;
    let r = again.register(None).await;
    assert_eq!(
        r.status, 200,
        "the restored server knows the account: {}",
        r.body
    );
    again.issue(&["acme-backed.example.com"]).await.unwrap();
    // New rows continue after the restored ones.
    let r = b
        .post(
            "/security/tokens",
            &[("name", "after-restore"), ("max_uses", "1")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let mut conn = hostca::db::get(&ctx.pool).unwrap();
    assert!(matches!(
        hostca::services::audit::verify_chain(&mut conn).unwrap(),
        hostca::services::audit::ChainStatus::Intact { .. }
    ));

    // And into PostgreSQL, when the suite runs there.
    if let (Some(url), Some((base_url, name))) = common::fresh_database() {
        let pg_dir = app.scratch().join("restored-pg");
        let (ok, msg) = hostca(
            &[
                "restore",
                "--in",
                out.to_str().unwrap(),
                "--data-dir",
                pg_dir.to_str().unwrap(),
                "--database-url",
                &url,
                "--passphrase-env",
                "BACKUP_PASSPHRASE",
            ],
            "a long backup passphrase",
        );
        assert!(ok, "{msg}");
        let mut config = test_config(pg_dir, Some(url));
        config.admin_password = None;
        let restored = hostca::startup::Application::build(&config)
            .expect("the restored PostgreSQL data starts");
        let mut conn = hostca::db::get(&restored.ctx.pool).unwrap();
        assert!(matches!(
            hostca::services::audit::verify_chain(&mut conn).unwrap(),
            hostca::services::audit::ChainStatus::Intact { .. }
        ));
        drop(conn);
        drop(restored);
        if let Ok(mut c) = diesel::PgConnection::establish(&base_url) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A backup opened, changed by `edit`, and sealed again with the same passphrase: what
/// someone who knows the passphrase could hand to restore.
fn tampered(file: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    use hostca::services::backup;
    let plain = backup::open(backup::MAGIC, file, "a long backup passphrase", "backup")
        .unwrap()
        .unwrap();
    let mut contents: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    edit(&mut contents);
    backup::seal(
        backup::MAGIC,
        &serde_json::to_vec(&contents).unwrap(),
        "a long backup passphrase",
    )
    .unwrap()
}

#[tokio::test]
async fn restore_refuses_a_backup_that_would_need_a_new_ca() {
    let app = spawn_app().await;
    let out = app.scratch().join("full.backup");
    let pool = app.ctx.pool.clone();
    let data = app.data_dir();
    let o = out.clone();
    let summary = tokio::task::spawn_blocking(move || {
        hostca::services::backup::backup(&pool, &data, &o, "a long backup passphrase")
    })
    .await
    .unwrap()
    .unwrap();
    assert!(summary.contains("2 CAs"), "{summary}");
    let file = std::fs::read(&out).unwrap();
    let attempts = [
        (
            "no key files",
            tampered(&file, |c| {
                let files = c["files"].as_array_mut().unwrap();
                files.retain(|f| !f[0].as_str().unwrap().starts_with("ca-"));
            }),
            "does not hold it",
        ),
        (
            "no CA at all",
            tampered(&file, |c| {
                c["issuers"] = serde_json::json!([]);
                let files = c["files"].as_array_mut().unwrap();
                files.retain(|f| !f[0].as_str().unwrap().starts_with("ca"));
            }),
            "holds no CA",
        ),
    ];
    for (what, bytes, expected) in attempts {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.backup");
        std::fs::write(&input, bytes).unwrap();
        let (url, pg) = common::fresh_database();
        let target = dir.path().join("restored");
        let url = url.unwrap_or_else(|| target.join("hostca.sqlite3").display().to_string());
        let err =
            hostca::services::backup::restore(&input, &target, &url, "a long backup passphrase")
                .expect_err(what);
        assert!(err.to_string().contains(expected), "{what}: {err}");
        // Nothing was started in its place: no CA key was written.
        let keys = std::fs::read_dir(&target)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("ca"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(keys, 0, "{what}");
        if let Some((base, name)) = pg {
            let mut c = diesel::PgConnection::establish(&base).unwrap();
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
