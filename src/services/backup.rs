//! Backup and restore of a whole installation: every table and the data directory's
//! keys and CA, in one file encrypted with a passphrase (argon2id, ChaCha20-Poly1305).
//! The backup is logical (rows as JSON), so it restores into SQLite or PostgreSQL alike.

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::audit::{self, Event};
use crate::db::schema::*;
use crate::db::{self, DbConn, Pool};
use crate::error::AppError;
use crate::models::acme::{AcmeAccount, AcmeAuthorization, AcmeOrder};
use crate::models::api_key::ApiKey;
use crate::models::audit_event::AuditEvent;
use crate::models::certificate::{renew_by_for, Certificate};
use crate::models::host::Host;
use crate::models::host_mapping::HostMapping;
use crate::models::issuer::{CaMigration, IssuerRow};
use crate::models::kinds::AuditCategory;
use crate::models::settings::Settings;
use crate::models::token::Token;
use crate::models::user::User;

/// The first format: argon2id with the crate's default parameters (m=19456 KiB, t=2,
/// p=1), then a 16-byte salt and a 12-byte nonce. Still restored.
const MAGIC_V1: &[u8] = b"HOSTCA-BACKUP-1\n";
/// The current format: a JSON header line with the KDF's parameters, salt and nonce
/// (authenticated as associated data), then the sealed contents.
pub const MAGIC: &[u8] = b"HOSTCA-BACKUP-2\n";
/// The data directory's files a restored server needs (audit.key keeps the restored
/// audit chain verifiable and continuable).
pub const FILES: [&str; 5] = ["session.key", "token.key", "ca.pem", "ca.key", "audit.key"];
/// Files older backups lack, or installations made since the CA hierarchy do not have
/// (their CA keys are the issuers' key files): restored when present.
const OPTIONAL_FILES: [&str; 3] = ["audit.key", "ca.pem", "ca.key"];

/// The passphrase's key derivation, as written in the backup's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfHeader {
    pub kdf: String,
    /// Memory in KiB.
    pub m: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    pub salt: String,
    pub nonce: String,
}

/// Parameters for new backups: a backup is written rarely and guards every key, so it can
/// afford more than the password hashes (64 MiB, 3 passes; about 0.2 s here).
const KDF_M: u32 = 65_536;
const KDF_T: u32 = 3;
const KDF_P: u32 = 1;
/// Bounds on what a header may ask for, so that a crafted file cannot make restore
/// allocate without limit.
const KDF_MAX_M: u32 = 4 * 1024 * 1024;
const KDF_MAX_T: u32 = 64;
const KDF_MAX_P: u32 = 16;

/// Reads the KDF header of a backup file (None for the first format, which has none).
pub fn kdf_header(file: &[u8]) -> Option<KdfHeader> {
    let rest = file.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    serde_json::from_slice(&rest[..end]).ok()
}
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
    /// ACME accounts, orders and authorizations (absent from backups made before ACME).
    #[serde(default)]
    acme_accounts: Vec<AcmeAccount>,
    #[serde(default)]
    acme_orders: Vec<AcmeOrder>,
    #[serde(default)]
    acme_authorizations: Vec<AcmeAuthorization>,
    /// The CAs and CA migrations (absent from backups made before the hierarchy: the CA
    /// is then ca.pem and ca.key, registered at the restored server's first start).
    #[serde(default)]
    issuers: Vec<IssuerRow>,
    #[serde(default)]
    ca_migrations: Vec<CaMigration>,
}

/// The key files the issuers name (`file:NAME`), which a backup carries.
fn key_files(issuers: &[IssuerRow]) -> Vec<String> {
    issuers
        .iter()
        .filter_map(|i| i.key_location.strip_prefix("file:"))
        .filter(|n| !FILES.contains(n))
        .map(str::to_string)
        .collect()
}

fn cipher(passphrase: &str, salt: &[u8]) -> Result<ChaCha20Poly1305, AppError> {
    cipher_with(
        passphrase,
        salt,
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
    )
}

fn cipher_with(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<ChaCha20Poly1305, AppError> {
    if m > KDF_MAX_M || t > KDF_MAX_T || p > KDF_MAX_P {
        return Err(AppError::BadRequest(format!(
            "the backup asks for argon2 parameters beyond what hostca accepts (m={m} KiB, t={t}, p={p}; at most m={KDF_MAX_M}, t={KDF_MAX_T}, p={KDF_MAX_P})"
        )));
    }
    let params = Params::new(m, t, p, Some(32)).map_err(|e| {
        AppError::BadRequest(format!("the backup's argon2 parameters are invalid: {e}"))
    })?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| AppError::BadRequest(format!("key derivation: {e}")))?;
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
            acme_accounts: acme_accounts::table.order(acme_accounts::id).load(c)?,
            acme_orders: acme_orders::table.order(acme_orders::id).load(c)?,
            acme_authorizations: acme_authorizations::table
                .order(acme_authorizations::id)
                .load(c)?,
            issuers: issuers::table.order(issuers::id).load(c)?,
            ca_migrations: ca_migrations::table.order(ca_migrations::id).load(c)?,
        })
    })
}

/// `magic`, a JSON header line (argon2id's parameters, salt and nonce), then `plain`
/// sealed with ChaCha20-Poly1305 under the passphrase's key, the header as associated data.
pub fn seal(magic: &[u8], plain: &[u8], passphrase: &str) -> Result<Vec<u8>, AppError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::fill(&mut salt[..]);
    rand::fill(&mut nonce[..]);
    let header = KdfHeader {
        kdf: "argon2id".into(),
        m: KDF_M,
        t: KDF_T,
        p: KDF_P,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
    };
    let header = serde_json::to_vec(&header).map_err(|e| AppError::internal_from("sealing", e))?;
    let sealed = cipher_with(passphrase, &salt, KDF_M, KDF_T, KDF_P)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &header,
            },
        )
        .map_err(|_| AppError::internal("encryption failed"))?;
    let mut file = magic.to_vec();
    file.extend_from_slice(&header);
    file.push(b'\n');
    file.extend_from_slice(&sealed);
    Ok(file)
}

/// Opens what `seal` wrote; `None` when the file is not of that format. A wrong
/// passphrase (or a damaged file) is a 400 naming `what`.
pub fn open(
    magic: &[u8],
    file: &[u8],
    passphrase: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, AppError> {
    let Some(rest) = file.strip_prefix(magic) else {
        return Ok(None);
    };
    let Some(end) = rest.iter().position(|b| *b == b'\n') else {
        return Ok(None);
    };
    let (header_bytes, sealed) = (&rest[..end], &rest[end + 1..]);
    let Ok(header) = serde_json::from_slice::<KdfHeader>(header_bytes) else {
        return Ok(None);
    };
    if header.kdf != "argon2id" {
        return Err(AppError::BadRequest(format!(
            "the {what}'s key derivation '{}' is unknown to this hostca",
            header.kdf
        )));
    }
    let (Ok(salt), Ok(nonce)) = (hex::decode(&header.salt), hex::decode(&header.nonce)) else {
        return Ok(None);
    };
    if nonce.len() != 12 || salt.len() < 8 {
        return Ok(None);
    }
    cipher_with(passphrase, &salt, header.m, header.t, header.p)?
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: sealed,
                aad: header_bytes,
            },
        )
        .map(Some)
        .map_err(|_| {
            AppError::BadRequest(format!("the passphrase is wrong, or the {what} is damaged"))
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
        if OPTIONAL_FILES.contains(&name) && !path.exists() {
            continue;
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| AppError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
        contents.files.push((name.to_string(), hex::encode(bytes)));
    }
    for name in key_files(&contents.issuers) {
        let path = data_dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| {
            AppError::BadRequest(format!("cannot read the CA key {}: {e}", path.display()))
        })?;
        contents.files.push((name, hex::encode(bytes)));
    }
    // A key in a PKCS#11 token never leaves it: the backup names it, the token keeps it.
    let in_tokens: Vec<String> = contents
        .issuers
        .iter()
        .filter(|i| i.key_location.starts_with("pkcs11:") && i.in_bundle())
        .map(|i| format!("{} ({})", i.subject, i.key_location))
        .collect();
    let plain = serde_json::to_vec(&contents).map_err(|e| AppError::internal_from("backup", e))?;
    let file = seal(MAGIC, &plain, passphrase)?;
    let _ = std::fs::remove_file(out);
    crate::secrets::write_private_file(out, &file)
        .map_err(|e| AppError::BadRequest(format!("cannot write {}: {e}", out.display())))?;
    let mut summary = format!(
        "{} users, {} hosts, {} tokens, {} certificates, {} audit events, {} CAs",
        contents.users.len(),
        contents.hosts.len(),
        contents.tokens.len(),
        contents.certificates.len(),
        contents.audit_events.len(),
        contents.issuers.len()
    );
    if !in_tokens.is_empty() {
        summary.push_str(&format!(
            "; not in the backup, because they stay in their PKCS#11 token: the keys of {}",
            in_tokens.join(", ")
        ));
    }
    audit::record_alone(
        &mut conn,
        &Event::new(
            AuditCategory::SecConfig,
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
    let wrong = || AppError::BadRequest("the passphrase is wrong, or the backup is damaged".into());
    let not_a_backup =
        || AppError::BadRequest(format!("{} is not a hostca backup", input.display()));
    let plain = if file.starts_with(MAGIC) {
        open(MAGIC, &file, passphrase, "backup")?.ok_or_else(not_a_backup)?
    } else if let Some(rest) = file.strip_prefix(MAGIC_V1).filter(|r| r.len() >= 28) {
        let (salt, rest) = rest.split_at(16);
        let (nonce, sealed) = rest.split_at(12);
        cipher(passphrase, salt)?
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| wrong())?
    } else {
        return Err(not_a_backup());
    };
    let mut contents: Contents = serde_json::from_slice(&plain)
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
    let keys = key_files(&contents.issuers);
    for name in &keys {
        if !contents.files.iter().any(|(n, _)| n == name) {
            return Err(AppError::BadRequest(format!(
                "the backup names the CA key file {name} but does not hold it: it is incomplete, and hostca will not create another CA in its place"
            )));
        }
    }
    if contents.issuers.is_empty() && !contents.files.iter().any(|(n, _)| n == "ca.key") {
        return Err(AppError::BadRequest(
            "the backup holds no CA (neither issuers nor ca.key): restoring it would make a new CA, which hostca will not do silently".into(),
        ));
    }
    for (name, hex_bytes) in &contents.files {
        if !FILES.contains(&name.as_str()) && !keys.contains(name) {
            continue;
        }
        let bytes = hex::decode(hex_bytes)
            .map_err(|_| AppError::BadRequest(format!("the backup's {name} is damaged")))?;
        crate::secrets::write_private_file(&data_dir.join(name), &bytes)
            .map_err(|e| AppError::BadRequest(format!("cannot write {name}: {e}")))?;
    }
    // The restored server's audit log starts with the restored events, so that
    // `hostca audit verify` compares what came back with what the backup held.
    audit::write_restored_sink(data_dir, &contents.audit_events, &contents.settings)?;
    // A backup from before renewal times were kept: compute them as an upgrade does.
    for cert in &mut contents.certificates {
        cert.renew_by
            .get_or_insert_with(|| renew_by_for(cert.not_before, cert.not_after));
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
        put!(acme_accounts::table, &contents.acme_accounts);
        put!(acme_orders::table, &contents.acme_orders);
        put!(acme_authorizations::table, &contents.acme_authorizations);
        put!(issuers::table, &contents.issuers);
        put!(ca_migrations::table, &contents.ca_migrations);
        if let DbConn::Pg(_) = c {
            for t in ["users", "hosts", "host_mappings", "tokens", "certificates", "audit_events", "api_keys", "acme_accounts", "acme_orders", "acme_authorizations", "issuers", "ca_migrations"] {
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
