//! Notifications (issue 14): events found by a periodic scan (and by the CRL publisher)
//! are queued per target in an outbox whose (target, dedupe key) is unique, so an event
//! is queued once however often the scan runs, across restarts and server processes. A
//! worker claims due deliveries by a conditional update (one process sends each), posts
//! them (webhook: JSON signed with HMAC-SHA256), and marks them sent, or retried with
//! backoff, or failed after `MAX_ATTEMPTS`. Sends and give-ups are audited (NOTIFY);
//! a retry is not (its error is on the delivery row), so a dead receiver costs one event.
//!
//! At-least-once window: a process that dies after the receiver answered and before the
//! delivery is marked sent leaves it claimed; the claim lapses after `CLAIM` and the
//! delivery is sent again. Receivers can use `X-Hostca-Delivery` to drop the duplicate.

use chrono::{Duration, NaiveDateTime, Timelike};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::audit::{self, Event};
use super::{Actor, Ctx, FieldErrors, FormError};
use crate::db::{self, schema, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::host_mapping::HostMapping;
use crate::models::kinds::AuditCategory;
use crate::models::kinds::{IssuerState, RevocationReason};
use crate::models::notification::{
    Delivery, DeliveryState, NewDelivery, NewTarget, NotifyEvent, SmtpTls, Target, TargetChanges,
    TargetKind,
};
use crate::models::user::Role;

/// Days before a certificate's end at which it is announced (once each).
pub const CERT_THRESHOLDS: [i64; 5] = [1, 3, 7, 14, 30];
/// Days before a CA certificate's end at which it is announced.
pub const CA_THRESHOLDS: [i64; 3] = [7, 30, 90];
/// Days before a token's end at which it is announced (once).
pub const TOKEN_DAYS: i64 = 7;
/// Expired certificates and revocations older than this are not announced (a new
/// target does not receive the whole history).
pub const LOOKBACK_DAYS: i64 = 7;
/// The waits after the first, second, ... failed attempt; after the last one, given up.
pub const BACKOFF_SECONDS: [i64; 5] = [30, 120, 600, 3600, 6 * 3600];
pub const MAX_ATTEMPTS: i32 = BACKOFF_SECONDS.len() as i32 + 1;
/// How long an attempt holds its delivery (longer than the webhook timeout).
pub const CLAIM: Duration = Duration::seconds(120);
pub const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The system actor of audit events written by the worker.
pub const ACTOR: &str = "system:notifications";

pub const SIGNATURE_HEADER: &str = "X-Hostca-Signature-256";

/// Something that happened, as a target receives it.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub event: NotifyEvent,
    /// Stable: the same event found again has the same key.
    pub key: String,
    pub subject: String,
    pub at: NaiveDateTime,
    /// Point events (a revocation, a token used up) before a target existed are not sent
    /// to it; states (expiring) are.
    pub point: bool,
    pub data: serde_json::Value,
}

impl Occurrence {
    /// The webhook body: `{"event", "occurred_at", "subject", "data"}`.
    pub fn body(&self) -> String {
        json!({
            "event": self.event.key(),
            "occurred_at": self.at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "subject": self.subject,
            "data": self.data,
        })
        .to_string()
    }
}

fn iso(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `sha256=<hex>`: HMAC-SHA256 of the body under the target's secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn aad(name: &str) -> String {
    format!("notification-target:{name}")
}

/// The smallest threshold at or above `days_left`.
fn bucket(thresholds: &[i64], left: Duration) -> Option<i64> {
    thresholds
        .iter()
        .copied()
        .find(|t| left <= Duration::days(*t))
}

// ----- finding events -----

/// serial, host ID, names, revoked at, reason, revoked by.
type RevokedRow = (
    String,
    String,
    String,
    NaiveDateTime,
    Option<RevocationReason>,
    Option<String>,
);

/// Everything the scan finds at `now`: reads only.
pub fn find_events(
    ctx: &Ctx,
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> Result<Vec<Occurrence>, AppError> {
    use schema::{certificates as c, issuers as i, tokens as t};
    let mut out = Vec::new();
    let server_host = super::pki::SERVER_HOST_ID;
    let certs: Vec<(String, String, String, NaiveDateTime)> = c::table
        .filter(c::revoked_at.is_null())
        .filter(c::not_after.gt(now - Duration::days(LOOKBACK_DAYS)))
        .filter(c::not_after.le(now + Duration::days(CERT_THRESHOLDS[4])))
        .filter(c::host_id.ne(server_host))
        .select((c::serial, c::host_id, c::names, c::not_after))
        .load(conn)?;
    for (serial, host_id, names, not_after) in certs {
        let name = names.split(',').next().unwrap_or("").to_string();
        let data = json!({"serial": serial, "host_id": host_id, "names": names.split(',').collect::<Vec<_>>(), "not_after": iso(not_after)});
        if not_after <= now {
            out.push(Occurrence {
                event: NotifyEvent::CertExpired,
                key: format!("cert-expired:{serial}"),
                subject: format!("Certificate {serial} of {name} expired"),
                at: not_after,
                point: false,
                data,
            });
        } else if let Some(days) = bucket(&CERT_THRESHOLDS, not_after - now) {
            out.push(Occurrence {
                event: NotifyEvent::CertExpiring,
                key: format!("cert-expiring:{days}:{serial}"),
                subject: format!("Certificate {serial} of {name} expires within {days} days"),
                at: now,
                point: false,
                data: json!({"serial": serial, "host_id": host_id, "names": names.split(',').collect::<Vec<_>>(), "not_after": iso(not_after), "threshold_days": days}),
            });
        }
    }
    let revoked: Vec<RevokedRow> = c::table
        .filter(c::revoked_at.gt(now - Duration::days(LOOKBACK_DAYS)))
        .filter(c::host_id.ne(server_host))
        .select((
            c::serial,
            c::host_id,
            c::names,
            c::revoked_at.assume_not_null(),
            c::revocation_reason,
            c::revoked_by,
        ))
        .load(conn)?;
    for (serial, host_id, names, at, reason, by) in revoked {
        // A renewal or reissue supersedes the old certificate: routine, not news.
        if reason == Some(RevocationReason::Superseded) {
            continue;
        }
        let name = names.split(',').next().unwrap_or("").to_string();
        let reason = reason.map(|r| r.key()).unwrap_or("unspecified");
        out.push(Occurrence {
            event: NotifyEvent::CertRevoked,
            key: format!("cert-revoked:{serial}"),
            subject: format!("Certificate {serial} of {name} was revoked ({reason})"),
            at,
            point: true,
            data: json!({"serial": serial, "host_id": host_id, "names": names.split(',').collect::<Vec<_>>(), "reason": reason, "revoked_by": by, "revoked_at": iso(at)}),
        });
    }
    let tokens: Vec<(
        String,
        i32,
        i32,
        NaiveDateTime,
        NaiveDateTime,
        Option<NaiveDateTime>,
    )> = t::table
        .filter(
            t::uses
                .ge(t::max_uses)
                .or(t::valid_until.le(now + Duration::days(TOKEN_DAYS))),
        )
        .filter(t::valid_until.gt(now - Duration::days(LOOKBACK_DAYS)))
        .select((
            t::name,
            t::uses,
            t::max_uses,
            t::valid_until,
            t::created_at,
            t::last_used_at,
        ))
        .load(conn)?;
    for (name, uses, max_uses, valid_until, created_at, last_used) in tokens {
        let data = json!({"token": name, "uses": uses, "max_uses": max_uses, "valid_until": iso(valid_until)});
        if uses >= max_uses {
            let at = last_used.unwrap_or(created_at);
            out.push(Occurrence {
                event: NotifyEvent::TokenUsedUp,
                key: format!("token-used-up:{name}:{}", created_at.and_utc().timestamp()),
                subject: format!("Token {name} is used up ({uses} of {max_uses})"),
                at,
                point: true,
                data,
            });
        } else if valid_until > now {
            out.push(Occurrence {
                event: NotifyEvent::TokenExpiring,
                key: format!(
                    "token-expiring:{name}:{}",
                    valid_until.and_utc().timestamp()
                ),
                subject: format!("Token {name} expires at {}", iso(valid_until)),
                at: now,
                point: false,
                data,
            });
        }
    }
    for name in HostMapping::conflicting_names(conn)? {
        let mut hosts: Vec<String> = HostMapping::by_name(conn, &name)?
            .into_iter()
            .map(|m| m.host_id)
            .collect();
        hosts.sort();
        let digest =
            hex::encode(&<Sha256 as sha2::Digest>::digest(hosts.join(",").as_bytes())[..8]);
        out.push(Occurrence {
            event: NotifyEvent::MappingConflict,
            key: format!("mapping-conflict:{name}:{digest}"),
            subject: format!("The name {name} is mapped to {} hosts", hosts.len()),
            at: now,
            point: false,
            data: json!({"name": name, "host_ids": hosts}),
        });
    }
    let cas: Vec<(String, String, NaiveDateTime, IssuerState)> = i::table
        .filter(i::decommissioned_at.is_null())
        .filter(i::not_after.le(now + Duration::days(CA_THRESHOLDS[2])))
        .select((i::subject, i::fingerprint_sha256, i::not_after, i::state))
        .load(conn)?;
    for (subject, fingerprint, not_after, state) in cas {
        if state == IssuerState::Retired {
            continue;
        }
        let days = bucket(&CA_THRESHOLDS, not_after - now).unwrap_or(0);
        out.push(Occurrence {
            event: NotifyEvent::CaExpiring,
            key: format!("ca-expiring:{days}:{fingerprint}"),
            subject: if not_after <= now {
                format!("CA {subject} has expired")
            } else {
                format!("CA {subject} expires within {days} days")
            },
            at: now,
            point: false,
            data: json!({"ca": subject, "fingerprint_sha256": fingerprint, "not_after": iso(not_after), "threshold_days": days}),
        });
    }
    if let Ok(super::audit::ChainStatus::Broken { at_id, .. }) = super::audit_log::quick_check(ctx)
    {
        out.push(audit_broken(at_id, now));
    }
    Ok(out)
}

fn audit_broken(at_id: i64, now: NaiveDateTime) -> Occurrence {
    Occurrence {
        event: NotifyEvent::AuditChainBroken,
        key: format!("audit-chain-broken:{at_id}"),
        subject: format!("The audit chain is broken at event {at_id}"),
        at: now,
        point: false,
        data: json!({"at_id": at_id}),
    }
}

/// The CRL could not be published: announced at most once an hour.
pub fn crl_failed(ctx: &Ctx, error: &AppError) {
    let now = db::now();
    let occurrence = Occurrence {
        event: NotifyEvent::CrlPublishFailed,
        key: format!("crl-publish-failed:{}", now.format("%Y-%m-%dT%H")),
        subject: "The CRL failed to publish".into(),
        at: now,
        point: true,
        // With its causes: the operator receiving this needs the database's or the key
        // store's own words, which a client's error page never shows.
        data: json!({"error": error_chain(error)}),
    };
    if let Err(e) = queue(ctx, &[occurrence], now) {
        log::error!("queueing the CRL failure notification failed: {e}");
    }
}

/// Queues what the scan finds at `now`, and each digest that is due.
pub fn scan(ctx: &Ctx, now: NaiveDateTime) -> Result<usize, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let found = find_events(ctx, &mut conn, now)?;
    let queued = queue(ctx, &found, now)?;
    Ok(queued + digests(ctx, now)?)
}

/// Queues each occurrence for every enabled target that wants it, once.
pub fn queue(ctx: &Ctx, found: &[Occurrence], now: NaiveDateTime) -> Result<usize, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let targets = Target::enabled(&mut conn)?;
    // Read first: a scan that finds nothing new writes nothing.
    let mut todo = Vec::new();
    for t in &targets {
        for o in found {
            if !t.wants(o.event) || (o.point && o.at < t.created_at) {
                continue;
            }
            if !Delivery::exists(&mut conn, t.id, &o.key)? {
                todo.push((t, o));
            }
        }
    }
    if todo.is_empty() {
        return Ok(0);
    }
    db::write_tx(&mut conn, |tx| {
        let mut n = 0;
        for (t, o) in &todo {
            let state = if t.digest && o.event != NotifyEvent::Test {
                DeliveryState::Held
            } else {
                DeliveryState::Pending
            };
            if enqueue(tx, t.id, o, state, now)? {
                n += 1;
            }
        }
        Ok(n)
    })
}

/// Inserts one delivery unless its key is queued already (checked under the writers'
/// lock; the unique index is the guard behind the check).
fn enqueue(
    tx: &mut WriteTx,
    target_id: i64,
    o: &Occurrence,
    state: DeliveryState,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    if Delivery::exists(tx, target_id, &o.key)? {
        return Ok(false);
    }
    let body = o.body();
    Delivery::insert(
        tx,
        &NewDelivery {
            target_id,
            event: o.event,
            dedupe_key: &o.key,
            subject: &o.subject,
            payload: &body,
            state,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        },
    )?;
    Ok(true)
}

/// For each digest target whose hour has come today: one delivery (key `digest:DATE`)
/// summarising the events held since the last digest.
pub fn digests(ctx: &Ctx, now: NaiveDateTime) -> Result<usize, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let mut n = 0;
    for t in Target::enabled(&mut conn)? {
        if !t.digest || (now.hour() as i32) < t.digest_hour {
            continue;
        }
        if make_digest(&mut conn, &t, now)? {
            n += 1;
        }
    }
    Ok(n)
}

fn make_digest(conn: &mut DbConn, t: &Target, now: NaiveDateTime) -> Result<bool, AppError> {
    let key = format!("digest:{}", now.format("%Y-%m-%d"));
    if Delivery::exists(conn, t.id, &key)? {
        return Ok(false);
    }
    db::write_tx(conn, |tx| {
        if Delivery::exists(tx, t.id, &key)? {
            return Ok(false);
        }
        let held = Delivery::held(tx, t.id)?;
        if held.is_empty() {
            return Ok(false);
        }
        let events: Vec<serde_json::Value> = held
            .iter()
            .map(|d| serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null))
            .collect();
        let o = Occurrence {
            event: NotifyEvent::Digest,
            key: key.clone(),
            subject: format!("hostca daily digest: {} events", held.len()),
            at: now,
            point: false,
            data: json!({"date": now.format("%Y-%m-%d").to_string(), "count": held.len(), "events": events}),
        };
        enqueue(tx, t.id, &o, DeliveryState::Pending, now)?;
        Delivery::mark_digested(tx, &held.iter().map(|d| d.id).collect::<Vec<_>>())?;
        Ok(true)
    })
}

// ----- delivering -----

/// Sends every due delivery (called by the worker every few seconds). Returns how many
/// were attempted.
pub fn deliver_due(ctx: &Ctx, now: NaiveDateTime) -> Result<usize, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let due = Delivery::due(&mut conn, now, 50)?;
    let mut n = 0;
    for id in due {
        if attempt(ctx, &mut conn, id, now)?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// One attempt at one delivery, if this process wins its claim: `Some(Ok)` sent,
/// `Some(Err(message))` failed, `None` another process (or thread) has it.
pub fn attempt(
    ctx: &Ctx,
    conn: &mut DbConn,
    id: i64,
    now: NaiveDateTime,
) -> Result<Option<Result<(), String>>, AppError> {
    let claimed = db::write_tx(conn, |tx| Ok(Delivery::claim(tx, id, now, now + CLAIM)?))?;
    if !claimed {
        return Ok(None);
    }
    let Some(d) = Delivery::find(conn, id)? else {
        return Ok(None);
    };
    let Some(t) = Target::find(conn, d.target_id)? else {
        return Ok(None);
    };
    let result = send(ctx, &t, &d);
    let done = db::now().max(now);
    db::write_tx(conn, |tx| {
        match &result {
            Ok(()) => {
                Delivery::mark_sent(tx, id, done)?;
                audit::record(
                    tx,
                    &Event::new(AuditCategory::Notify, "notify_sent", ACTOR, &t.name).describe(
                        format!(
                            "{} delivery {id} ({}) sent to {} after {} attempt(s)",
                            t.kind.label(),
                            d.event.key(),
                            t.name,
                            d.attempts
                        ),
                    ),
                )?;
            }
            Err(message) => {
                let attempts = d.attempts;
                let next = BACKOFF_SECONDS
                    .get((attempts - 1).max(0) as usize)
                    .filter(|_| attempts < MAX_ATTEMPTS)
                    .map(|s| done + Duration::seconds(*s));
                Delivery::mark_failed(tx, id, message, next)?;
                if next.is_none() {
                    audit::record(
                        tx,
                        &Event::new(AuditCategory::Notify, "notify_failed", ACTOR, &t.name)
                            .describe(format!(
                                "{} delivery {id} ({}) to {} given up after {attempts} attempts: {message}",
                                t.kind.label(),
                                d.event.key(),
                                t.name
                            ))
                            .failed(),
                    )?;
                }
            }
        }
        Ok(())
    })?;
    Ok(Some(result))
}

fn send(ctx: &Ctx, t: &Target, d: &Delivery) -> Result<(), String> {
    let secret = match &t.secret_sealed {
        Some(sealed) => Some(ctx.token_key.decrypt(&aad(&t.name), sealed).map_err(|_| {
            "the target's secret cannot be decrypted with this data directory's key".to_string()
        })?),
        None => None,
    };
    match t.kind {
        TargetKind::Webhook => send_webhook(t, d, secret.as_deref()),
        TargetKind::Email => super::notify_mail::send(t, d, secret.as_deref()),
    }
}

fn send_webhook(t: &Target, d: &Delivery, secret: Option<&str>) -> Result<(), String> {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hostca/", env!("CARGO_PKG_VERSION")));
    if !t.tls_ca_pem.is_empty() {
        // The target's own CA instead of the public roots.
        builder = builder.tls_built_in_root_certs(false);
        for cert in reqwest::Certificate::from_pem_bundle(t.tls_ca_pem.as_bytes())
            .map_err(|e| format!("the target's CA certificates cannot be read: {e}"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut req = client
        .post(&t.destination)
        .header("Content-Type", "application/json")
        .header("X-Hostca-Event", d.event.key())
        .header("X-Hostca-Delivery", d.id.to_string())
        .body(d.payload.clone());
    if let Some(secret) = secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, d.payload.as_bytes()));
    }
    match req.send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!(
            "the receiver answered HTTP {}",
            r.status().as_u16()
        )),
        Err(e) if e.is_timeout() => {
            Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs()))
        }
        Err(e) => Err(format!("cannot reach the receiver: {}", error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

// ----- the page's operations -----

/// A target as typed in the form.
#[derive(Clone, Debug, Default)]
pub struct TargetInput {
    pub kind: String,
    pub name: String,
    pub destination: String,
    /// The webhook secret, or the SMTP password.
    pub secret: String,
    pub events: Vec<String>,
    pub digest: bool,
    pub digest_hour: String,
    pub smtp_host: String,
    pub smtp_port: String,
    pub smtp_tls: String,
    pub smtp_username: String,
    pub smtp_from: String,
    /// PEM certificates to trust for the target's TLS instead of the public roots.
    pub tls_ca_pem: String,
}

impl TargetInput {
    /// The form pre-filled with a target's settings (the secret is never shown).
    pub fn of(t: &Target) -> TargetInput {
        TargetInput {
            kind: t.kind.key().into(),
            name: t.name.clone(),
            destination: t.destination.clone(),
            secret: String::new(),
            events: t
                .event_kinds()
                .iter()
                .map(|e| e.key().to_string())
                .collect(),
            digest: t.digest,
            digest_hour: t.digest_hour.to_string(),
            smtp_host: t.smtp_host.clone(),
            smtp_port: t.smtp_port.to_string(),
            smtp_tls: t.smtp_tls.key().into(),
            smtp_username: t.smtp_username.clone(),
            smtp_from: t.smtp_from.clone(),
            tls_ca_pem: t.tls_ca_pem.clone(),
        }
    }
}

/// A target as the page lists it (no secret).
#[derive(Clone, Debug)]
pub struct TargetRow {
    pub target: Target,
    pub has_secret: bool,
    pub last: Option<Delivery>,
}

pub struct NotificationsPage {
    pub targets: Vec<TargetRow>,
    pub deliveries: Vec<(Delivery, String)>,
    pub now: NaiveDateTime,
}

pub fn page(ctx: &Ctx) -> Result<NotificationsPage, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let mut targets = Vec::new();
    for t in Target::all(&mut conn)? {
        let last = Delivery::last_of(&mut conn, t.id)?;
        targets.push(TargetRow {
            has_secret: t.secret_sealed.is_some(),
            target: t,
            last,
        });
    }
    Ok(NotificationsPage {
        targets,
        deliveries: Delivery::recent(&mut conn, 50)?,
        now: db::now(),
    })
}

struct Valid {
    kind: TargetKind,
    name: String,
    destination: String,
    events: String,
    digest_hour: i32,
    smtp_port: i32,
    smtp_tls: SmtpTls,
    tls_ca_pem: String,
}

impl Valid {
    /// The settings to write: these checked values, and the form's free text trimmed.
    fn settings<'a>(
        &'a self,
        input: &'a TargetInput,
        secret_sealed: Option<&'a [u8]>,
    ) -> TargetChanges<'a> {
        TargetChanges {
            name: &self.name,
            destination: &self.destination,
            secret_sealed,
            events: &self.events,
            digest: input.digest,
            digest_hour: self.digest_hour,
            smtp_host: input.smtp_host.trim(),
            smtp_port: self.smtp_port,
            smtp_tls: self.smtp_tls,
            smtp_username: input.smtp_username.trim(),
            smtp_from: input.smtp_from.trim(),
            tls_ca_pem: &self.tls_ca_pem,
        }
    }
}

/// The longest CA bundle a target keeps.
const MAX_CA_PEM: usize = 64 * 1024;

/// Checks a pasted CA bundle: empty, or one or more PEM certificates that parse.
fn check_ca_pem(pem: &str) -> Result<String, String> {
    let pem = pem.trim();
    if pem.is_empty() {
        return Ok(String::new());
    }
    if pem.len() > MAX_CA_PEM {
        return Err(format!("at most {} KiB of PEM", MAX_CA_PEM / 1024));
    }
    let mut n = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only certificates (-----BEGIN CERTIFICATE-----), not {}",
                block.label
            ));
        }
        block
            .parse_x509()
            .map_err(|e| format!("certificate {} is not valid X.509: {e}", n + 1))?;
        n += 1;
    }
    if n == 0 {
        return Err("paste one or more -----BEGIN CERTIFICATE----- blocks".into());
    }
    Ok(format!("{pem}\n"))
}

fn validate(input: &TargetInput) -> Result<Valid, FieldErrors> {
    let mut errors = FieldErrors::new();
    let kind = TargetKind::parse(&input.kind);
    if kind.is_none() {
        errors.insert("kind", format!("choose {}", TargetKind::choices()));
    }
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        errors.insert(
            "name",
            "a name of 1 to 64 characters, without control characters".into(),
        );
    }
    let destination = input.destination.trim().to_string();
    match kind {
        Some(TargetKind::Webhook) => {
            match reqwest::Url::parse(&destination) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if !u.username().is_empty() || u.password().is_some() {
                        errors.insert("destination", "put no user name or password in the URL; the secret signs each request".into());
                    }
                }
                _ => {
                    errors.insert(
                        "destination",
                        "an http:// or https:// URL, e.g. https://hooks.example.com/hostca".into(),
                    );
                }
            }
        }
        Some(TargetKind::Email) => {
            let list: Vec<&str> = destination
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect();
            if list.is_empty() || list.iter().any(|a| a.parse::<lettre::Address>().is_err()) {
                errors.insert(
                    "destination",
                    "one or more email addresses, separated by commas".into(),
                );
            }
            if input.smtp_host.trim().is_empty() {
                errors.insert("smtp_host", "the SMTP server's host name".into());
            }
            if input.smtp_from.trim().parse::<lettre::Address>().is_err() {
                errors.insert(
                    "smtp_from",
                    "the sender's email address, e.g. hostca@example.com".into(),
                );
            }
        }
        None => {}
    }
    let mut events = Vec::new();
    for e in &input.events {
        match NotifyEvent::parse(e) {
            Some(NotifyEvent::Digest | NotifyEvent::Test) | None => {
                errors.insert("events", format!("unknown event {e}"));
            }
            Some(ev) => events.push(ev.key()),
        }
    }
    if events.is_empty() && !errors.contains_key("events") {
        errors.insert("events", "choose at least one event".into());
    }
    let digest_hour = if input.digest_hour.trim().is_empty() {
        6
    } else {
        match input.digest_hour.trim().parse::<i32>() {
            Ok(h) if (0..24).contains(&h) => h,
            _ => {
                errors.insert("digest_hour", "an hour (UTC) from 0 to 23".into());
                6
            }
        }
    };
    let smtp_port = if kind == Some(TargetKind::Email) {
        match input.smtp_port.trim().parse::<i32>() {
            Ok(p) if (1..=65535).contains(&p) => p,
            _ => {
                errors.insert(
                    "smtp_port",
                    "a port from 1 to 65535 (587 for STARTTLS)".into(),
                );
                587
            }
        }
    } else {
        587
    };
    let smtp_tls = if kind == Some(TargetKind::Email) {
        SmtpTls::parse(&input.smtp_tls).unwrap_or_else(|| {
            errors.insert("smtp_tls", format!("choose {}", SmtpTls::choices()));
            SmtpTls::Required
        })
    } else {
        SmtpTls::Required
    };
    let tls_ca_pem = check_ca_pem(&input.tls_ca_pem).unwrap_or_else(|e| {
        errors.insert("tls_ca_pem", e);
        String::new()
    });
    if input.secret.chars().count() > 256 {
        errors.insert("secret", "at most 256 characters".into());
    }
    match kind {
        Some(k) if errors.is_empty() => Ok(Valid {
            kind: k,
            name,
            destination,
            events: events.join(","),
            digest_hour,
            smtp_port,
            smtp_tls,
            tls_ca_pem,
        }),
        _ => Err(errors),
    }
}

pub fn add(ctx: &Ctx, actor: &Actor, input: &TargetInput) -> Result<String, FormError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_target_add",
        input.name.trim(),
    )?;
    let v = validate(input).map_err(FormError::Invalid)?;
    let sealed =
        (!input.secret.is_empty()).then(|| ctx.token_key.encrypt(&aad(&v.name), &input.secret));
    let result = db::write_tx(&mut conn, |tx| {
        if Target::find_by_name(tx, &v.name)?.is_some() {
            return Err(AppError::Conflict(format!(
                "a target named {} exists already: choose another name",
                v.name
            )));
        }
        Target::insert(
            tx,
            &NewTarget {
                kind: v.kind,
                enabled: true,
                created_by: &actor.username,
                created_at: db::now(),
                settings: v.settings(input, sealed.as_deref()),
            },
        )?;
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Notify,
                "notify_target_add",
                &actor.username,
                &v.name,
            )
            .describe(format!(
                "{} target {} to {} for {}{}{}",
                v.kind.label(),
                v.name,
                v.destination,
                v.events,
                if input.digest {
                    format!(", daily digest at {:02}:00 UTC", v.digest_hour)
                } else {
                    String::new()
                },
                if sealed.is_some() {
                    ", with a secret"
                } else {
                    ""
                }
            )),
        )?;
        Ok(v.name.clone())
    });
    FormError::conflict_on("name", result)
}

/// The edit form of a target (administrators only: it shows the SMTP settings).
/// Returns the target's ID, its settings, and whether it has a secret.
pub fn edit_form(ctx: &Ctx, actor: &Actor, id: i64) -> Result<(i64, TargetInput, bool), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_target_view",
        &id.to_string(),
    )?;
    let t = target_or_404(&mut conn, id)?;
    Ok((t.id, TargetInput::of(&t), t.secret_sealed.is_some()))
}

/// Changes a target: validated as `add` validates; its kind stays (a webhook's secret
/// and an SMTP password are different things). An empty secret keeps the stored one,
/// which is sealed again under a new name when the target is renamed.
pub fn update(ctx: &Ctx, actor: &Actor, id: i64, input: &TargetInput) -> Result<String, FormError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_target_updated",
        &id.to_string(),
    )?;
    let current = target_or_404(&mut conn, id)?;
    let input = TargetInput {
        kind: current.kind.key().into(),
        ..input.clone()
    };
    let v = validate(&input).map_err(FormError::Invalid)?;
    let sealed = if !input.secret.is_empty() {
        Some(ctx.token_key.encrypt(&aad(&v.name), &input.secret))
    } else if v.name != current.name {
        match &current.secret_sealed {
            Some(old) => {
                let secret = ctx
                    .token_key
                    .decrypt(&aad(&current.name), old)
                    .map_err(|_| {
                        FormError::Invalid(FieldErrors::from([(
                            "secret",
                            "the stored secret cannot be decrypted with this data directory's key: type it again to rename the target".to_string(),
                        )]))
                    })?;
                Some(ctx.token_key.encrypt(&aad(&v.name), &secret))
            }
            None => None,
        }
    } else {
        current.secret_sealed.clone()
    };
    let changes = v.settings(&input, sealed.as_deref());
    let what = changed(&current, &changes, !input.secret.is_empty());
    let result = db::write_tx(&mut conn, |tx| {
        let t = target_or_404(tx, id)?;
        if let Some(other) = Target::find_by_name(tx, &v.name)?.filter(|o| o.id != id) {
            return Err(AppError::Conflict(format!(
                "a target named {} exists already: choose another name",
                other.name
            )));
        }
        Target::update(tx, id, &changes)?;
        // Off the digest: the events it held go out now instead of never.
        let released = if t.digest && !changes.digest {
            Delivery::release_held(tx, id)?
        } else {
            0
        };
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Notify,
                "notify_target_updated",
                &actor.username,
                &v.name,
            )
            .describe(
                format!(
                    "{} target {} changed: {}",
                    t.kind.label(),
                    t.name,
                    if what.is_empty() {
                        "nothing".to_string()
                    } else {
                        what.join("; ")
                    }
                ) + &if released > 0 {
                    format!("; {released} held event(s) released")
                } else {
                    String::new()
                },
            ),
        )?;
        Ok(v.name.clone())
    });
    FormError::conflict_on("name", result)
}

/// What an edit changes, for the audit event (a secret is named, never shown).
fn changed(t: &Target, c: &TargetChanges, new_secret: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |field: &str, old: String, new: String| {
        if old != new {
            out.push(format!("{field} {old} -> {new}"));
        }
    };
    diff("name", t.name.clone(), c.name.into());
    diff("destination", t.destination.clone(), c.destination.into());
    diff("events", t.events.clone(), c.events.into());
    diff("digest", t.digest.to_string(), c.digest.to_string());
    diff(
        "digest hour",
        t.digest_hour.to_string(),
        c.digest_hour.to_string(),
    );
    if t.kind == TargetKind::Email {
        diff("SMTP server", t.smtp_host.clone(), c.smtp_host.into());
        diff(
            "SMTP port",
            t.smtp_port.to_string(),
            c.smtp_port.to_string(),
        );
        diff(
            "encryption",
            t.smtp_tls.key().into(),
            c.smtp_tls.key().into(),
        );
        diff("SMTP user", t.smtp_username.clone(), c.smtp_username.into());
        diff("from", t.smtp_from.clone(), c.smtp_from.into());
    }
    if t.tls_ca_pem != c.tls_ca_pem {
        out.push(if c.tls_ca_pem.is_empty() {
            "trusts the public roots again".into()
        } else {
            format!(
                "trusts its own CA certificates ({} certificate(s))",
                c.tls_ca_pem.matches("-----BEGIN CERTIFICATE-----").count()
            )
        });
    }
    if new_secret {
        out.push("secret replaced".into());
    }
    out
}

fn target_or_404(conn: &mut DbConn, id: i64) -> Result<Target, AppError> {
    Target::find(conn, id)?.ok_or_else(|| {
        AppError::NotFound(format!(
            "no notification target {id}: it may have been deleted"
        ))
    })
}

pub fn delete(ctx: &Ctx, actor: &Actor, id: i64) -> Result<String, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_target_delete",
        &id.to_string(),
    )?;
    db::write_tx(&mut conn, |tx| {
        let t = target_or_404(tx, id)?;
        Target::delete(tx, id)?;
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Notify,
                "notify_target_delete",
                &actor.username,
                &t.name,
            )
            .describe(format!(
                "{} target {} ({}) deleted with its deliveries",
                t.kind.label(),
                t.name,
                t.destination
            )),
        )?;
        Ok(t.name)
    })
}

pub fn set_enabled(ctx: &Ctx, actor: &Actor, id: i64, on: bool) -> Result<String, AppError> {
    let action = if on {
        "notify_target_enable"
    } else {
        "notify_target_disable"
    };
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        action,
        &id.to_string(),
    )?;
    db::write_tx(&mut conn, |tx| {
        let t = target_or_404(tx, id)?;
        Target::set_enabled(tx, id, on)?;
        audit::record(
            tx,
            &Event::new(AuditCategory::Notify, action, &actor.username, &t.name).describe(format!(
                "target {} {}",
                t.name,
                if on { "enabled" } else { "disabled" }
            )),
        )?;
        Ok(t.name)
    })
}

/// Queues a test event for the target and attempts it at once; the answer says how it
/// went (a failure is retried by the worker like any delivery).
pub fn send_test(
    ctx: &Ctx,
    actor: &Actor,
    id: i64,
) -> Result<(String, Result<(), String>), AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_test",
        &id.to_string(),
    )?;
    let now = db::now();
    let key = format!("test:{}", uuid::Uuid::new_v4());
    let t = target_or_404(&mut conn, id)?;
    let o = Occurrence {
        event: NotifyEvent::Test,
        key: key.clone(),
        subject: format!("Test notification from hostca, sent by {}", actor.username),
        at: now,
        point: false,
        data: json!({"requested_by": actor.username}),
    };
    db::write_tx(&mut conn, |tx| {
        enqueue(tx, t.id, &o, DeliveryState::Pending, now)?;
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Notify,
                "notify_test",
                &actor.username,
                &t.name,
            )
            .describe(format!("test notification queued for {}", t.name)),
        )
    })?;
    let d = Delivery::find_by_key(&mut conn, t.id, &key)?
        .ok_or_else(|| AppError::internal("the test delivery just queued is missing"))?;
    let outcome = attempt(ctx, &mut conn, d.id, now)?.unwrap_or(Ok(()));
    Ok((t.name, outcome))
}

/// An administrator's "Send digest now": the digest of every digest target, whatever
/// the hour (still once a day).
pub fn digest_now(ctx: &Ctx, actor: &Actor) -> Result<usize, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        Role::Administrator,
        AuditCategory::Notify,
        "notify_digest",
        "digests",
    )?;
    let now = db::now();
    let mut n = 0;
    for t in Target::enabled(&mut conn)? {
        if t.digest && make_digest(&mut conn, &t, now)? {
            n += 1;
        }
    }
    db::write_tx(&mut conn, |tx| {
        audit::record(
            tx,
            &Event::new(
                AuditCategory::Notify,
                "notify_digest",
                &actor.username,
                "digests",
            )
            .describe(format!("{n} digest(s) queued on request")),
        )
    })?;
    Ok(n)
}
