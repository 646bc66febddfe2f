//! First start and every start: the data directory, its keys, the database and the
//! first administrator.

use std::path::Path;

use super::users;
use crate::db::{self, Pool};
use crate::error::AppError;
use crate::secrets::{self, TokenKey};

pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

pub struct Prepared {
    pub pool: Pool,
    pub token_key: TokenKey,
    pub session_key: Vec<u8>,
    pub pki: super::pki::PkiState,
    /// Set on the first start when no password was given: print it once.
    pub generated_admin_password: Option<String>,
}

pub fn prepare(
    data_dir: &Path,
    database_url: &str,
    admin_password: Option<&str>,
    ca: &super::pki::CaOptions,
    pool_size: u32,
    audit_log: &super::audit::SinkTarget,
) -> Result<Prepared, AppError> {
    create_private_dir(data_dir)?;
    if db::Backend::of(database_url) == db::Backend::Sqlite {
        create_private_sqlite_file(Path::new(db::sqlite_path(database_url)))?;
    }
    tighten_modes(data_dir, database_url);
    let session_key = secrets::load_or_create_key(&data_dir.join(secrets::SESSION_KEY_FILE), 64)?;
    let token_key = TokenKey::load_or_create(data_dir)?;
    let pool = db::connect(database_url, pool_size)?;
    super::audit::open(&pool, data_dir, audit_log)?;
    let mut conn = db::get(&pool)?;
    let generated = users::ensure_initial_admin(&mut conn, admin_password)?;
    if let Some(p) = &generated {
        let path = data_dir.join(INITIAL_PASSWORD_FILE);
        let _ = std::fs::remove_file(&path);
        secrets::write_private_file(&path, format!("{p}\n").as_bytes())
            .map_err(|e| AppError::internal_from(format!("cannot write {}", path.display()), e))?;
    }
    let keys = super::pki::KeyStore::new(data_dir, token_key.clone(), ca);
    let pki = super::pki::load_or_create(&mut conn, keys, ca)?;
    drop(conn);
    Ok(Prepared {
        pool,
        token_key,
        session_key,
        pki,
        generated_admin_password: generated,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AppError::internal_from(format!("cannot create {}", dir.display()), e))
}

/// SQLite creates its database with the process's umask (often world-readable) and its
/// `-wal`/`-shm` files with the database file's own mode: creating the file empty with mode
/// 0600 first keeps all three private.
fn create_private_sqlite_file(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() || path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            AppError::internal_from(format!("cannot create {}", parent.display()), e)
        })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AppError::internal(format!(
            "cannot create the database {}: {e}",
            path.display()
        ))),
    }
}

/// The data directory holds the CA key, the session and token keys and the database: at
/// every start it is made 0700 and every file in it 0600 (and the SQLite database with
/// its `-wal`/`-shm` files wherever it is), each change a warning in the log, since a
/// looser mode means someone (a restore, a copy, an editor) exposed the secrets.
pub fn tighten_modes(data_dir: &Path, database_url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tighten = |path: &Path, mode: u32| {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.file_type().is_symlink() {
            return;
        }
        let current = meta.permissions().mode() & 0o777;
        if current & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => log::warn!(
                "{} had mode {current:04o}, readable by other users: changed to {mode:04o}",
                path.display()
            ),
            Err(e) => log::error!(
                "{} has mode {current:04o}, readable by other users, and cannot be changed: {e}",
                path.display()
            ),
        }
    };
    tighten(data_dir, 0o700);
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                tighten(&entry.path(), 0o600);
            }
        }
    }
    if db::Backend::of(database_url) == db::Backend::Sqlite {
        let db_path = db::sqlite_path(database_url);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            tighten(Path::new(&format!("{db_path}{suffix}")), 0o600);
        }
    }
}
