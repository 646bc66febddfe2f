//! OCSP answers: each CA that signs hosts has a delegated responder (a P-256 key made in
//! this process's memory, never written anywhere, certified by the CA for 30 days and
//! replaced when a third is left). Responses are pre-produced on the first request for a
//! CertID and kept in memory with their HTTP validators; each is re-checked against the
//! certificate's row (one lookup on the unique serial index) once it is `FRESH` old, and
//! re-signed when the status changed or half its validity has passed. So a revocation made
//! by any code path, in any process on the database, is answered within `FRESH` plus one
//! request, without hooking any of them. A request with a nonce is signed live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use super::pki::IssuerSet;
use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::models::certificate::Certificate;
use crate::pki::ocsp::{
    self, error_response, parse_request, CertId, CertStatus, ErrorStatus, HashAlg, IssuerHashes,
    Responder, Single,
};
use crate::pki::Reason;

/// How long a cached response is served before the certificate's row is read again.
pub const FRESH: Duration = Duration::from_millis(500);
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
    fn new(signed: ocsp::Signed, status: CertStatus) -> Cached {
        let http_date =
            |t: NaiveDateTime| t.and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let half = (signed.next_update - signed.this_update) / 2;
        Cached {
            etag: format!("\"{}\"", hex::encode(&Sha256::digest(&signed.der)[..16])),
            last_modified: http_date(signed.this_update),
            expires: http_date(signed.next_update),
            next_update: signed.next_update,
            status,
            stale_at: Instant::now() + half.to_std().unwrap_or_default(),
            checked: AtomicU64::new(millis_since_epoch()),
            der: signed.der,
        }
    }

    /// Seconds until its nextUpdate (for `Cache-Control: max-age`).
    pub fn max_age(&self, now: NaiveDateTime) -> i64 {
        (self.next_update - now).num_seconds().max(0)
    }

    fn fresh(&self) -> bool {
        millis_since_epoch().saturating_sub(self.checked.load(Ordering::Relaxed))
            < FRESH.as_millis() as u64
            && Instant::now() < self.stale_at
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
    hit.fresh().then(|| hit.clone())
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
        let key = (responder.issuer_id, id.hash, id.serial.clone());
        let state = &ctx.pki.ocsp;
        let known = state.cache.read().ok().and_then(|c| c.get(&key).cloned());
        if let Some(c) = known.filter(|c| c.status == status && Instant::now() < c.stale_at) {
            c.checked.store(millis_since_epoch(), Ordering::Relaxed);
            return Ok(Answer::Cached(c));
        }
        let signed = ocsp::sign(responder, &[Single { id, status }], now, None)?;
        let made = Arc::new(Cached::new(signed, status));
        if let Ok(mut cache) = state.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, made.clone());
        }
        return Ok(Answer::Cached(made));
    }
    let mut singles = Vec::with_capacity(request.ids.len());
    for id in &request.ids {
        let status = status_of(&mut conn, &set, responder.issuer_id, &id.serial)?;
        singles.push(Single { id, status });
    }
    let signed = ocsp::sign(responder, &singles, now, request.nonce.as_deref())?;
    Ok(Answer::Live(signed.der))
}

/// good, revoked (with time and reason), or unknown: a serial this CA never issued (or
/// another CA did).
fn status_of(
    conn: &mut DbConn,
    set: &IssuerSet,
    issuer_id: i64,
    serial: &str,
) -> Result<CertStatus, AppError> {
    let Some((issuer, revoked_at, reason)) = Certificate::ocsp_status(conn, serial)? else {
        return Ok(CertStatus::Unknown);
    };
    // Rows from before the issuers table belong to the first CA.
    let issuer = issuer.or_else(|| set.issuers.first().map(|l| l.row.id));
    if issuer != Some(issuer_id) {
        return Ok(CertStatus::Unknown);
    }
    Ok(match revoked_at {
        Some(at) => CertStatus::Revoked {
            at,
            reason: reason.unwrap_or(Reason::Unspecified),
        },
        None => CertStatus::Good,
    })
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
