//! Notification targets and the outbox of their deliveries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{notification_deliveries as nd, notification_targets as nt};
use crate::db::DbConn;

pub use super::kinds::{DeliveryState, NotifyEvent, SmtpTls, TargetKind};

#[derive(Queryable, Clone, Debug)]
#[diesel(table_name = nt)]
pub struct Target {
    pub id: i64,
    pub kind: TargetKind,
    pub name: String,
    /// A webhook's URL, or an email target's recipients (comma separated).
    pub destination: String,
    /// The webhook's HMAC secret or the SMTP password, sealed under the data directory's
    /// token key (the target's name as associated data).
    pub secret_sealed: Option<Vec<u8>>,
    /// The subscribed `NotifyEvent` keys, comma separated.
    pub events: String,
    pub digest: bool,
    pub digest_hour: i32,
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: i32,
    pub smtp_tls: SmtpTls,
    pub smtp_username: String,
    pub smtp_from: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// PEM certificates trusted for this target's TLS (the SMTP server's, or an https
    /// webhook's) instead of the public roots; empty: the public roots.
    pub tls_ca_pem: String,
}

#[derive(Insertable)]
#[diesel(table_name = nt)]
pub struct NewTarget<'a> {
    pub kind: TargetKind,
    pub enabled: bool,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
    #[diesel(embed)]
    pub settings: TargetChanges<'a>,
}

/// What an administrator sets on a target: all an edit changes (its kind, creator and
/// state stay), and with those what an insert writes.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = nt, treat_none_as_null = true)]
pub struct TargetChanges<'a> {
    pub name: &'a str,
    pub destination: &'a str,
    pub secret_sealed: Option<&'a [u8]>,
    pub events: &'a str,
    pub digest: bool,
    pub digest_hour: i32,
    pub smtp_host: &'a str,
    pub smtp_port: i32,
    pub smtp_tls: SmtpTls,
    pub smtp_username: &'a str,
    pub smtp_from: &'a str,
    pub tls_ca_pem: &'a str,
}

impl Target {
    /// The subscribed events (unknown keys, from a newer version, are left out).
    pub fn event_kinds(&self) -> Vec<NotifyEvent> {
        self.events
            .split(',')
            .filter_map(|k| NotifyEvent::parse(k.trim()))
            .collect()
    }

    pub fn wants(&self, event: NotifyEvent) -> bool {
        event == NotifyEvent::Test || self.event_kinds().contains(&event)
    }

    pub fn insert(conn: &mut DbConn, new: &NewTarget) -> QueryResult<usize> {
        diesel::insert_into(nt::table).values(new).execute(conn)
    }

    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<Target>> {
        nt::table.order(nt::name.asc()).load(conn)
    }

    pub fn enabled(conn: &mut DbConn) -> QueryResult<Vec<Target>> {
        nt::table
            .filter(nt::enabled.eq(true))
            .order(nt::id.asc())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Target>> {
        nt::table.find(id).first(conn).optional()
    }

    pub fn find_by_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<Target>> {
        nt::table.filter(nt::name.eq(name)).first(conn).optional()
    }

    pub fn update(conn: &mut DbConn, id: i64, changes: &TargetChanges) -> QueryResult<usize> {
        diesel::update(nt::table.find(id))
            .set(changes)
            .execute(conn)
    }

    pub fn set_enabled(conn: &mut DbConn, id: i64, on: bool) -> QueryResult<usize> {
        diesel::update(nt::table.find(id))
            .set(nt::enabled.eq(on))
            .execute(conn)
    }

    /// Deletes the target and its deliveries (SQLite's foreign keys may be off).
    pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<usize> {
        diesel::delete(nd::table.filter(nd::target_id.eq(id))).execute(conn)?;
        diesel::delete(nt::table.find(id)).execute(conn)
    }
}

#[derive(Queryable, Clone, Debug)]
#[diesel(table_name = nd)]
pub struct Delivery {
    pub id: i64,
    pub target_id: i64,
    pub event: NotifyEvent,
    /// Unique per target: what makes an event go out once, across restarts and processes.
    pub dedupe_key: String,
    pub subject: String,
    /// The JSON body a webhook receives (and an email's text is made from).
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub claimed_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = nd)]
pub struct NewDelivery<'a> {
    pub target_id: i64,
    pub event: NotifyEvent,
    pub dedupe_key: &'a str,
    pub subject: &'a str,
    pub payload: &'a str,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl Delivery {
    pub fn exists(conn: &mut DbConn, target_id: i64, key: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            nd::table
                .filter(nd::target_id.eq(target_id))
                .filter(nd::dedupe_key.eq(key)),
        ))
        .get_result(conn)
    }

    pub fn insert(conn: &mut DbConn, new: &NewDelivery) -> QueryResult<usize> {
        diesel::insert_into(nd::table).values(new).execute(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Delivery>> {
        nd::table.find(id).first(conn).optional()
    }

    pub fn find_by_key(
        conn: &mut DbConn,
        target_id: i64,
        key: &str,
    ) -> QueryResult<Option<Delivery>> {
        nd::table
            .filter(nd::target_id.eq(target_id))
            .filter(nd::dedupe_key.eq(key))
            .first(conn)
            .optional()
    }

    /// Deliveries whose time has come and that no process holds.
    pub fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
        nd::table
            .filter(nd::state.eq(DeliveryState::Pending))
            .filter(nd::next_attempt_at.le(now))
            .filter(nd::claimed_until.is_null().or(nd::claimed_until.lt(now)))
            .order(nd::next_attempt_at.asc())
            .select(nd::id)
            .limit(limit)
            .load(conn)
    }

    /// Takes a due delivery for one attempt: a conditional update, so that of two
    /// processes (or threads) only one sends it. Counts the attempt.
    pub fn claim(
        conn: &mut DbConn,
        id: i64,
        now: NaiveDateTime,
        until: NaiveDateTime,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            nd::table
                .filter(nd::id.eq(id))
                .filter(nd::state.eq(DeliveryState::Pending))
                .filter(nd::next_attempt_at.le(now))
                .filter(nd::claimed_until.is_null().or(nd::claimed_until.lt(now))),
        )
        .set((
            nd::claimed_until.eq(Some(until)),
            nd::attempts.eq(nd::attempts + 1),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    pub fn mark_sent(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(nd::table.find(id))
            .set((
                nd::state.eq(DeliveryState::Sent),
                nd::sent_at.eq(Some(now)),
                nd::claimed_until.eq(None::<NaiveDateTime>),
                nd::last_error.eq(None::<String>),
            ))
            .execute(conn)
    }

    /// A failed attempt: retried at `next`, or given up (`next` = `None`).
    pub fn mark_failed(
        conn: &mut DbConn,
        id: i64,
        error: &str,
        next: Option<NaiveDateTime>,
    ) -> QueryResult<usize> {
        let state = if next.is_some() {
            DeliveryState::Pending
        } else {
            DeliveryState::Failed
        };
        let mut q = diesel::update(nd::table.find(id))
            .set((
                nd::state.eq(state),
                nd::claimed_until.eq(None::<NaiveDateTime>),
                nd::last_error.eq(Some(error)),
            ))
            .execute(conn)?;
        if let Some(next) = next {
            q = diesel::update(nd::table.find(id))
                .set(nd::next_attempt_at.eq(next))
                .execute(conn)?;
        }
        Ok(q)
    }

    /// A target's deliveries held for its digest.
    pub fn held(conn: &mut DbConn, target_id: i64) -> QueryResult<Vec<Delivery>> {
        nd::table
            .filter(nd::target_id.eq(target_id))
            .filter(nd::state.eq(DeliveryState::Held))
            .order(nd::id.asc())
            .load(conn)
    }

    /// A target no longer on a digest: what it held is sent as it would have been.
    pub fn release_held(conn: &mut DbConn, target_id: i64) -> QueryResult<usize> {
        diesel::update(
            nd::table
                .filter(nd::target_id.eq(target_id))
                .filter(nd::state.eq(DeliveryState::Held)),
        )
        .set(nd::state.eq(DeliveryState::Pending))
        .execute(conn)
    }

    pub fn mark_digested(conn: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
        diesel::update(nd::table.filter(nd::id.eq_any(ids)))
            .set(nd::state.eq(DeliveryState::Digested))
            .execute(conn)
    }

    /// The newest deliveries, with their target's name.
    pub fn recent(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<(Delivery, String)>> {
        nd::table
            .inner_join(nt::table.on(nt::id.eq(nd::target_id)))
            .order(nd::id.desc())
            .limit(limit)
            .select((nd::all_columns, nt::name))
            .load(conn)
    }

    /// The newest delivery of a target that was attempted or finished.
    pub fn last_of(conn: &mut DbConn, target_id: i64) -> QueryResult<Option<Delivery>> {
        nd::table
            .filter(nd::target_id.eq(target_id))
            .filter(nd::state.ne(DeliveryState::Held))
            .filter(nd::state.ne(DeliveryState::Digested))
            .order(nd::id.desc())
            .first(conn)
            .optional()
    }
}
