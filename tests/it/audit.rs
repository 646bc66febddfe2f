//! The audit trail as an intruder with write access to the database meets it: a keyed
//! chain, an append-only sink that shows removed rows (the last ones too), aggregated
//! refusals that never name a claimed user as the actor, a retention floor, and backups
//! that say how their key was derived.

use crate::common;

use std::process::Command;

use common::{element_text, spawn_app, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, settings};

fn hostca(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostca"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `hostca audit verify` on the app's data: (exit code, output).
fn verify(app: &TestApp) -> (i32, String) {
    let data = app.data_dir();
    let url = app.config.database_url();
    hostca(
        &[
            "audit",
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &url,
        ],
        &[],
    )
}

/// A few events: tokens created and deleted.
async fn some_events(app: &TestApp, n: usize) {
    let prefix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    for i in 0..n {
        let r = app
            .create_token(&format!("t{prefix}{i}"), "1", "1d", "")
            .await;
        assert_eq!(r.status().as_u16(), 303);
    }
}

fn ids(app: &TestApp) -> Vec<i64> {
    audit_events::table
        .order(audit_events::id.asc())
        .select(audit_events::id)
        .load(&mut *app.conn())
        .unwrap()
}

#[tokio::test]
async fn an_edited_description_is_reported_by_verify_and_by_the_audit_page() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 4).await;
    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit chain OK"), "{out}");

    let all = ids(&app);
    let victim = all[all.len() / 2];
    diesel::update(audit_events::table.find(victim))
        .set(audit_events::description.eq("nothing happened here"))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("EDITED: events {victim}")), "{out}");
    let html = app.get_html("/security/audit?verify=full").await;
    assert!(
        html.contains(&format!("BROKEN at event {victim}")),
        "the audit page reports the edited event"
    );
    // Pointing the settings at another key does not make the page trust the chain.
    diesel::update(settings::table)
        .set(settings::audit_key_id.eq("0123456789abcdef0123456789abcdef"))
        .execute(&mut *app.conn())
        .unwrap();
    let html = app.get_html("/security/audit?verify=full").await;
    assert!(html.contains("chain-broken"), "{html}");
}

#[tokio::test]
async fn a_forged_hash_without_the_key_is_reported() {
    // The intruder recomputes the old, unkeyed hash of the row they changed, and marks it
    // as an event of the old chain: neither verifies without the key.
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 3).await;
    let all = ids(&app);
    let victim = all[all.len() - 2];
    diesel::update(audit_events::table.find(victim))
        .set((
            audit_events::actor.eq("someone else"),
            audit_events::chain.eq(1),
        ))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&victim.to_string()), "{out}");
}

#[tokio::test]
async fn a_deleted_middle_row_is_reported() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 4).await;
    let all = ids(&app);
    let victim = all[all.len() / 2];
    diesel::delete(audit_events::table.find(victim))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("DELETED: events {victim}")), "{out}");
    let next = all[all.iter().position(|i| *i == victim).unwrap() + 1];
    assert!(
        out.contains(&format!("BROKEN CHAIN before events {next}")),
        "{out}"
    );
}

#[tokio::test]
async fn deleted_last_rows_are_reported_through_the_sink() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 4).await;
    let sink = app.data_dir().join("audit.log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sink).unwrap().permissions().mode() & 0o777,
        0o600,
        "the audit log is private"
    );
    let all = ids(&app);
    let last_two = &all[all.len() - 2..];
    diesel::delete(audit_events::table.filter(audit_events::id.ge(last_two[0])))
        .execute(&mut *app.conn())
        .unwrap();
    // The chain alone cannot see it: what is left still links up.
    assert!(matches!(
        hostca::services::audit::verify_chain(&mut app.conn()).unwrap(),
        hostca::services::audit::ChainStatus::Intact { .. }
    ));
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("DELETED: events {}, {}", last_two[0], last_two[1])),
        "{out}"
    );
    // A log given explicitly that does not exist is an error, not a pass.
    let data = app.data_dir();
    let url = app.config.database_url();
    let (code, out) = hostca(
        &[
            "audit",
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &url,
            "--audit-log",
            "/nonexistent/audit.log",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn the_audit_key_never_appears_in_the_database() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 2).await;
    let path = app.data_dir().join("audit.key");
    let key = std::fs::read(&path).unwrap();
    assert_eq!(key.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let hex_key = hex::encode(&key);
    let url = app.config.database_url();
    if hostca::db::Backend::of(&url) == hostca::db::Backend::Sqlite {
        for suffix in ["", "-wal"] {
            let Ok(bytes) = std::fs::read(format!("{url}{suffix}")) else {
                continue;
            };
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_slice()),
                "the raw key is in the database file"
            );
            assert!(
                !String::from_utf8_lossy(&bytes)
                    .to_ascii_lowercase()
                    .contains(&hex_key),
                "the key's hex is in the database file"
            );
        }
    } else {
        #[derive(QueryableByName)]
        struct Dump {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            dump: Option<String>,
        }
        for table in [
            "users",
            "hosts",
            "host_mappings",
            "tokens",
            "certificates",
            "audit_events",
            "settings",
            "api_keys",
            "login_attempts",
        ] {
            let rows: Vec<Dump> = diesel::sql_query(format!(
                "SELECT string_agg(row_to_json(t)::text, E'\\n') AS dump FROM {table} t"
            ))
            .load(&mut *app.conn())
            .unwrap();
            let text = rows
                .into_iter()
                .filter_map(|d| d.dump)
                .collect::<String>()
                .to_ascii_lowercase();
            assert!(!text.contains(&hex_key), "the key is in {table}");
        }
    }
}

/// The pre-keyed chain's hash, as hostca computed it before the key.
fn legacy_hash(prev: &str, e: &hostca::models::audit_event::AuditEvent) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        prev,
        &hostca::services::audit::format_at(e.at),
        e.category.key(),
        &e.action,
        &e.actor,
        &e.target,
        &e.description,
        &e.reason,
        e.outcome.key(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

#[tokio::test]
async fn an_upgraded_database_is_rekeyed_with_an_event_and_still_verifies() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 3).await;
    // Turn the data into what an installation from before the key had: the SHA-256
    // chain, no key, no key id, no audit log.
    {
        let mut conn = app.conn();
        let events: Vec<hostca::models::audit_event::AuditEvent> = audit_events::table
            .order(audit_events::id.asc())
            .load(&mut *conn)
            .unwrap();
        let mut prev = hostca::services::audit::GENESIS.to_string();
        for e in &events {
            let hash = legacy_hash(&prev, e);
            diesel::update(audit_events::table.find(e.id))
                .set((
                    audit_events::chain.eq(1),
                    audit_events::prev_hash.eq(&prev),
                    audit_events::hash.eq(&hash),
                ))
                .execute(&mut *conn)
                .unwrap();
            prev = hash;
        }
        diesel::update(settings::table.find(1i64))
            .set((
                settings::audit_key_id.eq(""),
                settings::audit_legacy_through.eq(0i64),
                settings::audit_seal.eq(""),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let last_legacy = *ids(&app).last().unwrap();
    std::fs::remove_file(app.data_dir().join("audit.key")).unwrap();
    std::fs::remove_file(app.data_dir().join("audit.log")).unwrap();
    let app = app.restart().await;
    assert!(app.data_dir().join("audit.key").exists(), "a new key");
    let rekeyed: Vec<(i64, String, i32)> = audit_events::table
        .filter(audit_events::action.eq("audit_chain_rekeyed"))
        .select((
            audit_events::id,
            audit_events::category,
            audit_events::chain,
        ))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(rekeyed.len(), 1, "the switch is one event");
    assert_eq!(rekeyed[0].0, last_legacy + 1);
    assert_eq!(rekeyed[0].1, "SEC_CONFIG");
    assert_eq!(rekeyed[0].2, 2);
    app.login().await;
    some_events(&app, 1).await;
    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
    // An old event changed after the switch is still caught by the old chain.
    diesel::update(audit_events::table.find(last_legacy - 1))
        .set(audit_events::description.eq("rewritten"))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("EDITED: events {}", last_legacy - 1)),
        "{out}"
    );
    // And moving the end of the old chain by hand breaks the seal.
    diesel::update(audit_events::table.find(last_legacy - 1))
        .set(audit_events::description.eq(""))
        .execute(&mut *app.conn())
        .unwrap();
    diesel::update(settings::table.find(1i64))
        .set(settings::audit_legacy_through.eq(last_legacy + 100))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SETTINGS CHANGED"), "{out}");
}

/// Waits for the next minute unless at most `by` seconds of this one have passed: what
/// follows is aggregated per minute and must not straddle two.
async fn early_in_a_minute(by: i64) {
    let second = chrono::Utc::now().timestamp() % 60;
    if second > by {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
}

#[tokio::test]
async fn fifty_failed_logins_from_one_address_are_one_aggregated_event() {
    let app = spawn_app().await;
    early_in_a_minute(20).await;
    let b = app.new_browser();
    for _ in 0..50 {
        let r = b.login_as("admin", "not the password").await;
        assert!(
            [200, 401, 422, 429].contains(&r.status().as_u16()),
            "{}",
            r.status()
        );
    }
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || hostca::services::audit::flush_refusals(&ctx))
        .await
        .unwrap()
        .unwrap();
    let rows: Vec<(String, String, i64, String)> = audit_events::table
        .filter(audit_events::category.eq("LOGIN"))
        .filter(audit_events::outcome.eq("failure"))
        .select((
            audit_events::actor,
            audit_events::target,
            audit_events::occurrences,
            audit_events::description,
        ))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, target, count, description) = &rows[0];
    assert_eq!(actor, "host:127.0.0.1", "the source is the actor");
    assert_eq!(target, "admin", "the claimed name is the target");
    assert_eq!(*count, 50);
    assert!(description.contains("50 refusals"), "{description}");
    let as_user: i64 = audit_events::table
        .filter(audit_events::actor.eq("admin"))
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(as_user, 0, "an unauthenticated requester is never a user");
    // The aggregated event is on the keyed chain and in the sink like any other.
    let (code, out) = verify(&app);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn refused_certificate_requests_name_the_source_not_the_claimed_host() {
    let app = spawn_app().await;
    app.set_security_level("very_high");
    early_in_a_minute(45).await;
    for _ in 0..3 {
        let (s, _) = app
            .enroll(
                "claimed.example.com",
                &common::quick_csr("claimed.example.com"),
                None,
            )
            .await;
        assert!((400..500).contains(&s), "{s}");
    }
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/certificates"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || hostca::services::audit::flush_refusals(&ctx))
        .await
        .unwrap()
        .unwrap();
    let rows: Vec<(String, String, i64, i64)> = audit_events::table
        .filter(audit_events::category.eq("CERT"))
        .filter(audit_events::outcome.eq("failure"))
        .select((
            audit_events::actor,
            audit_events::target,
            audit_events::occurrences,
            audit_events::id,
        ))
        .load(&mut *app.conn())
        .unwrap();
    // One source, one action, one minute: one event for the four refusals, the claimed
    // name (and the unreadable request's "unknown") as the target.
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, target, count, id) = &rows[0];
    assert_eq!(actor, "host:127.0.0.1");
    assert_eq!(*count, 4);
    assert!(target.contains("claimed.example.com"), "{target}");
    app.login().await;
    let html = app.get_html(&format!("/security/audit/{id}")).await;
    let shown = element_text(&html, "occurrences").unwrap_or_default();
    assert_eq!(shown, "4");
}

fn settings_form(retention: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("security_level", "high"),
        ("auto_map_host_names", "on"),
        ("certificate_validity_days", "365"),
        ("auto_reissue_minutes", "2880"),
        ("audit_retention_days", retention),
        ("reason", "audit test"),
    ]
}

fn retention(app: &TestApp) -> i32 {
    settings::table
        .find(1i64)
        .select(settings::audit_retention_days)
        .first(&mut *app.conn())
        .unwrap()
}

#[tokio::test]
async fn lowering_retention_needs_an_administrator_and_never_goes_below_30_days() {
    let app = spawn_app().await;
    app.login().await;
    assert_eq!(retention(&app), 90);
    let sam = app.user(common::Role::SecurityAdmin, "sam").await;
    // A security administrator may keep events longer, not shorter.
    let r = sam.post("/security/settings", &settings_form("60")).await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(retention(&app), 90);
    let denied: i64 = audit_events::table
        .filter(audit_events::actor.eq("sam"))
        .filter(audit_events::target.eq("audit_retention_days"))
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(denied, 1, "the refusal is audited");
    let r = sam.post("/security/settings", &settings_form("120")).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(retention(&app), 120);
    // Below the floor: a field error, for an administrator too.
    let r = app.post("/security/settings", &settings_form("29")).await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    let msg = element_text(&html, "audit_retention_days-error").unwrap_or_default();
    assert!(msg.contains("30"), "{msg}");
    assert_eq!(retention(&app), 120);
    let r = app.post("/security/settings", &settings_form("30")).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(retention(&app), 30);
    let changes: Vec<(String, String)> = audit_events::table
        .filter(audit_events::action.eq("change_setting"))
        .filter(audit_events::target.eq("audit_retention_days"))
        .filter(audit_events::outcome.eq("success"))
        .order(audit_events::id.asc())
        .select((audit_events::actor, audit_events::description))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        changes,
        vec![
            (
                "sam".to_string(),
                "audit_retention_days changed from 90 to 120".to_string()
            ),
            (
                "admin".to_string(),
                "audit_retention_days changed from 120 to 30".to_string()
            ),
        ]
    );
}

/// Restores `file` into a new data directory (and a fresh PostgreSQL database when the
/// suite runs there); returns the exit code and output.
fn restore(app: &TestApp, file: &std::path::Path, to: &str) -> (i32, String) {
    let dir = app.scratch().join(to);
    let (url, pg) = common::fresh_database();
    let mut args = vec![
        "restore".to_string(),
        "--in".into(),
        file.display().to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--passphrase-env".into(),
        "BACKUP_PASSPHRASE".into(),
    ];
    if let Some(u) = &url {
        args.push("--database-url".into());
        args.push(u.clone());
    }
    let result = hostca(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("BACKUP_PASSPHRASE", "a long backup passphrase")],
    );
    if result.0 == 0 {
        assert!(dir.join("token.key").exists());
    }
    if let Some((base, name)) = pg {
        use diesel::connection::SimpleConnection;
        if let Ok(mut c) = diesel::PgConnection::establish(&base) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
    result
}

#[tokio::test]
async fn a_backup_records_its_kdf_and_old_format_backups_still_restore() {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 2).await;
    let out = app.scratch().join("hostca.backup");
    let data = app.data_dir();
    let url = app.config.database_url();
    let (code, msg) = hostca(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &url,
            "--passphrase-env",
            "BACKUP_PASSPHRASE",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("BACKUP_PASSPHRASE", "a long backup passphrase")],
    );
    assert_eq!(code, 0, "{msg}");
    let file = std::fs::read(&out).unwrap();
    let header = hostca::services::backup::kdf_header(&file).expect("a KDF header");
    assert_eq!(header.kdf, "argon2id");
    assert!(
        header.m >= 19_456 && header.t >= 2 && header.p >= 1,
        "{header:?}"
    );
    assert!(hex::decode(&header.salt).unwrap().len() >= 16);
    let (code, msg) = restore(&app, &out, "restored");
    assert_eq!(code, 0, "{msg}");
    assert!(
        app.scratch().join("restored/audit.key").exists(),
        "the audit key is restored"
    );

    // A tampered header (weaker parameters) does not decrypt.
    let text = String::from_utf8_lossy(&file).into_owned();
    let weakened_at = file.iter().position(|b| *b == b'\n').unwrap() + 1;
    let line_end = weakened_at
        + file[weakened_at..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap();
    let mut weak_header = header.clone();
    weak_header.t = 1;
    let mut tampered = file[..weakened_at].to_vec();
    tampered.extend_from_slice(&serde_json::to_vec(&weak_header).unwrap());
    tampered.extend_from_slice(&file[line_end..]);
    let bad = app.scratch().join("tampered.backup");
    std::fs::write(&bad, &tampered).unwrap();
    let (code, msg) = restore(&app, &bad, "tampered");
    assert_ne!(code, 0, "{msg}");
    assert!(msg.contains("passphrase is wrong"), "{msg}");
    drop(text);

    // The first format (fixed argon2 defaults, salt and nonce after the magic line): open
    // this backup and seal it again that way.
    let header_bytes = &file[weakened_at..line_end];
    let sealed = &file[line_end + 1..];
    let salt = hex::decode(&header.salt).unwrap();
    let nonce = hex::decode(&header.nonce).unwrap();
    let params = argon2::Params::new(header.m, header.t, header.p, Some(32)).unwrap();
    let mut key = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(b"a long backup passphrase", &salt, &mut key)
        .unwrap();
    let plain = chacha20poly1305::ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key))
        .decrypt(
            chacha20poly1305::Nonce::from_slice(&nonce),
            Payload {
                msg: sealed,
                aad: header_bytes,
            },
        )
        .unwrap();
    let mut old_key = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(b"a long backup passphrase", &salt, &mut old_key)
        .unwrap();
    let old_sealed =
        chacha20poly1305::ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&old_key))
            .encrypt(
                chacha20poly1305::Nonce::from_slice(&nonce),
                plain.as_slice(),
            )
            .unwrap();
    let mut old = b"HOSTCA-BACKUP-1\n".to_vec();
    old.extend_from_slice(&salt);
    old.extend_from_slice(&nonce);
    old.extend_from_slice(&old_sealed);
    let old_file = app.scratch().join("old.backup");
    std::fs::write(&old_file, &old).unwrap();
    let (code, msg) = restore(&app, &old_file, "restored-old");
    assert_eq!(code, 0, "{msg}");
}

#[tokio::test]
async fn retention_is_not_reported_as_deletion_and_keeps_at_least_30_days() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 4).await;
    let all = ids(&app);
    let (old, recent) = (all[1], all[2]);
    // A retention of one day, set by hand: the floor still keeps 30 days.
    diesel::update(settings::table)
        .set(settings::audit_retention_days.eq(1))
        .execute(&mut *app.conn())
        .unwrap();
    // Editing `at` breaks those rows' hashes: they are removed, so it does not matter.
    diesel::update(audit_events::table.filter(audit_events::id.le(old)))
        .set(audit_events::at.eq(hostca::db::now() - chrono::Duration::days(31)))
        .execute(&mut *app.conn())
        .unwrap();
    diesel::update(audit_events::table.find(recent))
        .set(audit_events::at.eq(hostca::db::now() - chrono::Duration::days(3)))
        .execute(&mut *app.conn())
        .unwrap();
    let removed = hostca::services::audit::apply_retention(&mut app.conn()).unwrap();
    assert_eq!(
        removed as i64,
        all.iter().filter(|i| **i <= old).count() as i64
    );
    assert!(
        audit_events::table
            .find(recent)
            .count()
            .get_result::<i64>(&mut *app.conn())
            .unwrap()
            == 1,
        "a 3-day-old event stays"
    );
    // Put the recent row back as it was, so that only retention has touched the table.
    let logged: Vec<hostca::models::audit_event::AuditEvent> =
        std::fs::read_to_string(app.data_dir().join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let original = logged.iter().find(|e| e.id == recent).unwrap();
    diesel::update(audit_events::table.find(recent))
        .set(audit_events::at.eq(original.at))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(
        code, 0,
        "events removed by retention are not deletions: {out}"
    );
    // Moving the anchor by hand (to hide a removal as retention) breaks the seal.
    diesel::update(settings::table)
        .set(settings::audit_anchor_id.eq(recent))
        .execute(&mut *app.conn())
        .unwrap();
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SETTINGS CHANGED"), "{out}");
}

#[tokio::test]
async fn a_server_with_another_audit_key_refuses_to_start() {
    let app = spawn_app().await;
    app.login().await;
    some_events(&app, 1).await;
    let path = app.data_dir().join("audit.key");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, [7u8; 32]).unwrap();
    let err = hostca::startup::Application::build(&app.config)
        .err()
        .expect("a server whose audit.key does not match the database does not start")
        .to_string();
    assert!(err.contains("another audit.key"), "{err}");
    // Emptying the key id by hand does not get a new key accepted either.
    diesel::update(settings::table)
        .set(settings::audit_key_id.eq(""))
        .execute(&mut *app.conn())
        .unwrap();
    let err = hostca::startup::Application::build(&app.config)
        .err()
        .expect("a keyed chain whose key id was removed is not keyed again")
        .to_string();
    assert!(err.contains("settings row was edited"), "{err}");
}

#[tokio::test]
async fn serve_appends_to_the_audit_log_it_is_given_and_verify_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let siem = dir.path().join("siem.log");
    let (url, pg) = common::fresh_database();
    let port = common::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostca"));
    cmd.args([
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--workers",
        "1",
        "--audit-log",
        siem.to_str().unwrap(),
    ])
    .env("HOSTCA_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
    .env("RUST_LOG", "error")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    if let Some(u) = &url {
        cmd.args(["--database-url", u]);
    }
    let server = common::ServerProcess(cmd.spawn().unwrap());
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "hostca serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let (_c, _csrf) = common::admin_client(&base).await;
    drop(server);
    let log = std::fs::read_to_string(&siem).unwrap();
    assert!(
        !data.join("audit.log").exists(),
        "the events went to the given file"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|e| e["action"] == "create_ca"), "{log}");
    assert!(
        lines
            .iter()
            .any(|e| e["action"] == "login" && e["outcome"] == "success"),
        "{log}"
    );
    assert!(lines
        .iter()
        .all(|e| e["hash"].as_str().unwrap().len() == 64));
    let db_url = url.unwrap_or_else(|| data.join("hostca.sqlite3").display().to_string());
    let args = |log: &str| {
        vec![
            "audit".to_string(),
            "verify".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--database-url".into(),
            db_url.clone(),
            "--audit-log".into(),
            log.to_string(),
        ]
    };
    let a = args(siem.to_str().unwrap());
    let (code, out) = hostca(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("match the audit log"), "{out}");
    // A log with a line changed: the event is reported as edited.
    let ca_event = lines.iter().find(|e| e["action"] == "create_ca").unwrap()["id"]
        .as_i64()
        .unwrap();
    let forged = log.replacen("Root CA #1 created", "nothing created", 1);
    let forged_path = dir.path().join("forged.log");
    std::fs::write(&forged_path, forged).unwrap();
    let a = args(forged_path.to_str().unwrap());
    let (code, out) = hostca(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("EDITED: events {ca_event}")), "{out}");
    assert!(
        !out.contains("BROKEN"),
        "the database itself is intact: {out}"
    );
    if let Some((base, name)) = pg {
        use diesel::connection::SimpleConnection;
        if let Ok(mut c) = diesel::PgConnection::establish(&base) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A row edited by hand to hold a value no version of hostca writes (an intruder's edit, or
/// a newer version's value) is reported by name, on the page and in the API, with the
/// server still serving; the row reads again once corrected.
#[tokio::test]
async fn a_row_edited_to_an_unknown_value_gives_a_clear_error_not_a_crash() {
    let app = spawn_app().await;
    app.login().await;
    let html = app
        .post("/account/api-keys", &[("name", "edited-rows")])
        .await
        .text()
        .await
        .unwrap();
    let key = element_text(&html, "api-key-value").expect("the new key is shown once");
    some_events(&app, 1).await;
    let id = *ids(&app).last().unwrap();
    let category: String = audit_events::table
        .find(id)
        .select(diesel::dsl::sql::<diesel::sql_types::Text>("category"))
        .first(&mut *app.conn())
        .unwrap();
    let set_category = |value: &str| {
        diesel::sql_query(format!(
            "UPDATE audit_events SET category = '{value}' WHERE id = {id}"
        ))
        .execute(&mut *app.conn())
        .unwrap();
    };
    set_category("EVIL<b>");

    let r = app.get("/security/audit").await;
    assert_eq!(r.status().as_u16(), 500);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("unknown audit category") && page.contains("EVIL"),
        "{page}"
    );
    assert!(!page.contains("EVIL<b>"), "the value is escaped");
    // Verification reads the stored texts: it names the edited event, where it is.
    let (code, out) = verify(&app);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("EDITED: events {id}")), "{out}");

    let r = reqwest::Client::new()
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "stored_value_unknown");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("unknown audit category 'EVIL<b>' (expected one of: TOKEN, CERT"),
        "{message}"
    );

    // Other pages still work, and the corrected row reads again.
    assert_eq!(app.get("/security/tokens").await.status().as_u16(), 200);
    set_category(&category);
    assert_eq!(app.get("/security/audit").await.status().as_u16(), 200);

    // A user row with an unknown role: that user's requests get the same clear error.
    diesel::sql_query("UPDATE users SET role = 'superuser' WHERE username = 'admin'")
        .execute(&mut *app.conn())
        .unwrap();
    let r = app.get("/security/tokens").await;
    assert_eq!(r.status().as_u16(), 500);
    let page = r.text().await.unwrap();
    assert!(page.contains("unknown role"), "{page}");
    assert!(page.contains("superuser"), "{page}");
}
