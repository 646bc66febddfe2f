//! OCSP answers: each CA that signs hosts has a delegated responder (a P-256 key made in
//! this process's memory, never written anywhere, certified by the CA for 30 days and
//! replaced when a third is left). Responses are pre-produced: a producer in each process
//! signs the responses (SHA-1 and SHA-256 CertIDs) of every certificate issued or revoked
//! since it last looked, every `PRODUCE_EVERY`, and makes again those past half their
//! validity. They are stored in `ocsp_responses` under a MAC of the data directory's token
//! key, so every process on the database sends the same bytes, and kept in memory with
//! their HTTP validators. A status changes only by a revocation, and the producer sees every
//! revocation committed to the database (by any code path, process or offline command)
//! within one round and replaces the memory copies it makes stale; so while its rounds
//! succeed, memory copies are served without touching the database. When the producer is
//! behind (`WATCH` since its last round), a memory copy is re-checked against the
//! certificate's row (one lookup on the unique serial index) once it is `FRESH` old. A
//! stored row whose MAC fails was edited outside hostca: it is audited and replaced, never
//! sent. A request with a nonce is signed live; "unknown" is signed per request and never
//! stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pki::IssuerSet;
use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::certificate::{Certificate, OcspStatusRow};
use crate::models::kinds::AuditCategory;
use crate::models::ocsp_response::StoredResponse;
use crate::pki::ocsp::{
    self, error_response, parse_request, CertId, CertStatus, ErrorStatus, HashAlg, IssuerHashes,
    Responder, Single,
};
use crate::pki::Reason;
use crate::services::audit::{self, Event};

/// How long a cached response is served before the certificate's row is read again, when
/// the producer is behind.
pub const FRESH: Duration = Duration::from_millis(500);
/// How often the producer looks for new certificates and revocations.
pub const PRODUCE_EVERY: Duration = Duration::from_millis(200);
/// Memory copies are trusted without a look at the database until this long after the
/// producer's last successful round.
const WATCH: Duration = Duration::from_millis(600);
/// At most this many cached responses (then the cache starts over).
const CACHE_LIMIT: usize = 200_000;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis_since_epoch() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// A signed response as served: its DER and its HTTP validators.
pub struct Cached {
    pub der: Vec<u8>,
    pub etag: String,
    pub last_modified: String,
    pub expires: String,
    pub next_update: NaiveDateTime,
    status: CertStatus,
    /// When it must be re-signed (half its validity).
    stale_at: Instant,
    /// When the certificate's row was last read (ms since `EPOCH`).
    checked: AtomicU64,
}

impl Cached {
    /// The memory copy of a response (stored, or made to be), saying `status`.
    fn of(row: StoredResponse, status: CertStatus, now: NaiveDateTime) -> Cached {
        let http_date =
            |t: NaiveDateTime| t.and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        Cached {
            etag: format!("\"{}\"", hex::encode(&Sha256::digest(&row.der)[..16])),
            last_modified: http_date(row.this_update),
            expires: http_date(row.next_update),
            next_update: row.next_update,
            status,
            stale_at: Instant::now() + (row.refresh_at - now).to_std().unwrap_or_default(),
            checked: AtomicU64::new(millis_since_epoch()),
            der: row.der,
        }
    }

    /// Seconds until its nextUpdate (for `Cache-Control: max-age`).
    pub fn max_age(&self, now: NaiveDateTime) -> i64 {
        (self.next_update - now).num_seconds().max(0)
    }

    /// Whether it may be sent without reading the certificate's row: `watched` says the
    /// producer would have replaced it by now if its certificate had been revoked.
    fn fresh(&self, watched: bool) -> bool {
        Instant::now() < self.stale_at
            && (watched
                || millis_since_epoch().saturating_sub(self.checked.load(Ordering::Relaxed))
                    < FRESH.as_millis() as u64)
    }
}

#[derive(Default)]
struct Responders {
    /// The issuers generation they were made for (`None`: not yet).
    generation: Option<i64>,
    list: Vec<(IssuerHashes, Arc<Responder>)>,
    /// When the first of them is due for replacement.
    due: Option<NaiveDateTime>,
}

impl Responders {
    fn find(&self, id: &CertId) -> Option<&Arc<Responder>> {
        self.list
            .iter()
            .find(|(h, _)| h.matches(id))
            .map(|(_, r)| r)
    }
}

type Key = (i64, HashAlg, String);

#[derive(Default)]
pub struct OcspState {
    /// `serve --ocsp-validity-hours` (0: `ocsp::RESPONSE_VALIDITY_HOURS`).
    pub validity_hours: AtomicU64,
    /// Until when (ms since `EPOCH`) the producer's last round vouches for memory copies.
    watched_until: AtomicU64,
    responders: RwLock<Arc<Responders>>,
    renewing: Mutex<()>,
    cache: RwLock<HashMap<Key, Arc<Cached>>>,
}

/// What to send: a cacheable pre-produced response, or one made for this request alone
/// (a nonce, several CertIDs, an error status).
pub enum Answer {
    Cached(Arc<Cached>),
    Live(Vec<u8>),
}

impl OcspState {
    /// How long the responses signed now are good for.
    fn validity(&self) -> chrono::Duration {
        match self.validity_hours.load(Ordering::Relaxed) {
            0 => chrono::Duration::hours(ocsp::RESPONSE_VALIDITY_HOURS),
            h => chrono::Duration::hours(h as i64),
        }
    }

    fn current(&self) -> Arc<Responders> {
        self.responders
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// The cached answer to `body`, without touching the database or blocking: `None` when it
/// needs `answer`.
pub fn cached(ctx: &Ctx, body: &[u8]) -> Option<Arc<Cached>> {
    let request = parse_request(body)?;
    if request.nonce.is_some() || request.ids.len() != 1 {
        return None;
    }
    let id = &request.ids[0];
    let state = &ctx.pki.ocsp;
    let responder = state.current().find(id)?.clone();
    let cache = state.cache.read().ok()?;
    let hit = cache.get(&(responder.issuer_id, id.hash, id.serial.clone()))?;
    let watched = millis_since_epoch() < state.watched_until.load(Ordering::Relaxed);
    hit.fresh(watched).then(|| hit.clone())
}

/// The answer to an OCSPRequest's DER (blocking: reads the database, may sign).
pub fn answer(ctx: &Ctx, body: &[u8]) -> Result<Answer, AppError> {
    let Some(request) = parse_request(body) else {
        return Ok(Answer::Live(error_response(ErrorStatus::MalformedRequest)));
    };
    let set = ctx.pki.issuers();
    let responders = responders(ctx, &set)?;
    // RFC 5019, 2.2.3: a CertID of a CA we do not answer for is unauthorized; one
    // response is signed by one responder, so the CertIDs must share their CA.
    let mut responder: Option<&Arc<Responder>> = None;
    for id in &request.ids {
        match responders.find(id) {
            Some(r) if responder.is_none_or(|p| p.issuer_id == r.issuer_id) => responder = Some(r),
            _ => return Ok(Answer::Live(error_response(ErrorStatus::Unauthorized))),
        }
    }
    let Some(responder) = responder else {
        return Ok(Answer::Live(error_response(ErrorStatus::MalformedRequest)));
    };
    let mut conn = db::get(&ctx.pool)?;
    let now = db::now();
    if request.nonce.is_none() && request.ids.len() == 1 {
        let id = &request.ids[0];
        let status = status_of(&mut conn, &set, responder.issuer_id, &id.serial)?;
        return Ok(Answer::Cached(prepared(
            ctx, &mut conn, responder, id, status, now,
        )?));
    }
    let mut singles = Vec::with_capacity(request.ids.len());
    for id in &request.ids {
        let status = status_of(&mut conn, &set, responder.issuer_id, &id.serial)?;
        singles.push(Single { id, status });
    }
    let signed = ocsp::sign(
        responder,
        &singles,
        now,
        ctx.pki.ocsp.validity(),
        request.nonce.as_deref(),
    )?;
    Ok(Answer::Live(signed.der))
}

/// The response to one CertID saying `status`: the one in memory while it still says so,
/// else the stored one if its MAC holds and it says so, else one signed now (and stored,
/// unless the answer is unknown).
fn prepared(
    ctx: &Ctx,
    conn: &mut DbConn,
    responder: &Responder,
    id: &CertId,
    status: CertStatus,
    now: NaiveDateTime,
) -> Result<Arc<Cached>, AppError> {
    match prepare(ctx, conn, responder, id, status, now)? {
        Prepared::Ready(c) => Ok(c),
        Prepared::Signed(s) => {
            let made = store_one(ctx, conn, responder, id, s, now)?;
            remember(ctx, key_of(responder, id), made.clone());
            Ok(made)
        }
    }
}

type CacheKey = (i64, HashAlg, String);

fn key_of(responder: &Responder, id: &CertId) -> CacheKey {
    (responder.issuer_id, id.hash, id.serial.clone())
}

fn remember(ctx: &Ctx, key: CacheKey, made: Arc<Cached>) {
    if let Ok(mut cache) = ctx.pki.ocsp.cache.write() {
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, made);
    }
}

/// What `prepare` found: a response to send, or one it signed that is still to be stored.
enum Prepared {
    Ready(Arc<Cached>),
    Signed(Signed),
}

/// A response signed and not yet stored; `outdated` as in `StoredResponse::store`.
struct Signed {
    row: StoredResponse,
    status: CertStatus,
    outdated: Option<NaiveDateTime>,
}

/// `prepared` without the storing: the memory copy or the stored response while it says
/// `status`, else a newly signed one (an unknown answer is ready at once: never stored).
fn prepare(
    ctx: &Ctx,
    conn: &mut DbConn,
    responder: &Responder,
    id: &CertId,
    status: CertStatus,
    now: NaiveDateTime,
) -> Result<Prepared, AppError> {
    let key = key_of(responder, id);
    let known = ctx
        .pki
        .ocsp
        .cache
        .read()
        .ok()
        .and_then(|c| c.get(&key).cloned());
    if let Some(c) = known.filter(|c| c.status == status && Instant::now() < c.stale_at) {
        c.checked.store(millis_since_epoch(), Ordering::Relaxed);
        return Ok(Prepared::Ready(c));
    }
    let outdated = match stored(ctx, conn, responder.issuer_id, id, status, now)? {
        Stored::Usable(c) => {
            remember(ctx, key, c.clone());
            return Ok(Prepared::Ready(c));
        }
        Stored::Outdated => Some(now),
        Stored::Tampered => None,
    };
    let signed = sign_row(ctx, responder, id, status, now, outdated)?;
    if status == CertStatus::Unknown {
        let made = Arc::new(Cached::of(signed.row, status, now));
        remember(ctx, key, made.clone());
        return Ok(Prepared::Ready(made));
    }
    Ok(Prepared::Signed(signed))
}

/// The MAC a stored response must carry: over every field but itself.
fn mac_of(ctx: &Ctx, r: &StoredResponse) -> String {
    let time = |t: NaiveDateTime| t.and_utc().timestamp_micros().to_be_bytes();
    ctx.token_key.tag(
        "hostca ocsp response",
        &[
            &r.issuer_id.to_be_bytes(),
            r.serial.as_bytes(),
            r.hash_alg.as_bytes(),
            r.status.as_bytes(),
            &r.der,
            &time(r.this_update),
            &time(r.refresh_at),
            &time(r.next_update),
        ],
    )
}

/// What the database holds for one CertID.
enum Stored {
    /// It verifies, says the status asked for, and is not due again.
    Usable(Arc<Cached>),
    /// Nothing, another status, or due again.
    Outdated,
    /// A row whose MAC fails (audited by `stored`).
    Tampered,
}

/// The stored response for `id`, checked.
fn stored(
    ctx: &Ctx,
    conn: &mut DbConn,
    issuer_id: i64,
    id: &CertId,
    status: CertStatus,
    now: NaiveDateTime,
) -> Result<Stored, AppError> {
    let Some(row) = StoredResponse::find(conn, issuer_id, &id.serial, id.hash.key())? else {
        return Ok(Stored::Outdated);
    };
    if !bool::from(row.mac.as_bytes().ct_eq(mac_of(ctx, &row).as_bytes())) {
        tampered(conn, &row)?;
        return Ok(Stored::Tampered);
    }
    if row.status != status.text() || row.refresh_at <= now {
        return Ok(Stored::Outdated);
    }
    Ok(Stored::Usable(Arc::new(Cached::of(row, status, now))))
}

/// A stored response that fails its MAC was written by someone without the data
/// directory's key: say so in the audit trail (the caller signs a new one over it).
fn tampered(conn: &mut DbConn, row: &StoredResponse) -> Result<(), AppError> {
    log::error!(
        "the stored OCSP response for certificate {} ({}) fails its MAC check: it was changed \
         in the database outside hostca; it is not sent, and a new one replaces it",
        row.serial,
        row.hash_alg
    );
    db::write_tx(conn, |tx| {
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Cert,
                "ocsp_response_rejected",
                ACTOR,
                &row.serial,
            )
            .describe(format!(
                "the stored OCSP response ({} CertID) failed its MAC check: the row was \
                     changed in the database outside hostca; it was not sent, and a newly \
                     signed one replaced it",
                row.hash_alg
            )),
        )
    })
}

/// Who the audit trail names for what the OCSP responder does by itself.
pub const ACTOR: &str = "system:ocsp";

/// Signs the response for `id` saying `status`, as the row to store (MAC included).
fn sign_row(
    ctx: &Ctx,
    responder: &Responder,
    id: &CertId,
    status: CertStatus,
    now: NaiveDateTime,
    outdated: Option<NaiveDateTime>,
) -> Result<Signed, AppError> {
    let signed = ocsp::sign(
        responder,
        &[Single { id, status }],
        now,
        ctx.pki.ocsp.validity(),
        None,
    )?;
    let mut row = StoredResponse {
        issuer_id: responder.issuer_id,
        serial: id.serial.clone(),
        hash_alg: id.hash.key().to_string(),
        status: status.text(),
        der: signed.der,
        this_update: signed.this_update,
        refresh_at: signed.this_update + (signed.next_update - signed.this_update) / 2,
        next_update: signed.next_update,
        mac: String::new(),
    };
    row.mac = mac_of(ctx, &row);
    Ok(Signed {
        row,
        status,
        outdated,
    })
}

/// Stores one signed response on its own (a request's). When another process stored one
/// first, that one is sent.
fn store_one(
    ctx: &Ctx,
    conn: &mut DbConn,
    responder: &Responder,
    id: &CertId,
    s: Signed,
    now: NaiveDateTime,
) -> Result<Arc<Cached>, AppError> {
    match db::write_detached(conn, |c| s.row.store(c, s.outdated)) {
        Ok(true) => {}
        Ok(false) => {
            if let Stored::Usable(theirs) =
                stored(ctx, conn, responder.issuer_id, id, s.status, now)?
            {
                return Ok(theirs);
            }
        }
        // Not storing costs only a signature at the next request: still answer.
        Err(e) => log::warn!("storing the OCSP response for {} failed: {e}", id.serial),
    }
    Ok(Arc::new(Cached::of(s.row, s.status, now)))
}

/// Stores what a producer round signed, 64 rows at a time: on SQLite as jobs of the group
/// writer (committed with the enrollments of a batch: no commit, and no sync, of their
/// own), on PostgreSQL in transactions of its own beside the writer; then keeps the memory
/// copies; where another process stored one first, the memory copy is forgotten and the
/// next request reads theirs.
fn store_all(
    ctx: &Ctx,
    conn: &mut DbConn,
    signed: Vec<(CacheKey, Signed)>,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let mut signed = signed.into_iter().peekable();
    while signed.peek().is_some() {
        let job: Vec<_> = signed.by_ref().take(STORE_JOB).collect();
        let store = |c: &mut DbConn, job: &[(CacheKey, Signed)]| {
            job.iter()
                .map(|(_, s)| s.row.store(c, s.outdated))
                .collect::<diesel::QueryResult<Vec<bool>>>()
        };
        let (job, won) = match conn {
            // PostgreSQL runs it beside the writer, in a transaction of its own: in the
            // writer's job each of its statements would be a round trip the enrollments
            // of the batch wait for (425/s instead of 651/s, seen).
            DbConn::Pg(_) => {
                let won = diesel::Connection::transaction(conn, |c| store(c, &job))?;
                (job, won)
            }
            DbConn::Sqlite(_) => ctx.writer.write(move |c| {
                let won = store(c, &job)?;
                Ok((job, won))
            })?,
        };
        for ((key, s), won) in job.into_iter().zip(won) {
            if won {
                remember(ctx, key, Arc::new(Cached::of(s.row, s.status, now)));
            } else if let Ok(mut cache) = ctx.pki.ocsp.cache.write() {
                cache.remove(&key);
            }
        }
    }
    Ok(())
}

/// Where this process's producer has got to: the newest certificate it made responses
/// for, and the newest revocation.
pub struct Producer {
    last_id: i64,
    revoked: (NaiveDateTime, i64),
    /// Whether the last round saw every revocation there was (then the next one looks
    /// back `REVOKED_LOOKBACK`; while catching up it must not, or it would stand still).
    caught_up: bool,
}

/// At most this many certificates of each kind per round.
const PRODUCE_BATCH: i64 = 500;

/// Most responses stored by one job of the group writer: a batch that carries one waits
/// for it (about 40 µs a row), so a round's thousand rows would add 40 ms to the
/// enrollments committed with them.
const STORE_JOB: usize = 64;
/// A revocation committed just after a later one (two processes) is still seen.
const REVOKED_LOOKBACK: chrono::Duration = chrono::Duration::seconds(2);

impl Producer {
    /// Starts from now: what was issued before is answered at its first request.
    pub fn start(ctx: &Ctx) -> Result<Producer, AppError> {
        let mut conn = db::get(&ctx.pool)?;
        Ok(Producer {
            last_id: Certificate::max_id(&mut conn)?.unwrap_or(0),
            revoked: (db::now(), 0),
            caught_up: true,
        })
    }

    /// One round: the responses of the certificates issued and revoked since the last,
    /// and the stored ones due again. Returns how many certificates it looked at.
    pub fn run(&mut self, ctx: &Ctx, now: NaiveDateTime) -> Result<usize, AppError> {
        let began = millis_since_epoch();
        let seen = self.round(ctx, now)?;
        // Every revocation committed before `began` has replaced its memory copies, unless
        // there were more than one round takes.
        if self.caught_up {
            ctx.pki
                .ocsp
                .watched_until
                .store(began + WATCH.as_millis() as u64, Ordering::Relaxed);
        }
        Ok(seen)
    }

    fn round(&mut self, ctx: &Ctx, now: NaiveDateTime) -> Result<usize, AppError> {
        let set = ctx.pki.issuers();
        let responders = responders(ctx, &set)?;
        if responders.list.is_empty() {
            return Ok(0);
        }
        let mut conn = db::get(&ctx.pool)?;
        let mut seen = 0;
        let mut signed = Vec::new();
        let mut make = |conn: &mut DbConn, serial: &str| {
            produce(ctx, conn, &set, &responders, serial, now, &mut signed)
        };
        let issued = Certificate::issued_after(&mut conn, self.last_id, PRODUCE_BATCH)?;
        let last_issued = issued.last().map(|(id, _)| *id);
        for (_, serial) in &issued {
            make(&mut conn, serial)?;
            seen += 1;
        }
        let since = if self.caught_up {
            (self.revoked.0 - REVOKED_LOOKBACK, 0)
        } else {
            self.revoked
        };
        let revoked = Certificate::revoked_since(&mut conn, since, PRODUCE_BATCH)?;
        let caught_up = (revoked.len() as i64) < PRODUCE_BATCH;
        let mut latest = self.revoked;
        for (at, id, serial) in revoked {
            make(&mut conn, &serial)?;
            latest = latest.max((at, id));
            seen += 1;
        }
        for (_, serial, _) in StoredResponse::due(&mut conn, now, PRODUCE_BATCH)? {
            make(&mut conn, &serial)?;
            seen += 1;
        }
        // Only once they are stored does the round count as done: a failed store is
        // signed again by the next round.
        store_all(ctx, &mut conn, signed, now)?;
        if let Some(id) = last_issued {
            self.last_id = id;
        }
        self.revoked = latest;
        self.caught_up = caught_up;
        Ok(seen)
    }
}

/// Makes sure the stored responses of `serial` say what its row says, for both CertID
/// hashes (those to sign are added to `signed`, for `store_all`); forgets them once it
/// has expired or is no longer known.
fn produce(
    ctx: &Ctx,
    conn: &mut DbConn,
    set: &IssuerSet,
    responders: &Responders,
    serial: &str,
    now: NaiveDateTime,
    signed: &mut Vec<(CacheKey, Signed)>,
) -> Result<(), AppError> {
    let row = Certificate::ocsp_status(conn, serial)?;
    let issuer = row
        .as_ref()
        .and_then(|r| r.0)
        .or_else(|| set.issuers.first().map(|l| l.row.id));
    let found = issuer.and_then(|i| {
        let responder = responders
            .list
            .iter()
            .map(|(_, r)| r)
            .find(|r| r.issuer_id == i)?;
        let ca = set.issuers.iter().find(|l| l.row.id == i).map(|l| &l.ca)?;
        Some((responder, ca))
    });
    let (Some((responder, ca)), Some(row)) = (found, row) else {
        if let Some(i) = issuer {
            db::write_detached(conn, |c| StoredResponse::delete(c, i, serial))?;
        }
        return Ok(());
    };
    if row.3 < now {
        db::write_detached(conn, |c| {
            StoredResponse::delete(c, responder.issuer_id, serial)
        })?;
        return Ok(());
    }
    let status = status_in(set, responder.issuer_id, Some(row));
    let Ok(number) = hex::decode(serial) else {
        return Ok(());
    };
    for hash in HashAlg::ALL {
        let id = CertId::of(hash, ca, &number);
        if let Prepared::Signed(s) = prepare(ctx, conn, responder, &id, status, now)? {
            signed.push((key_of(responder, &id), s));
        }
    }
    Ok(())
}

/// good, revoked (with time and reason), or unknown: a serial this CA never issued (or
/// another CA did).
fn status_of(
    conn: &mut DbConn,
    set: &IssuerSet,
    issuer_id: i64,
    serial: &str,
) -> Result<CertStatus, AppError> {
    Ok(status_in(
        set,
        issuer_id,
        Certificate::ocsp_status(conn, serial)?,
    ))
}

/// `status_of` for a certificate's row already read.
fn status_in(set: &IssuerSet, issuer_id: i64, row: Option<OcspStatusRow>) -> CertStatus {
    let Some((issuer, revoked_at, reason, _)) = row else {
        return CertStatus::Unknown;
    };
    // Rows from before the issuers table belong to the first CA.
    let issuer = issuer.or_else(|| set.issuers.first().map(|l| l.row.id));
    if issuer != Some(issuer_id) {
        return CertStatus::Unknown;
    }
    match revoked_at {
        Some(at) => CertStatus::Revoked {
            at,
            reason: reason.unwrap_or(Reason::Unspecified),
        },
        None => CertStatus::Good,
    }
}

/// The responders for the CAs of `set`: made for each CA that signs hosts and publishes,
/// whose key is here; replaced when the CAs change or one is due.
fn responders(ctx: &Ctx, set: &IssuerSet) -> Result<Arc<Responders>, AppError> {
    let state = &ctx.pki.ocsp;
    let now = db::now();
    let usable =
        |r: &Responders| r.generation == Some(set.generation) && r.due.is_none_or(|d| now < d);
    let current = state.current();
    if usable(&current) {
        return Ok(current);
    }
    let _one = state.renewing.lock().unwrap_or_else(|p| p.into_inner());
    let current = state.current();
    if usable(&current) {
        return Ok(current);
    }
    let mut list = Vec::new();
    for l in &set.issuers {
        if !set.publishing.contains(&l.row.id) || !l.ca.has_key() {
            continue;
        }
        let Some(hashes) = IssuerHashes::of(&l.ca) else {
            continue;
        };
        let kept = current
            .list
            .iter()
            .map(|(_, r)| r)
            .find(|r| r.issuer_id == l.row.id && !r.due(now))
            .cloned();
        let responder = match kept {
            Some(r) => r,
            None => {
                let r = Responder::issue(&l.ca, now)?;
                log::info!(
                    "OCSP responder certificate {} issued by CA #{} until {} UTC",
                    r.serial,
                    l.row.id,
                    r.not_after
                );
                Arc::new(r)
            }
        };
        list.push((hashes, responder));
    }
    let due = list
        .iter()
        .map(|(_, r)| r.not_after - chrono::Duration::days(ocsp::RESPONDER_VALIDITY_DAYS / 3))
        .min();
    let made = Arc::new(Responders {
        generation: Some(set.generation),
        list,
        due,
    });
    if let Ok(mut slot) = state.responders.write() {
        *slot = made.clone();
    }
    Ok(made)
}
