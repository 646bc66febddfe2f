//! Audit events, chained by hash: each event stores the hash of the one before it, so a
//! row edited or removed by hand shows as a break at that row.

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::db::{self, group_commit, DbConn};
use crate::error::AppError;
use crate::models::audit_event::{AuditEvent, NewAuditEvent};

pub const TOKEN: &str = "TOKEN";
pub const CERT: &str = "CERT";
pub const HOST: &str = "HOST";
pub const SEC_CONFIG: &str = "SEC_CONFIG";
pub const LOGIN: &str = "LOGIN";
pub const USER: &str = "USER";

pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

/// The hash every chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug)]
pub struct Event {
    pub category: &'static str,
    pub action: &'static str,
    pub actor: String,
    pub target: String,
    pub description: String,
    pub reason: String,
    pub outcome: &'static str,
}

impl Event {
    pub fn new(category: &'static str, action: &'static str, actor: &str, target: &str) -> Event {
        Event {
            category,
            action,
            actor: actor.to_string(),
            target: target.to_string(),
            description: String::new(),
            reason: String::new(),
            outcome: SUCCESS,
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
        self.outcome = FAILURE;
        self
    }
}

pub fn format_at(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

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

/// Appends an event to the chain. Call it inside the write transaction of the change it
/// records (`db::write_tx` holds the lock that keeps the chain linear).
pub fn record(conn: &mut DbConn, e: &Event) -> Result<(), AppError> {
    let prev = match group_commit::memo_chain_head() {
        Some(head) => head,
        None => AuditEvent::latest_hash(conn)?.unwrap_or_else(|| GENESIS.to_string()),
    };
    let at = db::now();
    let hash = chain_hash(
        &prev,
        at,
        e.category,
        e.action,
        &e.actor,
        &e.target,
        &e.description,
        &e.reason,
        e.outcome,
    );
    AuditEvent::insert(
        conn,
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
        },
    )?;
    group_commit::remember_chain_head(&hash);
    Ok(())
}

/// Records an event in a transaction of its own: for refusals, whose own transaction
/// was rolled back.
pub fn record_alone(conn: &mut DbConn, e: &Event) -> Result<(), AppError> {
    db::write_tx(conn, |c| record(c, e))
}

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

/// Checks every event from the chain's anchor (the genesis, or the last event removed by
/// retention) to the newest.
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
    let settings = crate::models::settings::Settings::load(conn)?;
    let anchor_id = settings.audit_anchor_id;
    let mut prev = settings.audit_anchor_hash;
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
        let batch = AuditEvent::after(conn, last_id, 5000)?;
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
            let expected = chain_hash(
                &prev,
                ev.at,
                &ev.category,
                &ev.action,
                &ev.actor,
                &ev.target,
                &ev.description,
                &ev.reason,
                &ev.outcome,
            );
            if ev.prev_hash != prev || ev.hash != expected {
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

/// Removes events older than the retention period. The last removed event becomes the
/// chain's anchor, and the removal is itself an event. Returns how many were removed.
pub fn apply_retention(conn: &mut DbConn) -> Result<usize, AppError> {
    use crate::models::settings::Settings;
    db::write_tx(conn, |c| {
        let days = Settings::load(c)?.audit_retention_days.max(1);
        let cutoff = db::now() - chrono::Duration::days(i64::from(days));
        let Some(last) = AuditEvent::last_before(c, cutoff)? else {
            return Ok(0);
        };
        let n = AuditEvent::delete_through(c, last.id)?;
        Settings::set_audit_anchor(c, last.id, &last.hash)?;
        record(
            c,
            &Event::new(SEC_CONFIG, "audit_retention", "system", "audit events").describe(format!(
                "{n} audit events older than {days} days removed (through event {}); the chain now starts after it",
                last.id
            )),
        )?;
        Ok(n)
    })
}
