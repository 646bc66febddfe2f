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
    ca_name: Option<&str>,
    pool_size: u32,
    audit_log: &super::audit::SinkTarget,
) -> Result<Prepared, AppError> {
    create_private_dir(data_dir)?;
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
            .map_err(|e| AppError::Internal(format!("cannot write {}: {e}", path.display())))?;
    }
    let ca = super::pki::load_or_create_ca(&mut conn, data_dir, ca_name)?;
    let pki = super::pki::start(&mut conn, ca)?;
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
        .map_err(|e| AppError::Internal(format!("cannot create {}: {e}", dir.display())))
}
