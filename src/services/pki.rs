//! The CA as the running server holds it: loaded or created at start, and the CRL,
//! rebuilt after each revocation and hourly, served from memory.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::certificate::Certificate;
use crate::models::kinds::{AuditCategory, IssuedVia};
use crate::models::settings::Settings;
use crate::pki::ca::{self, Ca};
use crate::pki::crl::{self, RevokedEntry, SignedCrl};
use crate::pki::Reason;

pub struct PkiState {
    pub ca: Ca,
    crl: RwLock<Arc<SignedCrl>>,
    rebuilding: Mutex<()>,
    /// The certificate validity (days) last read from the settings: what a certificate
    /// signed before its request reaches the writer assumes (see `enroll::presign`).
    pub validity_days: AtomicI64,
    /// A renewal superseded a certificate that the served CRL does not list yet.
    crl_dirty: AtomicBool,
    /// A coalescing thread is running (see `rebuild_crl_soon`).
    crl_worker: AtomicBool,
}

impl PkiState {
    pub fn crl(&self) -> Arc<SignedCrl> {
        self.crl
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Loads the CA of this data directory, or creates it on the first start. A database
/// that already belongs to a CA never gets a second one: a missing or broken CA file is an
/// error that says what to restore.
pub fn load_or_create_ca(
    conn: &mut DbConn,
    dir: &Path,
    name: Option<&str>,
) -> Result<Ca, AppError> {
    let settings = Settings::load(conn)?;
    let files_exist = ca::cert_path(dir).exists() || ca::key_path(dir).exists();
    if !settings.ca_fingerprint.is_empty() || files_exist {
        let ca = Ca::load(dir).map_err(|e| {
            AppError::internal(format!(
                "{e}. This database belongs to the CA with SHA-256 fingerprint {}; restore {} and {} \
                 from a backup of the data directory. hostca will not create a second CA.",
                if settings.ca_fingerprint.is_empty() { "(unrecorded)" } else { &settings.ca_fingerprint },
                ca::cert_path(dir).display(),
                ca::key_path(dir).display()
            ))
        })?;
        if settings.ca_fingerprint.is_empty() {
            db::write_tx(conn, |c| Ok(Settings::set_ca_fingerprint(c, &ca.sha256)?))?;
        } else if settings.ca_fingerprint != ca.sha256 {
            return Err(AppError::internal(format!(
                "the CA in {} (SHA-256 {}) is not the CA of this database (SHA-256 {}); restore the matching ca.pem and ca.key",
                dir.display(),
                ca.sha256,
                settings.ca_fingerprint
            )));
        }
        return Ok(ca);
    }
    let default_name;
    let name = match name {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            let mut b = [0u8; 3];
            rand::fill(&mut b[..]);
            default_name = format!("CN=hostca CA {}", hex::encode_upper(b));
            &default_name
        }
    };
    let ca = Ca::create(name, db::now())?;
    ca.save(dir)?;
    db::write_tx(conn, |c| {
        Settings::set_ca_fingerprint(c, &ca.sha256)?;
        super::audit::record(
            c,
            &super::audit::Event::new(AuditCategory::SecConfig, "create_ca", "system", &ca.subject)
                .describe(format!("root CA created, SHA-256 {}", ca.sha256)),
        )
    })?;
    Ok(ca)
}

/// Takes the next CRL number (a short write), then reads the revoked certificates and
/// signs outside the write lock, so enrollments do not wait for a large CRL.
fn signed_crl(conn: &mut DbConn, ca: &Ca) -> Result<SignedCrl, AppError> {
    let number = db::write_tx(conn, |c| Ok(Settings::next_crl_number(c)?))?;
    let now = db::now();
    let entries = revoked_entries(conn, now)?;
    Ok(crl::build(ca, number, &entries, now)?)
}

fn revoked_entries(
    conn: &mut DbConn,
    now: chrono::NaiveDateTime,
) -> Result<Vec<RevokedEntry>, AppError> {
    Ok(Certificate::revoked_unexpired(conn, now)?
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

pub fn start(conn: &mut DbConn, ca: Ca) -> Result<PkiState, AppError> {
    let crl = signed_crl(conn, &ca)?;
    let validity = Settings::load(conn)?.certificate_validity_days;
    Ok(PkiState {
        ca,
        crl: RwLock::new(Arc::new(crl)),
        rebuilding: Mutex::new(()),
        validity_days: AtomicI64::new(validity_days(validity)),
        crl_dirty: AtomicBool::new(false),
        crl_worker: AtomicBool::new(false),
    })
}

/// Signs a new CRL from the database and serves it from then on.
pub fn rebuild_crl(ctx: &Ctx) -> Result<(), AppError> {
    let _one_at_a_time = ctx.pki.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
    let mut conn = db::get(&ctx.pool)?;
    let crl = signed_crl(&mut conn, &ctx.pki.ca)?;
    if let Ok(mut slot) = ctx.pki.crl.write() {
        *slot = Arc::new(crl);
    }
    Ok(())
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
    let now = db::now();
    let entries = revoked_entries(&mut conn, now)?;
    let crl = crl::build(&ctx.pki.ca, number, &entries, now)?;
    if let Ok(mut slot) = ctx.pki.crl.write() {
        *slot = Arc::new(crl);
    }
    Ok(true)
}

/// After a revocation has committed: a failure here leaves the hourly rebuild to catch up.
pub fn rebuild_crl_after_revocation(ctx: &Ctx) {
    if let Err(e) = rebuild_crl(ctx) {
        log::error!("the CRL could not be rebuilt after a revocation: {e}");
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
