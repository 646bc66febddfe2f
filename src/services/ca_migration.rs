//! CA migration, NetBackup's flow: **initiate** (a new CA, trusted but not signing),
//! **activate** (it signs; renewals move hosts over), **complete** (the old CA signs only
//! its CRL), **decommission** (the old CA leaves the trust bundle). Each step takes a
//! reason, is audited in category CA, and moves the migration by a conditional update so
//! that two administrators pressing the same button move it once. Also: the root key
//! leaving the server (export, removal) and coming back for one signature.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::audit::{self, Event};
use super::pki::{self as pki_state, key_location_label};
use super::{Actor, Ctx};
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::issuer::{
    self, CaMigration, IssuerRole, IssuerRow, IssuerState, MigrationPhase, NewCaMigration,
    PendingHost,
};
use crate::models::kinds::{AuditCategory, Role};
use crate::models::settings::Settings;
use crate::pki::ca::{self, Ca};
use crate::pki::signer::{CaKey, CaKeyType};

/// How long "Mark all for renewal" opens each pending host's early renewal.
pub const MARK_RENEWAL_HOURS: i64 = 24;
/// The magic line of an exported root key.
pub const ROOT_KEY_MAGIC: &[u8] = b"HOSTCA-ROOT-KEY-1\n";

/// An exported root key brought back for one signature: the file and its passphrase.
pub struct RootKeyFile {
    pub file: Vec<u8>,
    pub passphrase: String,
}

impl std::fmt::Debug for RootKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKeyFile(..)")
    }
}

#[derive(Debug, Default)]
pub struct InitiateRequest {
    pub reason: String,
    /// A whole new root (for a key type or algorithm change); otherwise a new issuing CA
    /// under the current root. An installation whose one root signs hosts always gets a
    /// new root: that root has pathLen 0 and cannot sign a CA.
    pub new_root: bool,
    /// The new CA's key type (default: the current one's).
    pub key_type: Option<String>,
    /// A PKCS#11 URI for the new issuing CA's key (default: a key file).
    pub key_uri: Option<String>,
    /// The root's exported key, when the root key is not on the server.
    pub root_key: Option<RootKeyFile>,
}

fn checked_reason(reason: &str) -> Result<String, AppError> {
    required_reason(reason, "every step of a CA migration")
}

/// A reason an audited administrator action cannot go without; `what` names the action
/// in the refusal ("every step of a CA migration").
pub(super) fn required_reason(reason: &str, what: &str) -> Result<String, AppError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::Unprocessable(format!(
            "give a reason: {what} is audited with its reason"
        )));
    }
    super::tokens::check_reason(reason)
        .map_err(|e| AppError::BadRequest(format!("reason: {e}")))?;
    Ok(reason.to_string())
}

/// The migration the next step applies to, in the phase that step needs.
fn current_in(
    conn: &mut DbConn,
    phase: MigrationPhase,
    step: &str,
) -> Result<CaMigration, AppError> {
    match CaMigration::latest(conn)? {
        Some(m) if m.phase == phase => Ok(m),
        Some(m) if m.phase != MigrationPhase::Decommissioned => Err(AppError::Conflict(format!(
            "the CA migration #{} is {}: {step} needs one that is {}",
            m.id,
            m.phase.label().to_lowercase(),
            phase.label().to_lowercase()
        ))),
        _ => Err(AppError::Conflict(format!(
            "no CA migration is {}: {step} needs one (initiate a migration first)",
            phase.label().to_lowercase()
        ))),
    }
}

fn step_event(action: &'static str, actor: &Actor, m: &CaMigration, reason: &str) -> Event {
    Event::new(
        AuditCategory::Ca,
        action,
        &actor.username,
        &format!("migration #{}", m.id),
    )
    .reason(reason)
}

/// A root's key, from the server or from an exported file checked against the root.
fn root_with_key(root: &Ca, file: Option<&RootKeyFile>) -> Result<Option<Ca>, AppError> {
    if root.has_key() {
        return Ok(None);
    }
    let Some(file) = file else {
        return Err(AppError::Unprocessable(format!(
            "the key of the root CA {} is offline: give its exported key (hostca ca migrate initiate --root-key FILE)",
            root.subject
        )));
    };
    let pem = super::backup::open(
        ROOT_KEY_MAGIC,
        &file.file,
        &file.passphrase,
        "root key file",
    )?
    .ok_or_else(|| {
        AppError::BadRequest("that is not a root key exported by hostca ca export-root".into())
    })?;
    let pem = String::from_utf8(pem)
        .map_err(|_| AppError::BadRequest("the root key file is damaged".into()))?;
    let key = rcgen::KeyPair::from_pem(&pem)
        .map_err(|e| AppError::BadRequest(format!("the root key file holds no usable key: {e}")))?;
    let ca = Ca::from_pem(&root.cert_pem)?
        .with_key(CaKey::File(key))
        .map_err(|_| {
            AppError::BadRequest(format!(
                "the key in that file is not the key of the root CA {}",
                root.subject
            ))
        })?;
    Ok(Some(ca))
}

/// A new object's URI in the token a PKCS#11 key location names (`None` for a key file):
/// the same token, `object=hostca-issuing-<6 hex>`, without the old object's id.
fn sibling_object(location: &str) -> Option<String> {
    let path = location.strip_prefix("pkcs11:")?;
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut b = [0u8; 3];
    rand::fill(&mut b[..]);
    let mut parts: Vec<String> = path
        .split(';')
        .filter(|a| !a.starts_with("object=") && !a.starts_with("id=") && !a.is_empty())
        .map(str::to_string)
        .collect();
    parts.push(format!("object=hostca-issuing-{}", hex::encode(b)));
    let mut uri = format!("pkcs11:{}", parts.join(";"));
    if let Some(q) = query {
        uri.push('?');
        uri.push_str(q);
    }
    Some(uri)
}

/// Initiate: creates the new CA (pending, in the trust bundle from now on).
pub fn initiate(ctx: &Ctx, actor: &Actor, req: &InitiateRequest) -> Result<CaMigration, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Ca,
        "ca_migration_initiate",
        "CA",
    )?;
    let reason = checked_reason(&req.reason)?;
    if let Some(m) =
        CaMigration::latest(&mut conn)?.filter(|m| m.phase != MigrationPhase::Decommissioned)
    {
        return Err(AppError::Conflict(format!(
            "CA migration #{} is still {}: finish it (decommission) before starting another",
            m.id,
            m.phase.label().to_lowercase()
        )));
    }
    let set = ctx.pki.issuers();
    let from = set.signing_row().clone();
    let from_ca = set.signing().clone();
    let kind = match req.key_type.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(k) => CaKeyType::parse(k)?,
        None => from_ca.key_type.unwrap_or(CaKeyType::P256),
    };
    let new_root = req.new_root || from.role == IssuerRole::RootIssuing || from.parent_id.is_none();
    let now = db::now();
    let settings = Settings::load(&mut conn)?;
    let permitted = crate::names::stored_list(&settings.allowed_domains);
    let keys = ctx.pki.keys();
    // The CA that signs the new issuing CA: a new root, or the current root (with its key
    // from the server or from the exported file).
    let (root, root_location, root_id) = if new_root {
        let mut b = [0u8; 3];
        rand::fill(&mut b[..]);
        let name = format!("CN=hostca Root CA {}", hex::encode_upper(b));
        let (key, location) = keys.create("root", kind, None)?;
        (
            std::sync::Arc::new(Ca::create_root(&name, key, now, ca::ROOT_VALIDITY_DAYS)?),
            Some(location),
            None,
        )
    } else {
        let parent_id = from.parent_id.unwrap_or(from.id);
        let parent = set
            .get(parent_id)
            .ok_or_else(|| AppError::internal(format!("the root CA #{parent_id} is not loaded")))?;
        // The root as this process holds it (its key loaded), or with its exported key.
        let root = match root_with_key(&parent.ca, req.root_key.as_ref())? {
            Some(with_key) => std::sync::Arc::new(with_key),
            None => parent.ca.clone(),
        };
        (root, None, Some(parent_id))
    };
    let siblings = set
        .issuers
        .iter()
        .filter(|l| l.row.role == IssuerRole::Issuing)
        .count();
    // A key in a token stays in that token: the new CA's key is a new object beside it,
    // unless the request names another place.
    let key_uri = req
        .key_uri
        .clone()
        .or_else(|| sibling_object(&from.key_location));
    let (key, location) = keys.create("issuing", kind, key_uri.as_deref())?;
    let issuing = Ca::create_issuing(
        &pki_state::issuing_name(&root.subject.replace(", ", ","), siblings + 1),
        key,
        &root,
        now,
        ca::ISSUING_VALIDITY_DAYS,
        &permitted,
    )?;
    let arl = match root_location {
        Some(_) => Some(crate::pki::crl::build_for(
            &root,
            0,
            &[],
            now,
            Duration::days(crate::pki::crl::ARL_NEXT_UPDATE_DAYS),
        )?),
        None => None,
    };
    let migration = db::write_tx(&mut conn, |c| {
        let root_id = match (&root_location, root_id) {
            (Some(location), _) => {
                let row = pki_state::store_issuer(
                    c,
                    &root,
                    IssuerRole::Root,
                    IssuerState::Pending,
                    None,
                    location,
                    &actor.username,
                    &reason,
                    now,
                )?;
                if let Some(arl) = &arl {
                    IssuerRow::set_arl(c, row.id, &arl.der)?;
                }
                row.id
            }
            (None, Some(id)) => id,
            (None, None) => return Err(AppError::internal("a new issuing CA needs a root")),
        };
        let to = pki_state::store_issuer(
            c,
            &issuing,
            IssuerRole::Issuing,
            IssuerState::Pending,
            Some(root_id),
            &location,
            &actor.username,
            &reason,
            now,
        )?;
        let m = CaMigration::insert(
            c,
            &NewCaMigration {
                from_issuer_id: from.id,
                to_issuer_id: to.id,
                phase: MigrationPhase::Initiated,
                reason: &reason,
                initiated_by: &actor.username,
                initiated_at: now,
            },
        )?;
        audit::record(
            c,
            &step_event("ca_migration_initiate", actor, &m, &reason).describe(format!(
                "CA migration #{} initiated from {} (#{}) to {} (#{}{}, {}, key {}); the trust bundle now carries both",
                m.id,
                from.subject,
                from.id,
                issuing.subject,
                to.id,
                if root_location.is_some() { ", under a new root" } else { "" },
                kind.label(),
                key_location_label(&location)
            )),
        )?;
        Ok(m)
    })?;
    drop(conn);
    pki_state::reload_if_changed(ctx)?;
    Ok(migration)
}

/// The start of a migration step: an administrator's connection (a refusal audited), the
/// checked reason, and the migration in the phase the step needs.
fn begin_step(
    ctx: &Ctx,
    actor: &Actor,
    action: &'static str,
    reason: &str,
    phase: MigrationPhase,
    step: &str,
) -> Result<(crate::db::PooledConn, String, CaMigration), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Ca,
        action,
        "CA",
    )?;
    let reason = checked_reason(reason)?;
    let m = current_in(&mut conn, phase, step)?;
    Ok((conn, reason, m))
}

/// Moves the migration from one phase to the next, or says another request moved it.
fn advance(
    c: &mut db::WriteTx,
    m: &CaMigration,
    from: MigrationPhase,
    to: MigrationPhase,
    now: NaiveDateTime,
    forced: bool,
) -> Result<(), AppError> {
    if CaMigration::advance(c, m.id, from, to, now, forced)? == 0 {
        return Err(AppError::Conflict(format!(
            "CA migration #{} was moved meanwhile: reload the page",
            m.id
        )));
    }
    Ok(())
}

/// After a step committed: this process takes up the changed CAs at once (others within
/// seconds), and the caller gets the migration as it now stands.
fn finish_step(ctx: &Ctx, m: CaMigration) -> Result<CaMigration, AppError> {
    pki_state::reload_if_changed(ctx)?;
    let mut conn = db::get(&ctx.pool)?;
    Ok(CaMigration::latest(&mut conn)?.unwrap_or(m))
}

/// Activate: the new CA signs every new certificate; the old one only its CRL.
pub fn activate(ctx: &Ctx, actor: &Actor, reason: &str) -> Result<CaMigration, AppError> {
    let (mut conn, reason, m) = begin_step(
        ctx,
        actor,
        "ca_migration_activate",
        reason,
        MigrationPhase::Initiated,
        "activate",
    )?;
    let now = db::now();
    let to = IssuerRow::find(&mut conn, m.to_issuer_id)?.ok_or_else(|| {
        AppError::internal(format!(
            "the migration's new CA #{} is gone",
            m.to_issuer_id
        ))
    })?;
    db::write_tx(&mut conn, |c| {
        advance(
            c,
            &m,
            MigrationPhase::Initiated,
            MigrationPhase::Activated,
            now,
            false,
        )?;
        IssuerRow::set_state(
            c,
            m.to_issuer_id,
            IssuerState::Pending,
            IssuerState::Active,
            now,
        )?;
        if let Some(root) = to.parent_id {
            IssuerRow::set_state(c, root, IssuerState::Pending, IssuerState::Active, now)?;
        }
        IssuerRow::set_state(
            c,
            m.from_issuer_id,
            IssuerState::Active,
            IssuerState::Retiring,
            now,
        )?;
        audit::record(
            c,
            &step_event("ca_migration_activate", actor, &m, &reason).describe(format!(
                "CA migration #{} activated: {} (#{}) signs new certificates; hosts move over as they renew",
                m.id, to.subject, to.id
            )),
        )
    })?;
    drop(conn);
    finish_step(ctx, m)
}

/// Complete: the old CA stops signing anything but its CRL. Refused while it still has
/// active certificates, unless `force` (with the reason saying why).
pub fn complete(
    ctx: &Ctx,
    actor: &Actor,
    reason: &str,
    force: bool,
) -> Result<CaMigration, AppError> {
    let (mut conn, reason, m) = begin_step(
        ctx,
        actor,
        "ca_migration_complete",
        reason,
        MigrationPhase::Activated,
        "complete",
    )?;
    let now = db::now();
    let left = IssuerRow::active_leaves(&mut conn, m.from_issuer_id, now)?;
    if left > 0 && !force {
        let hosts = issuer::pending_renewal_count(&mut conn, m.from_issuer_id, now)?;
        return Err(AppError::Conflict(format!(
            "the old CA still has {left} active certificate(s) ({hosts} host(s) pending renewal): wait for them to renew, use Mark all for renewal, or force completion with a reason"
        )));
    }
    db::write_tx(&mut conn, |c| {
        advance(
            c,
            &m,
            MigrationPhase::Activated,
            MigrationPhase::Completed,
            now,
            left > 0,
        )?;
        IssuerRow::set_state(
            c,
            m.from_issuer_id,
            IssuerState::Retiring,
            IssuerState::Retired,
            now,
        )?;
        audit::record(
            c,
            &step_event("ca_migration_complete", actor, &m, &reason).describe(if left > 0 {
                format!("CA migration #{} completed by force with {left} certificate(s) of the old CA still active", m.id)
            } else {
                format!("CA migration #{} completed: no active certificate of the old CA remains", m.id)
            }),
        )
    })?;
    drop(conn);
    finish_step(ctx, m)
}

/// Decommission: the old CA (and its root, when no CA in the bundle remains under it)
/// leaves the trust bundle. Its CRL stays published until its last certificate expires.
pub fn decommission(ctx: &Ctx, actor: &Actor, reason: &str) -> Result<CaMigration, AppError> {
    let (mut conn, reason, m) = begin_step(
        ctx,
        actor,
        "ca_migration_decommission",
        reason,
        MigrationPhase::Completed,
        "decommission",
    )?;
    let now = db::now();
    let rows = IssuerRow::all(&mut conn)?;
    let from = rows
        .iter()
        .find(|r| r.id == m.from_issuer_id)
        .cloned()
        .ok_or_else(|| AppError::internal("the migration's old CA is gone"))?;
    let to = rows
        .iter()
        .find(|r| r.id == m.to_issuer_id)
        .cloned()
        .ok_or_else(|| AppError::internal("the migration's new CA is gone"))?;
    // The old root goes too when it is not the new CA's root and signs nothing else left.
    let old_root = from.parent_id.filter(|root| {
        Some(*root) != to.parent_id
            && !rows
                .iter()
                .any(|r| r.parent_id == Some(*root) && r.id != from.id && r.in_bundle())
    });
    db::write_tx(&mut conn, |c| {
        advance(
            c,
            &m,
            MigrationPhase::Completed,
            MigrationPhase::Decommissioned,
            now,
            false,
        )?;
        IssuerRow::decommission(c, from.id, now)?;
        if let Some(root) = old_root {
            IssuerRow::set_state(c, root, IssuerState::Active, IssuerState::Retired, now)?;
            IssuerRow::decommission(c, root, now)?;
        }
        audit::record(
            c,
            &step_event("ca_migration_decommission", actor, &m, &reason).describe(format!(
                "CA migration #{} decommissioned: {} (#{}){} left the trust bundle",
                m.id,
                from.subject,
                from.id,
                old_root.map_or(String::new(), |r| format!(" and its root #{r}"))
            )),
        )
    })?;
    drop(conn);
    finish_step(ctx, m)
}

/// Opens one early renewal for every host pending renewal (ACME's renewalInfo then says
/// "now" too). Returns how many hosts were marked.
pub fn mark_all_for_renewal(ctx: &Ctx, actor: &Actor, reason: &str) -> Result<usize, AppError> {
    use crate::db::schema::hosts;
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::SecurityAdmin,
        AuditCategory::Ca,
        "ca_migration_mark_renewal",
        "CA",
    )?;
    let reason = checked_reason(reason)?;
    let m = CaMigration::latest(&mut conn)?
        .filter(|m| {
            matches!(
                m.phase,
                MigrationPhase::Activated | MigrationPhase::Completed
            )
        })
        .ok_or_else(|| {
            AppError::Conflict("hosts can move only once a CA migration is activated".into())
        })?;
    let now = db::now();
    let until = now + Duration::hours(MARK_RENEWAL_HOURS);
    let pending: Vec<String> = issuer::pending_renewal_query(m.from_issuer_id, now)
        .select(hosts::host_id)
        .load(&mut *conn)?;
    db::write_tx(&mut conn, |c| {
        let n = super::renewal::mark_for_renewal(c, &pending, until)?;
        audit::record(
            c,
            &step_event("ca_migration_mark_renewal", actor, &m, &reason).describe(format!(
                "{n} host(s) pending renewal marked for one early renewal until {} UTC",
                until.format("%Y-%m-%d %H:%M")
            )),
        )?;
        Ok(n)
    })
}

/// One CA as the CA page and the admin API show it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IssuerView {
    pub id: i64,
    pub role: IssuerRole,
    pub state: IssuerState,
    pub parent_id: Option<i64>,
    pub subject: String,
    pub key_type: String,
    /// Where the key is: `file:NAME`, a PKCS#11 URI, or `offline`.
    pub key_location: String,
    /// Whether this server holds the key now.
    pub key_online: bool,
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    pub fingerprint_sha256: String,
    pub in_bundle: bool,
    /// Whether new certificates come from it.
    pub signing: bool,
    /// Where its CRL is (CAs that sign hosts, and roots with an ARL).
    pub crl_path: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub not_after_at: NaiveDateTime,
    #[serde(skip)]
    #[schema(ignore)]
    pub not_before_at: NaiveDateTime,
}

/// Everything the CA page shows of the CAs and their migration, judged at `now`.
pub struct Overview {
    pub issuers: Vec<IssuerView>,
    pub migration: Option<CaMigration>,
    pub history: Vec<CaMigration>,
    pub pending_trust: i64,
    pub pending_renewal: i64,
    /// The first hosts of each list (the CSV has them all).
    pub trust_sample: Vec<PendingHost>,
    pub renewal_sample: Vec<PendingHost>,
    /// Active certificates left on the old CA (the server's own included).
    pub old_active: i64,
    pub now: NaiveDateTime,
}

pub const SAMPLE: i64 = 50;

fn at(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn issuer_views(ctx: &Ctx) -> Vec<IssuerView> {
    let set = ctx.pki.issuers();
    let signing = set.signing_row().id;
    set.issuers
        .iter()
        .map(|l| IssuerView {
            id: l.row.id,
            role: l.row.role,
            state: l.row.state,
            parent_id: l.row.parent_id,
            subject: l.row.subject.clone(),
            key_type: l.row.key_type.clone(),
            key_location: l.row.key_location.clone(),
            key_online: l.ca.has_key(),
            not_before: at(l.row.not_before),
            not_after: at(l.row.not_after),
            fingerprint_sha256: l.row.fingerprint_sha256.clone(),
            in_bundle: l.row.in_bundle(),
            signing: l.row.id == signing,
            crl_path: (set.publishing.contains(&l.row.id) || l.row.arl_der.is_some())
                .then(|| crate::pki::issue::crl_path(l.row.id)),
            not_after_at: l.row.not_after,
            not_before_at: l.row.not_before,
        })
        .collect()
}

/// What the CA page shows: the CAs, the migration in progress and its two lists.
pub fn overview(ctx: &Ctx) -> Result<Overview, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    let history = CaMigration::all(&mut conn)?;
    let migration = history
        .first()
        .filter(|m| m.phase != MigrationPhase::Decommissioned)
        .cloned();
    let (mut pending_trust, mut pending_renewal, mut old_active) = (0, 0, 0);
    let (mut trust_sample, mut renewal_sample) = (Vec::new(), Vec::new());
    if let Some(m) = &migration {
        pending_trust = issuer::pending_trust_count(&mut conn, m.initiated_at, now)?;
        pending_renewal = issuer::pending_renewal_count(&mut conn, m.from_issuer_id, now)?;
        trust_sample = issuer::pending_trust(&mut conn, m.initiated_at, now, Some(SAMPLE))?;
        renewal_sample = issuer::pending_renewal(&mut conn, m.from_issuer_id, now, Some(SAMPLE))?;
        old_active = IssuerRow::active_leaves(&mut conn, m.from_issuer_id, now)?;
    }
    Ok(Overview {
        issuers: issuer_views(ctx),
        migration,
        history,
        pending_trust,
        pending_renewal,
        trust_sample,
        renewal_sample,
        old_active,
        now,
    })
}

/// Which of the two lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Trust,
    Renewal,
}

/// Every host of one list, for the CSV and the admin API.
pub fn pending_hosts(ctx: &Ctx, which: Pending) -> Result<Vec<PendingHost>, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    let Some(m) =
        CaMigration::latest(&mut conn)?.filter(|m| m.phase != MigrationPhase::Decommissioned)
    else {
        return Ok(Vec::new());
    };
    Ok(match which {
        Pending::Trust => issuer::pending_trust(&mut conn, m.initiated_at, now, None)?,
        Pending::Renewal => issuer::pending_renewal(&mut conn, m.from_issuer_id, now, None)?,
    })
}

/// The list as CSV: host_id, name, trust_seen_at.
pub fn pending_csv(rows: &[PendingHost]) -> String {
    let mut out = String::from("host_id,name,trust_seen_at\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{}\r\n",
            r.host_id,
            super::audit_log::csv_field(&r.primary_name),
            r.trust_seen_at.map(at).unwrap_or_default()
        ));
    }
    out
}

/// `hostca ca export-root`: the root key sealed under a passphrase (argon2id,
/// ChaCha20-Poly1305), for the safe it goes to. Run on the server's data directory.
pub fn export_root(
    pool: &crate::db::Pool,
    pki: &pki_state::PkiState,
    passphrase: &str,
) -> Result<(Vec<u8>, String), AppError> {
    if passphrase.chars().count() < super::backup::MIN_PASSPHRASE {
        return Err(AppError::BadRequest(format!(
            "the passphrase must have at least {} characters",
            super::backup::MIN_PASSPHRASE
        )));
    }
    let set = pki.issuers();
    let root = current_root(&set)?;
    if root.row.key_offline() {
        return Err(AppError::Conflict(format!(
            "the key of the root CA {} is already offline",
            root.row.subject
        )));
    }
    let pem = pki.keys().file_key_pem(&root.row.key_location)?;
    let sealed = super::backup::seal(ROOT_KEY_MAGIC, pem.as_bytes(), passphrase)?;
    let mut conn = db::get(pool)?;
    audit::record_alone(
        &mut conn,
        &Event::new(
            AuditCategory::Ca,
            "export_root_key",
            "console",
            &root.row.subject,
        )
        .describe(format!(
            "the key of root CA #{} exported, sealed under a passphrase",
            root.row.id
        )),
    )?;
    Ok((sealed, root.row.subject.clone()))
}

/// The root above the CA that signs new certificates.
fn current_root(set: &pki_state::IssuerSet) -> Result<&pki_state::Loaded, AppError> {
    let signing = set.signing_row();
    let root_id = signing.parent_id.ok_or_else(|| {
        AppError::Conflict(
            "this installation's one root CA signs hosts itself (from before the CA hierarchy): its key must stay on the server; a CA migration gives it a root that can go offline".into(),
        )
    })?;
    set.get(root_id)
        .ok_or_else(|| AppError::internal("the root CA is not loaded"))
}

/// `hostca ca remove-root-key`: deletes the root's key file and records the root as
/// offline. `exported` must be a root key file that opens with `passphrase` and holds
/// the root's key, so the key cannot be removed without a working copy.
pub fn remove_root_key(
    pool: &crate::db::Pool,
    pki: &pki_state::PkiState,
    exported: &RootKeyFile,
) -> Result<String, AppError> {
    let set = pki.issuers();
    let root = current_root(&set)?;
    if root.row.key_offline() {
        return Err(AppError::Conflict(format!(
            "the key of the root CA {} is already offline",
            root.row.subject
        )));
    }
    let cert_only = Ca::from_pem(&root.row.cert_pem)?;
    root_with_key(&cert_only, Some(exported))?;
    let path = pki.keys().file_path(&root.row.key_location).ok_or_else(|| {
        AppError::Conflict(format!(
            "the root key is at {}, not in a key file: remove it from the token with the token's own tools",
            root.row.key_location
        ))
    })?;
    let mut conn = db::get(pool)?;
    db::write_tx(&mut conn, |c| {
        IssuerRow::set_key_location(c, root.row.id, issuer::OFFLINE)?;
        audit::record(
            c,
            &Event::new(AuditCategory::Ca, "remove_root_key", "console", &root.row.subject).describe(format!(
                "the key of root CA #{} removed from the server ({}); it signs again only from its exported file",
                root.row.id,
                path.display()
            )),
        )
    })?;
    std::fs::remove_file(&path)
        .map_err(|e| AppError::internal_from(format!("cannot remove {}", path.display()), e))?;
    Ok(format!(
        "{} is offline: the key file {} is removed",
        root.row.subject,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::sibling_object;

    #[test]
    fn a_new_key_goes_beside_the_old_one_in_its_token() {
        assert_eq!(sibling_object("file:ca-issuing-abc.key"), None);
        assert_eq!(sibling_object("offline"), None);
        let uri = sibling_object("pkcs11:token=hostca;object=issuing;id=%01%02").unwrap();
        assert!(
            uri.starts_with("pkcs11:token=hostca;object=hostca-issuing-"),
            "{uri}"
        );
        assert!(
            !uri.contains("id=") && !uri.contains("object=issuing;"),
            "{uri}"
        );
        let uri = sibling_object("pkcs11:token=hsm;serial=42;object=a?module-path=/m.so").unwrap();
        assert!(
            uri.starts_with("pkcs11:token=hsm;serial=42;object=hostca-issuing-"),
            "{uri}"
        );
        assert!(uri.ends_with("?module-path=/m.so"), "{uri}");
    }
}
