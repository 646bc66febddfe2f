//! Audit events, chained: each event stores the hash of the one before it, so a row
//! edited or removed by hand shows as a break at that row.
//!
//! The chain is keyed (chain 2): HMAC-SHA256 with the data directory's `audit.key` over
//! length-prefixed fields, so that someone who can write the database but cannot read the
//! key cannot re-hash what they changed. Databases from before the key keep their old
//! SHA-256 chain (chain 1) verifiable up to the switch, which is itself an event: re-hashing
//! the old rows with the key instead would vouch, with the key, for whatever had been done
//! to them before, and would change hashes already exported.
//!
//! Every committed event is also appended, as a JSON line with its hash, to an append-only
//! sink (`<data-dir>/audit.log`, another file, or standard output for a SIEM): rows removed
//! from the end of the table, which no chain can show, show there.
//!
//! Refusals of unauthenticated requests are aggregated (see `refused`).

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{NaiveDateTime, Timelike};
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn, Pool, WriteTx};
use crate::error::AppError;
use crate::models::audit_event::{AuditEvent, NewAuditEvent, StoredEvent};
use crate::models::kinds::{AuditCategory, Outcome};
use crate::models::settings::Settings;
use crate::secrets::AuditKey;

/// The hash every chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain versions stored in `audit_events.chain`.
pub const CHAIN_SHA256: i32 = 1;
pub const CHAIN_KEYED: i32 = 2;

/// The default audit sink, in the data directory.
pub const AUDIT_LOG_FILE: &str = "audit.log";

#[derive(Clone, Debug)]
pub struct Event {
    pub category: AuditCategory,
    pub action: &'static str,
    pub actor: String,
    pub target: String,
    pub description: String,
    pub reason: String,
    pub outcome: Outcome,
    /// How many occurrences this event stands for (aggregated refusals), with the first
    /// and last time.
    pub occurrences: i64,
    pub first_at: Option<NaiveDateTime>,
    pub last_at: Option<NaiveDateTime>,
}

impl Event {
    pub fn new(category: AuditCategory, action: &'static str, actor: &str, target: &str) -> Event {
        Event {
            category,
            action,
            actor: actor.to_string(),
            target: target.to_string(),
            description: String::new(),
            reason: String::new(),
            outcome: Outcome::Success,
            occurrences: 1,
            first_at: None,
            last_at: None,
        }
    }

    pub fn describe(mut self, description: impl Into<String>) -> Event {
        self.description = description.into();
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.reason = reason.into();
        self
    }

    pub fn failed(mut self) -> Event {
        self.outcome = Outcome::Failure;
        self
    }
}

pub fn format_at(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The old chain (chain 1), kept to verify events written before the key.
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev: &str,
    at: NaiveDateTime,
    category: &str,
    action: &str,
    actor: &str,
    target: &str,
    description: &str,
    reason: &str,
    outcome: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        &format_at(at),
        category,
        action,
        actor,
        target,
        description,
        reason,
        outcome,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

fn put(mac: &mut hmac::Hmac<Sha256>, field: &[u8]) {
    // A length before each field: no choice of field contents can shift a boundary.
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

fn optional_at(t: Option<NaiveDateTime>) -> String {
    t.map(format_at).unwrap_or_default()
}

/// The keyed chain (chain 2): HMAC-SHA256 over every stored field, each length-prefixed.
#[allow(clippy::too_many_arguments)]
fn keyed_hash(
    key: &AuditKey,
    prev: &str,
    at: NaiveDateTime,
    category: &str,
    action: &str,
    actor: &str,
    target: &str,
    description: &str,
    reason: &str,
    outcome: &str,
    occurrences: i64,
    first_at: Option<NaiveDateTime>,
    last_at: Option<NaiveDateTime>,
) -> String {
    let mut mac = key.mac();
    put(&mut mac, b"hostca audit chain 2");
    for part in [
        prev.as_bytes(),
        format_at(at).as_bytes(),
        category.as_bytes(),
        action.as_bytes(),
        actor.as_bytes(),
        target.as_bytes(),
        description.as_bytes(),
        reason.as_bytes(),
        outcome.as_bytes(),
        &occurrences.to_be_bytes(),
        optional_at(first_at).as_bytes(),
        optional_at(last_at).as_bytes(),
    ] {
        put(&mut mac, part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The hash a stored event should have, by its chain version.
fn expected_hash(key: &AuditKey, prev: &str, ev: &StoredEvent) -> Option<String> {
    match ev.chain {
        CHAIN_SHA256 => Some(chain_hash(
            prev,
            ev.at,
            &ev.category,
            &ev.action,
            &ev.actor,
            &ev.target,
            &ev.description,
            &ev.reason,
            &ev.outcome,
        )),
        CHAIN_KEYED => Some(keyed_hash(
            key,
            prev,
            ev.at,
            &ev.category,
            &ev.action,
            &ev.actor,
            &ev.target,
            &ev.description,
            &ev.reason,
            &ev.outcome,
            ev.occurrences,
            ev.first_at,
            ev.last_at,
        )),
        _ => None,
    }
}

/// The MAC over the settings that say where verification starts (the retention anchor)
/// and where the old unkeyed chain ends: moving either by hand breaks it.
fn seal(key: &AuditKey, anchor_id: i64, anchor_hash: &str, legacy_through: i64) -> String {
    let mut mac = key.mac();
    put(&mut mac, b"hostca audit seal");
    put(&mut mac, &anchor_id.to_be_bytes());
    put(&mut mac, anchor_hash.as_bytes());
    put(&mut mac, &legacy_through.to_be_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn seal_holds(key: &AuditKey, s: &Settings) -> bool {
    if s.audit_anchor_id == 0 && s.audit_legacy_through == 0 {
        // Nothing moved: verification starts at the genesis and every event is keyed.
        return true;
    }
    s.audit_seal
        == seal(
            key,
            s.audit_anchor_id,
            &s.audit_anchor_hash,
            s.audit_legacy_through,
        )
}

// ---------------------------------------------------------------------------------------
// Per data directory: the key, the sink and the refusal aggregator.

/// Where committed events are appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    File(PathBuf),
    Stdout,
}

impl SinkTarget {
    /// `--audit-log`: `-` is standard output; nothing is `<data-dir>/audit.log`.
    pub fn from_flag(data_dir: &Path, flag: Option<&str>) -> SinkTarget {
        match flag.map(str::trim).filter(|f| !f.is_empty()) {
            Some("-") => SinkTarget::Stdout,
            Some(path) => SinkTarget::File(PathBuf::from(path)),
            None => SinkTarget::File(data_dir.join(AUDIT_LOG_FILE)),
        }
    }
}

fn open_sink(target: &SinkTarget) -> Result<Box<dyn Write + Send>, AppError> {
    use std::os::unix::fs::OpenOptionsExt;
    match target {
        SinkTarget::Stdout => Ok(Box::new(std::io::stdout())),
        SinkTarget::File(path) => {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    AppError::internal_from(
                        format!("cannot open the audit log {}", path.display()),
                        e,
                    )
                })?;
            Ok(Box::new(f))
        }
    }
}

/// One data directory's audit state, found by the database's key id (`record`) or by the
/// data directory (`Ctx`). Several applications in one process (the tests) each have
/// their own.
struct Scope {
    key: AuditKey,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    refusals: Mutex<HashMap<RefusalKey, Refusals>>,
}

#[derive(Default)]
struct Registry {
    by_key: HashMap<String, Arc<Scope>>,
    by_dir: HashMap<PathBuf, Arc<Scope>>,
}

static REGISTRY: RwLock<Option<Registry>> = RwLock::new(None);

fn scope_by_key(key_id: &str) -> Option<Arc<Scope>> {
    let r = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    r.as_ref().and_then(|r| r.by_key.get(key_id).cloned())
}

fn scope_by_dir(dir: &Path) -> Option<Arc<Scope>> {
    let r = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    r.as_ref().and_then(|r| r.by_dir.get(dir).cloned())
}

fn register(key: AuditKey, data_dir: &Path, sink: Option<Box<dyn Write + Send>>) -> Arc<Scope> {
    let mut r = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    let r = r.get_or_insert_with(Registry::default);
    if let Some(existing) = r.by_key.get(key.id()).cloned() {
        // The same data directory opened again (a restart in one process): keep its
        // pending refusals, take the new sink.
        if sink.is_some() {
            *existing.sink.lock().unwrap_or_else(|p| p.into_inner()) = sink;
        }
        r.by_dir.insert(data_dir.to_path_buf(), existing.clone());
        return existing;
    }
    let scope = Arc::new(Scope {
        key,
        sink: Mutex::new(sink),
        refusals: Mutex::new(HashMap::new()),
    });
    r.by_key.insert(scope.key.id().to_string(), scope.clone());
    r.by_dir.insert(data_dir.to_path_buf(), scope.clone());
    scope
}

/// Makes a data directory's audit key known to this process without opening a sink or
/// writing anything: for reading and verifying a database another process writes.
pub fn use_key_of(data_dir: &Path) -> Result<(), AppError> {
    let key = AuditKey::load(data_dir)?;
    register(key, data_dir, None);
    Ok(())
}

/// At every start, before anything is recorded: loads (or creates) the audit key, opens
/// the sink, and keys the chain of a database that is not keyed yet. A database keyed
/// with another key is refused: its events could neither be verified nor continued.
pub fn open(pool: &Pool, data_dir: &Path, sink: &SinkTarget) -> Result<(), AppError> {
    let key = AuditKey::load_or_create(data_dir)?;
    let mut conn = db::get(pool)?;
    // Checked before this data directory's state is registered, so that a refused start
    // leaves a running server's state alone; and again in the transaction.
    check_key(&mut conn, &key, data_dir)?;
    let sink = open_sink(sink)?;
    let scope = register(key, data_dir, Some(sink));
    let key = &scope.key;
    let pending = db::write_tx(&mut conn, |c| {
        let s = check_key(c, key, data_dir)?;
        if s.audit_key_id == key.id() {
            return Ok(false);
        }
        let legacy = AuditEvent::latest_chain(c)?.map(|(id, _)| id).unwrap_or(0);
        let sealed = seal(key, s.audit_anchor_id, &s.audit_anchor_hash, legacy);
        Settings::set_audit_keying(c, key.id(), legacy, &sealed)?;
        if legacy > 0 {
            record(
                c,
                &Event::new(AuditCategory::SecConfig, "audit_chain_rekeyed", "system", "audit events").describe(format!(
                    "audit chain re-keyed: events through {legacy} keep their SHA-256 chain; from this event on each is an HMAC-SHA256 with the data directory's audit.key"
                )),
            )?;
        }
        Ok(true)
    })?;
    if pending {
        log::info!(
            "audit chain keyed with {}",
            data_dir.join(crate::secrets::AUDIT_KEY_FILE).display()
        );
    }
    Ok(())
}

/// The settings, if this key may key (or already keys) the database's chain.
fn check_key(c: &mut DbConn, key: &AuditKey, data_dir: &Path) -> Result<Settings, AppError> {
    let s = Settings::load(c)?;
    if s.audit_key_id == key.id() {
        return Ok(s);
    }
    if !s.audit_key_id.is_empty() {
        return Err(AppError::internal(format!(
            "this database's audit chain is keyed with another audit.key (id {}) than {} holds (id {}): copy audit.key from the data directory that created the database",
            s.audit_key_id,
            data_dir.join(crate::secrets::AUDIT_KEY_FILE).display(),
            key.id()
        )));
    }
    if AuditEvent::any_keyed(c)? {
        // Only a hand edit empties the key id of a keyed database; keying it again
        // would seal whatever was changed.
        return Err(AppError::internal("the database's audit chain is keyed but its settings no longer say with which key: the settings row was edited; restore it from a backup"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// Recording, and the sink after commit.

thread_local! {
    /// Events written by the transaction running on this thread, waiting for its commit
    /// before they go to the sink.
    static PENDING: std::cell::RefCell<Vec<(Arc<Scope>, AuditEvent)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many events wait on this thread: taken before a transaction (or savepoint) starts.
pub(crate) fn pending_mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// The transaction begun at `mark` is over: on commit every waiting event goes to its
/// sink; otherwise the events it wrote are forgotten (they were rolled back).
pub(crate) fn pending_done(mark: usize, committed: bool) {
    let events = PENDING.with(|p| crate::db::settle_pending(p, mark, committed));
    if events.is_empty() {
        return;
    }
    let mut i = 0;
    while i < events.len() {
        let scope = events[i].0.clone();
        let mut text = String::new();
        while i < events.len() && Arc::ptr_eq(&events[i].0, &scope) {
            if let Ok(line) = serde_json::to_string(&events[i].1) {
                text.push_str(&line);
                text.push('\n');
            }
            i += 1;
        }
        let mut sink = scope.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = sink.as_mut() {
            if let Err(e) = w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
                log::error!("writing the audit log failed: {e}");
            }
        }
    }
}

/// Appends an event to the chain. Call it inside the write transaction of the change it
/// records (`db::write_tx` holds the lock that keeps the chain linear, and writes the
/// event to the audit sink once the transaction has committed).
pub fn record(tx: &mut WriteTx, e: &Event) -> Result<(), AppError> {
    let settings = tx.settings()?;
    let scope = scope_by_key(&settings.audit_key_id).ok_or_else(|| {
        AppError::internal(format!(
            "the audit key of this database (id '{}') is not loaded: start the server on its data directory",
            settings.audit_key_id
        ))
    })?;
    let prev = match tx.chain_head() {
        Some(head) => head.to_string(),
        None => AuditEvent::latest_hash(tx)?.unwrap_or_else(|| GENESIS.to_string()),
    };
    let at = db::now();
    let hash = keyed_hash(
        &scope.key,
        &prev,
        at,
        e.category.key(),
        e.action,
        &e.actor,
        &e.target,
        &e.description,
        &e.reason,
        e.outcome.key(),
        e.occurrences,
        e.first_at,
        e.last_at,
    );
    let id = AuditEvent::insert(
        tx,
        &NewAuditEvent {
            at,
            category: e.category,
            action: e.action,
            actor: &e.actor,
            target: &e.target,
            description: &e.description,
            reason: &e.reason,
            outcome: e.outcome,
            prev_hash: &prev,
            hash: &hash,
            chain: CHAIN_KEYED,
            occurrences: e.occurrences,
            first_at: e.first_at,
            last_at: e.last_at,
        },
    )?;
    tx.set_chain_head(&hash);
    let stored = AuditEvent {
        id,
        at,
        category: e.category,
        action: e.action.to_string(),
        actor: e.actor.clone(),
        target: e.target.clone(),
        description: e.description.clone(),
        reason: e.reason.clone(),
        outcome: e.outcome,
        prev_hash: prev,
        hash,
        chain: CHAIN_KEYED,
        occurrences: e.occurrences,
        first_at: e.first_at,
        last_at: e.last_at,
    };
    PENDING.with(|p| p.borrow_mut().push((scope, stored)));
    Ok(())
}

/// Records an event in a transaction of its own: for refusals, whose own transaction
/// was rolled back.
pub fn record_alone(conn: &mut DbConn, e: &Event) -> Result<(), AppError> {
    db::write_tx(conn, |c| record(c, e))
}

// ---------------------------------------------------------------------------------------
// Refusals of unauthenticated requests, aggregated.

/// Who made an unauthenticated request: never a user name, which is only a claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Address(String),
    Anonymous,
}

impl Source {
    /// From an address as text (`""` or `unknown`: anonymous).
    pub fn of(address: &str) -> Source {
        match address.trim() {
            "" | "unknown" => Source::Anonymous,
            a => Source::Address(a.to_string()),
        }
    }

    pub fn actor(&self) -> String {
        match self {
            Source::Address(a) => format!("host:{a}"),
            Source::Anonymous => "anonymous".to_string(),
        }
    }
}

impl From<Option<IpAddr>> for Source {
    fn from(peer: Option<IpAddr>) -> Source {
        peer.map_or(Source::Anonymous, |a| Source::Address(a.to_string()))
    }
}

impl From<&str> for Source {
    fn from(address: &str) -> Source {
        Source::of(address)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RefusalKey {
    source: Source,
    category: AuditCategory,
    action: &'static str,
    minute: i64,
}

struct Refusals {
    count: i64,
    first_at: NaiveDateTime,
    last_at: NaiveDateTime,
    targets: BTreeSet<String>,
    /// Each distinct message, with how often it came (the first `MAX_TARGETS`).
    messages: Vec<(String, i64)>,
}

/// Most distinct claimed names listed in one aggregated event.
const MAX_TARGETS: usize = 10;
/// Most distinct messages kept in one aggregated event (the rest are counted).
const MAX_MESSAGES: usize = 20;

fn minute_of(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp().div_euclid(60)
}

/// Counts a refused unauthenticated request (a failed login, a bad API key, a refused
/// certificate request). One event per source, category, action and minute is written
/// when the minute is over (and at shutdown), with the count and the first and last time:
/// a flood of refusals costs one chained row a minute, not one per request, and does not
/// push real events out of sight. The actor is the source (`host:<address>` or
/// `anonymous`), never the name the requester claimed, which is the target.
pub fn refused(
    ctx: &super::Ctx,
    source: impl Into<Source>,
    category: AuditCategory,
    action: &'static str,
    target: &str,
    message: impl Into<String>,
) {
    let now = db::now();
    let key = RefusalKey {
        source: source.into(),
        category,
        action,
        minute: minute_of(now),
    };
    let target: String = target.chars().take(200).collect();
    let Some(scope) = scope_by_dir(&ctx.data_dir) else {
        // No aggregator for this data directory (a Ctx built by hand): one event now
        // rather than none.
        let one = Refusals {
            count: 1,
            first_at: now,
            last_at: now,
            targets: BTreeSet::from([target]),
            messages: vec![(message.into(), 1)],
        };
        let e = aggregated_event(&key, &one);
        if let Err(err) = db::get(&ctx.pool).and_then(|mut c| record_alone(&mut c, &e)) {
            log::error!("a refusal could not be audited: {err}");
        }
        return;
    };
    let mut map = scope.refusals.lock().unwrap_or_else(|p| p.into_inner());
    let entry = map.entry(key).or_insert_with(|| Refusals {
        count: 0,
        first_at: now,
        last_at: now,
        targets: BTreeSet::new(),
        messages: Vec::new(),
    });
    let message = message.into();
    match entry.messages.iter().position(|(m, _)| *m == message) {
        Some(i) => entry.messages[i].1 += 1,
        None if entry.messages.len() < MAX_MESSAGES => entry.messages.push((message, 1)),
        None => {}
    }
    entry.count += 1;
    entry.last_at = now;
    if entry.targets.len() <= MAX_TARGETS {
        entry.targets.insert(target);
    }
}

fn aggregated_event(key: &RefusalKey, r: &Refusals) -> Event {
    let mut targets: Vec<&str> = r
        .targets
        .iter()
        .map(String::as_str)
        .take(MAX_TARGETS)
        .collect();
    if targets.is_empty() {
        targets.push("unknown");
    }
    let mut target = targets.join(", ");
    if r.targets.len() > MAX_TARGETS {
        target.push_str(", …");
    }
    let who = key.source.actor();
    let messages = r
        .messages
        .iter()
        .map(|(m, n)| {
            if *n == 1 {
                m.clone()
            } else {
                format!("{m} (×{n})")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let description = if r.count == 1 {
        messages
    } else {
        format!(
            "{} refusals from {who} between {} and {} UTC: {messages}",
            r.count,
            r.first_at.format("%H:%M:%S"),
            r.last_at.format("%H:%M:%S"),
        )
    };
    let mut e = Event::new(key.category, key.action, &who, &target)
        .describe(description)
        .failed();
    e.occurrences = r.count;
    e.first_at = Some(r.first_at);
    e.last_at = Some(r.last_at);
    e
}

fn flush_refusals_where(ctx: &super::Ctx, all: bool) -> Result<usize, AppError> {
    let Some(scope) = scope_by_dir(&ctx.data_dir) else {
        return Ok(0);
    };
    let current = minute_of(db::now());
    let due: Vec<(RefusalKey, Refusals)> = {
        let mut map = scope.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<RefusalKey> = map
            .keys()
            .filter(|k| all || k.minute < current)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|r| (k, r)))
            .collect()
    };
    if due.is_empty() {
        return Ok(0);
    }
    let mut sorted = due;
    sorted.sort_by_key(|(_, r)| r.first_at);
    let mut conn = db::get(&ctx.pool)?;
    let n = sorted.len();
    let result = db::write_tx(&mut conn, |c| {
        for (k, r) in &sorted {
            record(c, &aggregated_event(k, r))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        // Put them back: the next flush tries again.
        let mut map = scope.refusals.lock().unwrap_or_else(|p| p.into_inner());
        for (k, r) in sorted {
            map.entry(k).or_insert(r);
        }
        return Err(e);
    }
    Ok(n)
}

/// Writes the aggregated refusals of every minute that is over.
pub fn flush_closed_refusals(ctx: &super::Ctx) -> Result<usize, AppError> {
    flush_refusals_where(ctx, false)
}

/// Writes every aggregated refusal now, the current minute's included: at shutdown.
pub fn flush_refusals(ctx: &super::Ctx) -> Result<usize, AppError> {
    flush_refusals_where(ctx, true)
}

/// Seconds until the current minute closes (how long the flusher sleeps at most).
pub fn seconds_left_in_minute() -> u64 {
    u64::from(60 - db::now().second().min(59))
}

// ---------------------------------------------------------------------------------------
// Verification.

/// Where the chain breaks, if anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    Intact { events: i64 },
    Broken { at_id: i64, events_checked: i64 },
}

/// How far a verification got: every event from the anchor through `last_id` matched
/// its hash. The next check can start here instead of at the anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    anchor_id: i64,
    last_id: i64,
    last_hash: String,
    events: i64,
}

fn key_for(settings: &Settings) -> Result<AuditKey, AppError> {
    scope_by_key(&settings.audit_key_id)
        .map(|s| s.key.clone())
        .ok_or_else(|| {
            AppError::internal(format!(
                "the audit key of this database (id '{}') is not loaded: verify with the server's data directory",
                settings.audit_key_id
            ))
        })
}

/// Checks every event from the chain's anchor (the genesis, or the last event removed by
/// retention) to the newest, with the key of the data directory this process opened for
/// the database.
pub fn verify_chain(conn: &mut DbConn) -> Result<ChainStatus, AppError> {
    Ok(verify_chain_from(conn, None)?.0)
}

/// Checks the events added since an earlier verification, if that one still holds (same
/// anchor, and its last event unchanged); otherwise the whole chain. Returns where this
/// check got to, for the next one, when the chain is intact.
pub fn verify_chain_from(
    conn: &mut DbConn,
    earlier: Option<&Verified>,
) -> Result<(ChainStatus, Option<Verified>), AppError> {
    let settings = Settings::load(conn)?;
    let key = key_for(&settings)?;
    verify_chain_with(conn, &key, &settings, earlier)
}

/// As `verify_chain_from`, with the key of the data directory a server runs on: a
/// database whose key id was changed by hand shows as broken instead of failing.
pub fn verify_chain_of(
    conn: &mut DbConn,
    data_dir: &Path,
    earlier: Option<&Verified>,
) -> Result<(ChainStatus, Option<Verified>), AppError> {
    let settings = Settings::load(conn)?;
    let Some(scope) = scope_by_dir(data_dir) else {
        return verify_chain_from(conn, earlier);
    };
    if settings.audit_key_id != scope.key.id() {
        let broken = ChainStatus::Broken {
            at_id: settings.audit_anchor_id,
            events_checked: 0,
        };
        return Ok((broken, None));
    }
    verify_chain_with(conn, &scope.key, &settings, earlier)
}

fn verify_chain_with(
    conn: &mut DbConn,
    key: &AuditKey,
    settings: &Settings,
    earlier: Option<&Verified>,
) -> Result<(ChainStatus, Option<Verified>), AppError> {
    let anchor_id = settings.audit_anchor_id;
    if !seal_holds(key, settings) {
        let broken = ChainStatus::Broken {
            at_id: anchor_id.max(settings.audit_legacy_through),
            events_checked: 0,
        };
        return Ok((broken, None));
    }
    let mut prev = settings.audit_anchor_hash.clone();
    let mut last_id = anchor_id;
    let mut checked = 0i64;
    if let Some(v) = earlier.filter(|v| v.anchor_id == anchor_id) {
        if AuditEvent::hash_of(conn, v.last_id)?.as_deref() == Some(v.last_hash.as_str()) {
            prev = v.last_hash.clone();
            last_id = v.last_id;
            checked = v.events;
        }
    }
    loop {
        let batch = AuditEvent::stored_after(conn, last_id, 5000)?;
        if batch.is_empty() {
            let verified = Verified {
                anchor_id,
                last_id,
                last_hash: prev,
                events: checked,
            };
            return Ok((ChainStatus::Intact { events: checked }, Some(verified)));
        }
        for ev in batch {
            if !event_holds(key, settings, &prev, &ev) {
                let broken = ChainStatus::Broken {
                    at_id: ev.id,
                    events_checked: checked,
                };
                return Ok((broken, None));
            }
            prev = ev.hash;
            last_id = ev.id;
            checked += 1;
        }
    }
}

/// Whether an event follows `prev` and matches its own hash. An unkeyed event is
/// accepted only up to where the unkeyed chain ended (sealed in the settings).
fn event_holds(key: &AuditKey, settings: &Settings, prev: &str, ev: &StoredEvent) -> bool {
    if ev.chain == CHAIN_SHA256 && ev.id > settings.audit_legacy_through {
        return false;
    }
    ev.prev_hash == prev && expected_hash(key, prev, ev).as_deref() == Some(ev.hash.as_str())
}

/// What `hostca audit verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Events verified in the database.
    pub events: i64,
    /// The settings' anchor or legacy boundary was moved by hand.
    pub seal_broken: bool,
    /// Events whose content no longer matches their hash (or the sink's copy).
    pub edited: Vec<i64>,
    /// Those of `edited` whose row no longer matches its own hash (the chain breaks there).
    pub unhashed: Vec<i64>,
    /// Events whose predecessor is missing or changed: something before them was removed.
    pub breaks: Vec<i64>,
    /// Events the sink has and the database lacks (removed, the last ones included).
    pub deleted: Vec<i64>,
    /// Events in the database that never reached the sink (inserted by hand, or lost
    /// from the sink).
    pub missing_from_sink: Vec<i64>,
    /// Lines of the sink that could not be read.
    pub unreadable_lines: Vec<usize>,
    /// Events compared with the sink, if one was read.
    pub sink_events: Option<usize>,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.seal_broken
            && self.edited.is_empty()
            && self.breaks.is_empty()
            && self.deleted.is_empty()
            && self.missing_from_sink.is_empty()
            && self.unreadable_lines.is_empty()
    }
}

/// Verifies the whole chain with `key`, reporting every problem (not only the first),
/// and, given the audit sink, compares it with the database: events removed (the last
/// ones too, which no chain can show), changed, or never logged. Events removed by
/// retention (through the anchor) are not reported.
pub fn verify_report(
    conn: &mut DbConn,
    key: &AuditKey,
    sink: Option<&Path>,
) -> Result<Report, AppError> {
    let settings = Settings::load(conn)?;
    let mut report = Report {
        seal_broken: !seal_holds(key, &settings),
        ..Report::default()
    };
    if !settings.audit_key_id.is_empty() && settings.audit_key_id != key.id() {
        return Err(AppError::BadRequest(format!(
            "this database's chain is keyed with another audit.key (id {}, this one is {}): pass the server's --data-dir",
            settings.audit_key_id,
            key.id()
        )));
    }
    let anchor = settings.audit_anchor_id;
    let mut logged: std::collections::BTreeMap<i64, serde_json::Value> = Default::default();
    if let Some(path) = sink {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AppError::BadRequest(format!("cannot read the audit log {}: {e}", path.display()))
        })?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<AuditEvent>(line) {
                Ok(ev) => {
                    if ev.id > anchor {
                        logged.insert(ev.id, serde_json::to_value(&ev).unwrap_or_default());
                    }
                }
                Err(_) => report.unreadable_lines.push(n + 1),
            }
        }
        report.sink_events = Some(logged.len());
    }
    let mut prev = settings.audit_anchor_hash.clone();
    let mut last_id = anchor;
    loop {
        let batch = AuditEvent::stored_after(conn, last_id, 5000)?;
        if batch.is_empty() {
            break;
        }
        for ev in batch {
            let own = expected_hash(key, &ev.prev_hash, &ev).as_deref() == Some(ev.hash.as_str())
                && !(ev.chain == CHAIN_SHA256 && ev.id > settings.audit_legacy_through);
            if !own {
                report.edited.push(ev.id);
                report.unhashed.push(ev.id);
            } else if ev.prev_hash != prev {
                report.breaks.push(ev.id);
            }
            if sink.is_some() {
                match logged.remove(&ev.id) {
                    Some(copy) => {
                        if serde_json::to_value(&ev).unwrap_or_default() != copy
                            && !report.edited.contains(&ev.id)
                        {
                            report.edited.push(ev.id);
                        }
                    }
                    // Events of the old chain predate the sink.
                    None if ev.id <= settings.audit_legacy_through => {}
                    None => report.missing_from_sink.push(ev.id),
                }
            }
            prev = ev.hash;
            last_id = ev.id;
            report.events += 1;
        }
    }
    report.deleted = logged.into_keys().collect();
    Ok(report)
}

/// Removes events older than the retention period. The last removed event becomes the
/// chain's anchor (sealed with the key), and the removal is itself an event. Returns how
/// many were removed.
pub fn apply_retention(conn: &mut DbConn) -> Result<usize, AppError> {
    db::write_tx(conn, |c| {
        let settings = Settings::load(c)?;
        // The floor holds even for a value set in the database by hand.
        let days = settings
            .audit_retention_days
            .max(super::settings::RETENTION_DAYS.0);
        let cutoff = db::now() - chrono::Duration::days(i64::from(days));
        let Some(last) = AuditEvent::last_before(c, cutoff)? else {
            return Ok(0);
        };
        let key = key_for(&settings)?;
        let n = AuditEvent::delete_through(c, last.id)?;
        Settings::set_audit_anchor(c, last.id, &last.hash)?;
        Settings::set_audit_seal(
            c,
            &seal(&key, last.id, &last.hash, settings.audit_legacy_through),
        )?;
        record(
            c,
            &Event::new(AuditCategory::SecConfig, "audit_retention", "system", "audit events").describe(format!(
                "{n} audit events older than {days} days removed (through event {}); the chain now starts after it",
                last.id
            )),
        )?;
        Ok(n)
    })
}

/// Writes the events of a restored backup to the new data directory's audit log (those
/// after the anchor, on the keyed chain: what a sink would have received).
pub fn write_restored_sink(
    data_dir: &Path,
    events: &[AuditEvent],
    settings: &[Settings],
) -> Result<(), AppError> {
    let (anchor, legacy) = settings
        .first()
        .map_or((0, 0), |s| (s.audit_anchor_id, s.audit_legacy_through));
    let mut text = String::new();
    for ev in events.iter().filter(|e| e.id > anchor && e.id > legacy) {
        if let Ok(line) = serde_json::to_string(ev) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let mut sink = open_sink(&SinkTarget::File(data_dir.join(AUDIT_LOG_FILE)))?;
    sink.write_all(text.as_bytes())
        .map_err(|e| AppError::internal_from("cannot write the audit log", e))
}
