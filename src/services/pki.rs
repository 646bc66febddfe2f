//! The CAs as the running server holds them: loaded (or, on the first start, created) from
//! the issuers table, reloaded whenever another process or command changes it, and each
//! CA's CRL, rebuilt after each revocation and hourly, served from memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::NaiveDateTime;

use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::certificate::Certificate;
use crate::models::issuer::{
    self, CaMigration, IssuerRole, IssuerRow, IssuerState, MigrationPhase, NewIssuer,
};
use crate::models::kinds::{AuditCategory, IssuedVia};
use crate::models::settings::Settings;
use crate::pki::ca::{self, Ca};
use crate::pki::crl::{self, RevokedEntry, SignedCrl};
use crate::pki::pkcs11::{Pkcs11Key, Pkcs11Settings};
use crate::pki::signer::{CaKey, CaKeyType};
use crate::pki::{keyfile, Reason};
use crate::secrets::TokenKey;

/// How the first start makes the CA, and where PKCS#11 keys are reached.
#[derive(Clone, Debug, Default)]
pub struct CaOptions {
    /// The root's subject (`--ca-name`); the issuing CA's is derived from it.
    pub name: Option<String>,
    /// `p256` (default), `p384`, `rsa3072`, `rsa4096` (`--ca-key-type`).
    pub key_type: Option<String>,
    /// Where the issuing CA's key lives (`--ca-key`): a PKCS#11 URI; default a key file.
    pub issuing_key: Option<String>,
    /// `--pkcs11-module`, `--pkcs11-pin-file` (or their variables, or the URI's own).
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl CaOptions {
    pub fn key_type(&self) -> Result<CaKeyType, AppError> {
        match self.key_type.as_deref() {
            None | Some("") => Ok(CaKeyType::P256),
            Some(k) => Ok(CaKeyType::parse(k)?),
        }
    }
}

/// Where the keys named in the issuers table are: files in the data directory (sealed
/// under its token key) or objects in a PKCS#11 token.
pub struct KeyStore {
    dir: PathBuf,
    wrap: TokenKey,
    pkcs11_module: Option<PathBuf>,
    pkcs11_pin_file: Option<PathBuf>,
}

impl KeyStore {
    pub fn new(dir: &Path, wrap: TokenKey, options: &CaOptions) -> KeyStore {
        KeyStore {
            dir: dir.to_path_buf(),
            wrap,
            pkcs11_module: options.pkcs11_module.clone(),
            pkcs11_pin_file: options.pkcs11_pin_file.clone(),
        }
    }

    fn pkcs11_settings(&self, uri: &str) -> Result<Pkcs11Settings, AppError> {
        Ok(Pkcs11Settings::resolve(
            uri,
            self.pkcs11_module.as_deref(),
            self.pkcs11_pin_file.as_deref(),
        )?)
    }

    /// The key at `location`; `None` for a key taken offline.
    pub fn load(&self, location: &str) -> Result<Option<CaKey>, AppError> {
        if location == issuer::OFFLINE {
            return Ok(None);
        }
        if let Some(name) = location.strip_prefix("file:") {
            return Ok(Some(CaKey::File(keyfile::load(
                &self.dir, name, &self.wrap,
            )?)));
        }
        if location.starts_with("pkcs11:") {
            let settings = self.pkcs11_settings(location)?;
            return Ok(Some(CaKey::Pkcs11(Pkcs11Key::open(location, &settings)?)));
        }
        Err(AppError::internal(format!(
            "the issuers table names the key location '{location}', which is none of file:NAME, pkcs11:URI or offline"
        )))
    }

    /// A new CA key and its location: generated in the token named by `uri` (or the
    /// token's existing key of that name, used as it is), or a new sealed key file.
    pub fn create(
        &self,
        role: &str,
        kind: CaKeyType,
        uri: Option<&str>,
    ) -> Result<(CaKey, String), AppError> {
        match uri {
            Some(uri) => {
                let settings = self.pkcs11_settings(uri)?;
                let key = match Pkcs11Key::open(uri, &settings) {
                    Ok(existing) => existing,
                    Err(_) => Pkcs11Key::generate(uri, &settings, kind)?,
                };
                let location = key.uri();
                Ok((CaKey::Pkcs11(key), location))
            }
            None => {
                let key = crate::pki::signer::generate_file_key(kind)?;
                let name = keyfile::new_name(role);
                keyfile::save(&self.dir, &name, &key, &self.wrap)?;
                Ok((CaKey::File(key), format!("file:{name}")))
            }
        }
    }

    /// The PEM of a file key (for `hostca ca export-root`).
    pub fn file_key_pem(&self, location: &str) -> Result<String, AppError> {
        match self.load(location)? {
            Some(CaKey::File(k)) => Ok(k.serialize_pem()),
            _ => Err(AppError::BadRequest(format!(
                "the key at {location} is not a key file on this server"
            ))),
        }
    }

    pub fn file_path(&self, location: &str) -> Option<PathBuf> {
        location.strip_prefix("file:").map(|n| self.dir.join(n))
    }
}

/// One CA of the installation: its row, and its certificate with the key when held.
pub struct Loaded {
    pub row: IssuerRow,
    pub ca: Arc<Ca>,
}

/// Every CA as this process last loaded them.
pub struct IssuerSet {
    pub generation: i64,
    pub issuers: Vec<Loaded>,
    signing: usize,
    /// Every CA certificate not decommissioned, oldest first: what hosts trust.
    pub bundle_pem: String,
    /// The latest migration, unless it is decommissioned.
    pub migration: Option<CaMigration>,
    /// The CAs whose CRLs are signed: those that sign hosts, until decommissioned and
    /// their last certificate has expired.
    pub publishing: Vec<i64>,
}

impl IssuerSet {
    /// The CA that signs new certificates.
    pub fn signing(&self) -> &Arc<Ca> {
        &self.issuers[self.signing].ca
    }

    pub fn signing_row(&self) -> &IssuerRow {
        &self.issuers[self.signing].row
    }

    pub fn get(&self, id: i64) -> Option<&Loaded> {
        self.issuers.iter().find(|l| l.row.id == id)
    }

    /// The CA whose subject key identifier is `key_id` (an authority key identifier).
    pub fn by_key_id(&self, key_id: &[u8]) -> Option<&Loaded> {
        self.issuers
            .iter()
            .find(|l| l.ca.key_id.as_deref() == Some(key_id))
    }

    /// The certificates a host's certificate from `issuer_id` is sent with: that CA and
    /// the CAs above it, without the self-signed root hosts already trust (unless the CA
    /// is itself that root, as in an installation from before the hierarchy).
    pub fn chain(&self, issuer_id: i64) -> Vec<&Ca> {
        let mut chain = Vec::new();
        let mut next = self.get(issuer_id);
        while let Some(l) = next {
            if l.row.parent_id.is_none() && !chain.is_empty() {
                break;
            }
            chain.push(l.ca.as_ref());
            next = l.row.parent_id.and_then(|p| self.get(p));
        }
        chain
    }

    pub fn chain_pem(&self, issuer_id: i64) -> String {
        self.chain(issuer_id)
            .iter()
            .map(|c| ensure_newline(&c.cert_pem))
            .collect()
    }

    /// The CA whose CRL `/crl` serves: the oldest still publishing (the one certificates
    /// from before the hierarchy name).
    pub fn default_crl_issuer(&self) -> i64 {
        self.publishing
            .first()
            .copied()
            .unwrap_or(self.signing_row().id)
    }
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

pub struct PkiState {
    keys: KeyStore,
    set: RwLock<Arc<IssuerSet>>,
    crls: RwLock<Arc<HashMap<i64, Arc<SignedCrl>>>>,
    rebuilding: Mutex<()>,
    reloading: Mutex<()>,
    /// The certificate validity (days) last read from the settings: what a certificate
    /// signed before its request reaches the writer assumes (see `enroll::presign`).
    pub validity_days: AtomicI64,
    /// `serve --leaf-validity-minutes`: host certificates last this many minutes instead of
    /// the setting's days (0: off). For renewal drills and tests; logged at start.
    pub leaf_validity_minutes: AtomicI64,
    /// A renewal superseded a certificate that the served CRL does not list yet.
    crl_dirty: AtomicBool,
    /// A coalescing thread is running (see `rebuild_crl_soon`).
    crl_worker: AtomicBool,
    /// The OCSP responders and their responses (see `services::ocsp`).
    pub ocsp: super::ocsp::OcspState,
}

impl PkiState {
    /// The validity in minutes that overrides the setting's days, if the server was
    /// started with `--leaf-validity-minutes`.
    pub fn leaf_minutes(&self) -> Option<i64> {
        Some(self.leaf_validity_minutes.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }

    /// The CAs of `set`, with no CRL signed yet.
    fn new(keys: KeyStore, set: IssuerSet, validity_days: i64) -> PkiState {
        PkiState {
            keys,
            set: RwLock::new(Arc::new(set)),
            crls: RwLock::new(Arc::new(HashMap::new())),
            rebuilding: Mutex::new(()),
            reloading: Mutex::new(()),
            validity_days: AtomicI64::new(validity_days),
            leaf_validity_minutes: AtomicI64::new(0),
            crl_dirty: AtomicBool::new(false),
            crl_worker: AtomicBool::new(false),
            ocsp: super::ocsp::OcspState::default(),
        }
    }

    pub fn issuers(&self) -> Arc<IssuerSet> {
        self.set
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The CA that signs new certificates.
    pub fn signing(&self) -> Arc<Ca> {
        self.issuers().signing().clone()
    }

    /// What hosts trust: every CA certificate not decommissioned.
    pub fn bundle_pem(&self) -> String {
        self.issuers().bundle_pem.clone()
    }

    /// The SHA-256 fingerprint hosts confirm: the newest root in the trust bundle.
    pub fn root_fingerprint(&self) -> String {
        let set = self.issuers();
        set.issuers
            .iter()
            .rev()
            .find(|l| l.row.parent_id.is_none() && l.row.in_bundle())
            .map(|l| l.row.fingerprint_sha256.clone())
            .unwrap_or_default()
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    fn crls(&self) -> Arc<HashMap<i64, Arc<SignedCrl>>> {
        self.crls
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The CRL `/crl` serves.
    pub fn crl(&self) -> Arc<SignedCrl> {
        let set = self.issuers();
        let crls = self.crls();
        crls.get(&set.default_crl_issuer())
            .or_else(|| crls.values().next())
            .cloned()
            .unwrap_or_else(|| Arc::new(SignedCrl::empty()))
    }

    /// The CRL of the CA with issuers row `id`, when it publishes one.
    pub fn crl_of(&self, id: i64) -> Option<Arc<SignedCrl>> {
        self.crls().get(&id).cloned()
    }
}

/// The issuing CA's subject: the root's, with "Issuing CA n" in its common name.
pub fn issuing_name(root_name: &str, n: usize) -> String {
    let suffix = format!(" Issuing CA {n}");
    let mut parts: Vec<String> = root_name
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !root_name.contains('=') {
        parts = vec![format!("CN={}", root_name.trim())];
    }
    match parts
        .iter_mut()
        .find(|p| p.to_ascii_uppercase().starts_with("CN="))
    {
        Some(cn) => {
            let base = cn[3..].trim().to_string();
            *cn = if base.contains("Root CA") {
                let named = base.replacen("Root CA", "Issuing CA", 1);
                let named: String = named.chars().take(60).collect();
                format!("CN={named} {n}")
            } else {
                let base: String = base.chars().take(64 - suffix.len()).collect();
                format!("CN={base}{suffix}")
            };
        }
        None => parts.insert(0, format!("CN=hostca{suffix}")),
    }
    parts.join(",")
}

fn default_root_name() -> String {
    let mut b = [0u8; 3];
    rand::fill(&mut b[..]);
    format!("CN=hostca Root CA {}", hex::encode_upper(b))
}

/// Stores a new CA (its row and audit event in the caller's transaction).
#[allow(clippy::too_many_arguments)]
pub fn store_issuer(
    c: &mut db::WriteTx,
    ca: &Ca,
    role: IssuerRole,
    state: IssuerState,
    parent_id: Option<i64>,
    key_location: &str,
    actor: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<IssuerRow, AppError> {
    let key_id = ca.key_id_hex();
    let key_type = ca.key_type.map_or("unknown", CaKeyType::key);
    let row = IssuerRow::insert(
        c,
        &NewIssuer {
            role,
            state,
            parent_id,
            subject: &ca.subject,
            cert_pem: &ca.cert_pem,
            fingerprint_sha256: &ca.sha256,
            key_id: &key_id,
            key_type,
            key_location,
            not_before: ca.not_before,
            not_after: ca.not_after,
            created_at: now,
            // Active at once, or pending (a migration's new CA).
            activated_at: (state == IssuerState::Active).then_some(now),
        },
    )?;
    super::audit::record(
        c,
        &super::audit::Event::new(AuditCategory::Ca, "create_ca", actor, &ca.subject)
            .describe(format!(
                "{} #{} created ({}, key {}), valid until {} UTC, SHA-256 {}",
                role.label(),
                row.id,
                ca.key_type.map_or("unknown key", CaKeyType::label),
                key_location_label(key_location),
                ca.not_after,
                ca.sha256
            ))
            .reason(reason),
    )?;
    Ok(row)
}

/// Where a key is, as the CA page and the audit trail say it.
pub fn key_location_label(location: &str) -> String {
    if location == issuer::OFFLINE {
        "offline (not on this server)".into()
    } else if let Some(name) = location.strip_prefix("file:") {
        format!("key file {name} (sealed under token.key)")
    } else {
        format!("PKCS#11 {location}")
    }
}

/// Loads the CAs of this data directory and database, or creates them on the first start.
/// A database that already belongs to a CA never gets another: a missing or broken key
/// is an error that says what to restore.
pub fn load_or_create(
    conn: &mut DbConn,
    keys: KeyStore,
    options: &CaOptions,
) -> Result<PkiState, AppError> {
    if IssuerRow::all(conn)?.is_empty() {
        let settings = Settings::load(conn)?;
        let dir = keys.dir.clone();
        let files_exist = ca::cert_path(&dir).exists() || ca::key_path(&dir).exists();
        if !settings.ca_fingerprint.is_empty() || files_exist {
            register_legacy(conn, &dir, &settings)?;
        } else {
            create_hierarchy(conn, &keys, options, &settings)?;
        }
    }
    let set = load_set(conn, &keys, None)?;
    let validity = Settings::load(conn)?.certificate_validity_days;
    let state = PkiState::new(keys, set, validity_days(validity));
    let number = db::write_tx(conn, |c| Ok(Settings::next_crl_number(c)?))?;
    sign_crls(conn, &state, number)?;
    Ok(state)
}

/// The CAs of an existing installation, for commands run beside the server: never creates
/// one, and signs nothing.
pub fn load_existing(conn: &mut DbConn, keys: KeyStore) -> Result<PkiState, AppError> {
    if IssuerRow::all(conn)?.is_empty() {
        return Err(AppError::BadRequest(
            "this database has no CA yet: start the server on it once first".into(),
        ));
    }
    let set = load_set(conn, &keys, None)?;
    Ok(PkiState::new(keys, set, 0))
}

/// An installation from before the issuers table: its `ca.pem`/`ca.key` become issuer
/// #1, which goes on signing hosts, and its certificates are attributed to it.
fn register_legacy(conn: &mut DbConn, dir: &Path, settings: &Settings) -> Result<(), AppError> {
    let ca = Ca::load(dir).map_err(|e| {
        AppError::internal(format!(
            "{e}. This database belongs to the CA with SHA-256 fingerprint {}; restore {} and {} \
             from a backup of the data directory. hostca will not create a second CA.",
            if settings.ca_fingerprint.is_empty() {
                "(unrecorded)"
            } else {
                &settings.ca_fingerprint
            },
            ca::cert_path(dir).display(),
            ca::key_path(dir).display()
        ))
    })?;
    if !settings.ca_fingerprint.is_empty() && settings.ca_fingerprint != ca.sha256 {
        return Err(AppError::internal(format!(
            "the CA in {} (SHA-256 {}) is not the CA of this database (SHA-256 {}); restore the matching ca.pem and ca.key",
            dir.display(),
            ca.sha256,
            settings.ca_fingerprint
        )));
    }
    let now = db::now();
    let location = format!("file:{}", ca::KEY_FILE);
    let registered = db::write_tx(conn, |c| {
        if settings.ca_fingerprint.is_empty() {
            Settings::set_ca_fingerprint(c, &ca.sha256)?;
        }
        let row = store_issuer(
            c,
            &ca,
            IssuerRole::RootIssuing,
            IssuerState::Active,
            None,
            &location,
            "system",
            "the CA of an installation from before the CA hierarchy, registered as it is",
            now,
        )?;
        IssuerRow::adopt_unattributed(c, row.id)?;
        Ok(())
    });
    match registered {
        Ok(()) => Ok(()),
        // Another process on the same database registered it first.
        Err(crate::error::AppError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The first start: a root and an issuing CA signed by it.
fn create_hierarchy(
    conn: &mut DbConn,
    keys: &KeyStore,
    options: &CaOptions,
    settings: &Settings,
) -> Result<(), AppError> {
    let kind = options.key_type()?;
    let root_name = match options.name.as_deref() {
        Some(n) if !n.trim().is_empty() => n.to_string(),
        _ => default_root_name(),
    };
    let now = db::now();
    let (root_key, root_location) = keys.create("root", kind, None)?;
    let root = Ca::create_root(&root_name, root_key, now, ca::ROOT_VALIDITY_DAYS)?;
    let (issuing_key, issuing_location) =
        keys.create("issuing", kind, options.issuing_key.as_deref())?;
    let permitted = crate::names::stored_list(&settings.allowed_domains);
    let issuing = Ca::create_issuing(
        &issuing_name(&root_name, 1),
        issuing_key,
        &root,
        now,
        ca::ISSUING_VALIDITY_DAYS,
        &permitted,
    )?;
    let arl = crl::build_for(
        &root,
        0,
        &[],
        now,
        chrono::Duration::days(crl::ARL_NEXT_UPDATE_DAYS),
    )?;
    db::write_tx(conn, |c| {
        Settings::set_ca_fingerprint(c, &root.sha256)?;
        let root_row = store_issuer(
            c,
            &root,
            IssuerRole::Root,
            IssuerState::Active,
            None,
            &root_location,
            "system",
            "first start",
            now,
        )?;
        IssuerRow::set_arl(c, root_row.id, &arl.der)?;
        store_issuer(
            c,
            &issuing,
            IssuerRole::Issuing,
            IssuerState::Active,
            Some(root_row.id),
            &issuing_location,
            "system",
            "first start",
            now,
        )?;
        Ok(())
    })
}

/// Reads the issuers table into a set, reusing the keys `previous` already holds.
fn load_set(
    conn: &mut DbConn,
    keys: &KeyStore,
    previous: Option<&IssuerSet>,
) -> Result<IssuerSet, AppError> {
    let generation = issuer::generation(conn)?;
    let rows = IssuerRow::all(conn)?;
    let now = db::now();
    let mut issuers = Vec::with_capacity(rows.len());
    let mut publishing = Vec::new();
    for row in rows {
        let signs_leaves = row.role.signs_leaves();
        let publishes = signs_leaves
            && (row.in_bundle()
                || IssuerRow::last_leaf_expiry(conn, row.id)?.is_some_and(|t| t > now));
        let needs_key = publishes || row.state == IssuerState::Active;
        let reused = previous
            .and_then(|p| p.get(row.id))
            .filter(|l| l.row.key_location == row.key_location && (l.ca.has_key() || !needs_key));
        let ca = match reused {
            Some(l) => l.ca.clone(),
            None => {
                let mut ca = Ca::from_pem(&row.cert_pem)?;
                ca.id = row.id;
                let key = match keys.load(&row.key_location) {
                    Ok(k) => k,
                    Err(e) if needs_key => {
                        return Err(AppError::internal(format!(
                            "the key of CA #{} ({}) cannot be used: {e}",
                            row.id, row.subject
                        )))
                    }
                    Err(e) => {
                        log::warn!(
                            "the key of CA #{} ({}) is not usable: {e}",
                            row.id,
                            row.subject
                        );
                        None
                    }
                };
                let ca = match key {
                    Some(k) => ca.with_key(k)?,
                    None => ca,
                };
                Arc::new(ca)
            }
        };
        if publishes {
            publishing.push(row.id);
        }
        issuers.push(Loaded { row, ca });
    }
    let signing = issuers
        .iter()
        .position(|l| l.row.role.signs_leaves() && l.row.state == IssuerState::Active)
        .ok_or_else(|| AppError::internal("the issuers table has no active CA that signs hosts"))?;
    let bundle_pem = issuers
        .iter()
        .filter(|l| l.row.in_bundle())
        .map(|l| ensure_newline(&l.row.cert_pem))
        .collect();
    let migration =
        CaMigration::latest(conn)?.filter(|m| m.phase != MigrationPhase::Decommissioned);
    Ok(IssuerSet {
        generation,
        issuers,
        signing,
        bundle_pem,
        migration,
        publishing,
    })
}

/// Reloads the CAs when the issuers table changed (another process, a command, a
/// migration step here); true when it did.
pub fn reload_if_changed(ctx: &Ctx) -> Result<bool, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let current = ctx.pki.issuers();
    if issuer::generation(&mut conn)? <= current.generation {
        return Ok(false);
    }
    let _one_at_a_time = ctx.pki.reloading.lock().unwrap_or_else(|p| p.into_inner());
    let current = ctx.pki.issuers();
    let set = load_set(&mut conn, &ctx.pki.keys, Some(&current))?;
    if set.generation <= current.generation {
        return Ok(false);
    }
    log::info!(
        "CAs reloaded (generation {}): {} signs new certificates",
        set.generation,
        set.signing().subject
    );
    if let Ok(mut slot) = ctx.pki.set.write() {
        *slot = Arc::new(set);
    }
    let number = Settings::load(&mut conn)?.crl_number;
    let _signing = ctx.pki.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
    sign_crls(&mut conn, &ctx.pki, number)?;
    Ok(true)
}

/// Signs the CRL of every publishing CA under `number` and serves them.
fn sign_crls(conn: &mut DbConn, pki: &PkiState, number: i64) -> Result<(), AppError> {
    let set = pki.issuers();
    let now = db::now();
    let mut crls = HashMap::with_capacity(set.publishing.len());
    for id in &set.publishing {
        let Some(l) = set.get(*id) else { continue };
        if !l.ca.has_key() {
            continue;
        }
        let entries = revoked_entries(conn, *id, now)?;
        crls.insert(*id, Arc::new(crl::build(&l.ca, number, &entries, now)?));
    }
    if let Ok(mut slot) = pki.crls.write() {
        *slot = Arc::new(crls);
    }
    Ok(())
}

fn revoked_entries(
    conn: &mut DbConn,
    issuer_id: i64,
    now: chrono::NaiveDateTime,
) -> Result<Vec<RevokedEntry>, AppError> {
    Ok(Certificate::revoked_unexpired(conn, issuer_id, now)?
        .into_iter()
        .map(|(serial_hex, at, reason)| RevokedEntry {
            serial_hex,
            revoked_at: chrono::DateTime::from_timestamp(at, 0).map_or(now, |t| t.naive_utc()),
            reason: reason.unwrap_or(Reason::Unspecified),
        })
        .collect())
}

/// The validity a certificate gets from the configured number of days.
pub fn validity_days(configured: i32) -> i64 {
    i64::from(configured.clamp(1, 825))
}

/// Signs new CRLs from the database (one new CRL number for all) and serves them.
pub fn rebuild_crl(ctx: &Ctx) -> Result<(), AppError> {
    let _one_at_a_time = ctx.pki.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
    let mut conn = db::get(&ctx.pool)?;
    let number = db::write_tx(&mut conn, |c| Ok(Settings::next_crl_number(c)?))?;
    sign_crls(&mut conn, &ctx.pki, number)
}

/// Adopts a CRL another server process published (PostgreSQL, several processes): when
/// the database's CRL number is ahead of the one served here, re-sign under that number
/// without taking a new one, so processes never push each other's numbers up.
pub fn refresh_crl_if_stale(ctx: &Ctx) -> Result<bool, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let number = Settings::load(&mut conn)?.crl_number;
    if number <= ctx.pki.crl().number {
        return Ok(false);
    }
    let _one_at_a_time = ctx.pki.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
    sign_crls(&mut conn, &ctx.pki, number)?;
    Ok(true)
}

/// Records that a host fetched the trust bundle (a renewal, its CRL or the CA
/// certificates), while a CA migration waits for hosts to trust the new CA. Reads first:
/// a host that already reported since the migration began costs no write.
pub fn record_trust(ctx: &Ctx, host_id: &str) -> Result<(), AppError> {
    let set = ctx.pki.issuers();
    let Some(migration) = &set.migration else {
        return Ok(());
    };
    let since = migration.initiated_at;
    let mut conn = db::get(&ctx.pool)?;
    if issuer::trust_seen_since(&mut conn, host_id, since)? {
        return Ok(());
    }
    let now = db::now();
    db::write_tx(&mut conn, |c| {
        issuer::record_trust_seen(c, host_id, since, now)?;
        Ok(())
    })
}

/// After a revocation has committed: a failure here leaves the hourly rebuild to catch up.
pub fn rebuild_crl_after_revocation(ctx: &Ctx) {
    if let Err(e) = rebuild_crl(ctx) {
        log::error!("the CRL could not be rebuilt after a revocation: {e}");
        super::notifications::crl_failed(ctx, &e);
    }
}

/// How long renewals gather before the CRL is re-signed once for all of them.
pub const CRL_COALESCE: std::time::Duration = std::time::Duration::from_secs(2);

/// After a renewal superseded a certificate: the CRL is re-signed within about
/// `CRL_COALESCE`, once for every renewal of a burst, instead of once per renewal (each
/// re-signing takes a CRL number and, with many revoked certificates, tens of
/// milliseconds). A superseded certificate is not a compromised one, so a CRL that lags
/// by two seconds costs nothing; revocations by an administrator still rebuild at once.
pub fn rebuild_crl_soon(ctx: &Ctx) {
    ctx.pki.crl_dirty.store(true, Ordering::SeqCst);
    if ctx
        .pki
        .crl_worker
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return;
    }
    let worker = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("hostca-crl".into())
        .spawn(move || loop {
            let ctx = &worker;
            std::thread::sleep(CRL_COALESCE);
            if ctx.pki.crl_dirty.swap(false, Ordering::SeqCst) {
                rebuild_crl_after_revocation(ctx);
                continue;
            }
            ctx.pki.crl_worker.store(false, Ordering::SeqCst);
            // A renewal that marked the CRL dirty between the swap and the store saw a
            // worker still running: take the work back unless another thread already did.
            if !ctx.pki.crl_dirty.load(Ordering::SeqCst)
                || ctx
                    .pki
                    .crl_worker
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                return;
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the CRL thread ({e}): rebuilding the CRL now");
        ctx.pki.crl_dirty.store(false, Ordering::SeqCst);
        ctx.pki.crl_worker.store(false, Ordering::SeqCst);
        rebuild_crl_after_revocation(ctx);
    }
}

/// The host the server's own TLS certificates belong to. The certificates table needs a
/// host; this one is created with the first TLS certificate. Its name has a space, so it is
/// never a host name: no enrollment, mapping or token names it.
pub const SERVER_HOST_ID: &str = "00000000-0000-0000-0000-000000000000";
pub const SERVER_HOST_NAME: &str = "(hostca server)";

/// Records a TLS certificate the server issued to itself, in one transaction with its
/// audit event: listed and revocable like any other, and on the CRL once revoked. The
/// certificate it replaces (`previous`, this process's own) is revoked as superseded.
pub fn record_server_certificate(
    pool: &crate::db::Pool,
    cert: &crate::pki::issue::IssuedCert,
    names: &[String],
    previous: Option<&str>,
) -> Result<(), AppError> {
    use crate::models::host::{Host, NewHost};
    let mut conn = db::get(pool)?;
    db::write_tx(&mut conn, |c| {
        let now = db::now();
        if Host::find_by_host_id(c, SERVER_HOST_ID)?.is_none() {
            Host::insert(
                c,
                &NewHost {
                    host_id: SERVER_HOST_ID,
                    primary_name: SERVER_HOST_NAME,
                    created_at: now,
                    created_by: "system",
                },
            )?;
        }
        super::certificates::store_issued(
            c,
            cert,
            SERVER_HOST_ID,
            names,
            &super::certificates::Provenance::via(IssuedVia::Server),
            now,
        )?;
        if let Some(old) = previous {
            Certificate::revoke(c, old, Reason::Superseded, "system", now)?;
        }
        super::audit::record(
            c,
            &super::audit::Event::new(AuditCategory::Cert, "issue_tls", "system", &cert.serial)
                .describe(format!(
                    "TLS certificate {} issued to this server for {} until {} UTC{}",
                    cert.serial,
                    names.join(", "),
                    cert.not_after,
                    previous.map_or(String::new(), |p| format!(", superseding {p}"))
                )),
        )
    })
}

/// Whether a certificate has been revoked (an administrator revoking the server's TLS
/// certificate makes the server replace it).
pub fn is_revoked(pool: &crate::db::Pool, serial: &str) -> Result<bool, AppError> {
    let mut conn = db::get(pool)?;
    Ok(Certificate::find_by_serial(&mut conn, serial)?.is_some_and(|c| c.revoked_at.is_some()))
}
