//! Backup and restore of a whole installation: every table and the data directory's
//! keys and CA, in one file encrypted with a passphrase (argon2id, ChaCha20-Poly1305).
//! The backup is logical (rows as JSON), so it restores into SQLite or PostgreSQL alike.

use std::path::Path;

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::audit::{self, Event};
use crate::db::schema::*;
use crate::db::{self, DbConn, Pool};
use crate::error::AppError;
use crate::models::api_key::ApiKey;
use crate::models::audit_event::AuditEvent;
use crate::models::certificate::Certificate;
use crate::models::host::Host;
use crate::models::host_mapping::HostMapping;
use crate::models::settings::Settings;
use crate::models::token::Token;
use crate::models::user::User;

const MAGIC: &[u8] = b"HOSTCA-BACKUP-1\n";
/// The data directory's files a restored server needs.
pub const FILES: [&str; 4] = ["session.key", "token.key", "ca.pem", "ca.key"];
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Serialize, Deserialize)]
struct Contents {
    created_at: String,
    /// name -> hex of the file's bytes
    files: Vec<(String, String)>,
    users: Vec<User>,
    hosts: Vec<Host>,
    host_mappings: Vec<HostMapping>,
    tokens: Vec<Token>,
    certificates: Vec<Certificate>,
    audit_events: Vec<AuditEvent>,
    settings: Vec<Settings>,
    api_keys: Vec<ApiKey>,
}

fn cipher(passphrase: &str, salt: &[u8]) -> Result<ChaCha20Poly1305, AppError> {
    let mut key = [0u8; 32];
    Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| AppError::Internal(format!("key derivation: {e}")))?;
    Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
}

/// Reads every table in one consistent snapshot.
fn read_all(conn: &mut DbConn) -> Result<Contents, AppError> {
    conn.transaction::<_, AppError, _>(|c| {
        if let DbConn::Pg(_) = c {
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
        }
        Ok(Contents {
            created_at: audit::format_at(db::now()),
            files: Vec::new(),
            users: users::table.order(users::id).load(c)?,
            hosts: hosts::table.order(hosts::id).load(c)?,
            host_mappings: host_mappings::table.order(host_mappings::id).load(c)?,
            tokens: tokens::table.order(tokens::id).load(c)?,
            certificates: certificates::table.order(certificates::id).load(c)?,
            audit_events: audit_events::table.order(audit_events::id).load(c)?,
            settings: settings::table.load(c)?,
            api_keys: api_keys::table.order(api_keys::id).load(c)?,
        })
    })
}

/// Writes an encrypted backup of the installation to `out`. Returns a summary line.
pub fn backup(
    pool: &Pool,
    data_dir: &Path,
    out: &Path,
    passphrase: &str,
) -> Result<String, AppError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(AppError::BadRequest(format!(
            "the passphrase must have at least {MIN_PASSPHRASE} characters"
        )));
    }
    let mut conn = db::get(pool)?;
    let mut contents = read_all(&mut conn)?;
    for name in FILES {
        let path = data_dir.join(name);
        let bytes = std::fs::read(&path)
            .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
        contents.files.push((name.to_string(), hex::encode(bytes)));
    }
    let plain =
        serde_json::to_vec(&contents).map_err(|e| AppError::Internal(format!("backup: {e}")))?;
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::fill(&mut salt[..]);
    rand::fill(&mut nonce[..]);
    let sealed = cipher(passphrase, &salt)?
        .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| AppError::Internal("backup encryption failed".into()))?;
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&salt);
    file.extend_from_slice(&nonce);
    file.extend_from_slice(&sealed);
    let _ = std::fs::remove_file(out);
    crate::secrets::write_private_file(out, &file)
        .map_err(|e| AppError::BadRequest(format!("cannot write {}: {e}", out.display())))?;
    let summary = format!(
        "{} users, {} hosts, {} tokens, {} certificates, {} audit events",
        contents.users.len(),
        contents.hosts.len(),
        contents.tokens.len(),
        contents.certificates.len(),
        contents.audit_events.len()
    );
    audit::record_alone(
        &mut conn,
        &Event::new(
            audit::SEC_CONFIG,
            "backup",
            "console",
            &out.display().to_string(),
        )
        .describe(format!("encrypted backup written: {summary}")),
    )?;
    Ok(summary)
}

/// Restores a backup into an empty data directory and an empty database.
pub fn restore(
    input: &Path,
    data_dir: &Path,
    database_url: &str,
    passphrase: &str,
) -> Result<String, AppError> {
    let file = std::fs::read(input)
        .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", input.display())))?;
    if !file.starts_with(MAGIC) || file.len() < MAGIC.len() + 28 {
        return Err(AppError::BadRequest(format!(
            "{} is not a hostca backup",
            input.display()
        )));
    }
    let rest = &file[MAGIC.len()..];
    let (salt, rest) = rest.split_at(16);
    let (nonce, sealed) = rest.split_at(12);
    let plain = cipher(passphrase, salt)?
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| {
            AppError::BadRequest("the passphrase is wrong, or the backup is damaged".into())
        })?;
    let contents: Contents = serde_json::from_slice(&plain)
        .map_err(|e| AppError::BadRequest(format!("the backup cannot be read: {e}")))?;
    for name in FILES.iter().copied().chain(["hostca.sqlite3"]) {
        if data_dir.join(name).exists() {
            return Err(AppError::Conflict(format!(
                "{} already holds {name}: restore into a new, empty data directory",
                data_dir.display()
            )));
        }
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| AppError::BadRequest(format!("cannot create {}: {e}", data_dir.display())))?;
    let pool = db::connect(database_url, 2)?;
    let mut conn = db::get(&pool)?;
    if User::count(&mut conn)? > 0 {
        return Err(AppError::Conflict(
            "the database already has users: restore into an empty database".into(),
        ));
    }
    for (name, hex_bytes) in &contents.files {
        if !FILES.contains(&name.as_str()) {
            continue;
        }
        let bytes = hex::decode(hex_bytes)
            .map_err(|_| AppError::BadRequest(format!("the backup's {name} is damaged")))?;
        crate::secrets::write_private_file(&data_dir.join(name), &bytes)
            .map_err(|e| AppError::BadRequest(format!("cannot write {name}: {e}")))?;
    }
    let mut inserted = 0usize;
    let conn: &mut DbConn = &mut conn;
    conn.transaction::<_, AppError, _>(|c| {
        c.batch_execute("DELETE FROM settings")?;
        macro_rules! put {
            ($table:expr, $rows:expr) => {
                for row in $rows {
                    diesel::insert_into($table).values(row).execute(c)?;
                    inserted += 1;
                }
            };
        }
        put!(users::table, &contents.users);
        put!(hosts::table, &contents.hosts);
        put!(host_mappings::table, &contents.host_mappings);
        put!(tokens::table, &contents.tokens);
        put!(certificates::table, &contents.certificates);
        put!(audit_events::table, &contents.audit_events);
        put!(settings::table, &contents.settings);
        put!(api_keys::table, &contents.api_keys);
        if let DbConn::Pg(_) = c {
            for t in ["users", "hosts", "host_mappings", "tokens", "certificates", "audit_events", "api_keys"] {
                c.batch_execute(&format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                ))?;
            }
        }
        Ok(())
    })?;
    Ok(format!(
        "{inserted} rows and {} files restored from a backup made {}",
        contents.files.len(),
        contents.created_at
    ))
}
