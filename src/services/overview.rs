//! What needs attention, in numbers: the console's overview page and the gauges of
//! `/metrics`. Every number is one indexed count (the partial indexes of unrevoked
//! certificates by expiry and renewal time, `revoked_at`, the tokens' and mappings'
//! tables), and each page number is the total of the filtered list it links to, counted
//! by the same filter: a number and its list cannot disagree.

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::metrics::Gauges;
use crate::models::certificate::{CertAttention, CertFilter, CertSort, Certificate};
use crate::models::host_mapping::{HostMapping, MappingState};
use crate::models::kinds::{CertStatus, TokenSort, TokenState};
use crate::models::token::{Token, TokenFilter};

/// The expiry windows the page, `/metrics` and the alert rules use, in days.
pub const EXPIRY_WINDOWS: [u32; 3] = [7, 30, 90];
/// Tokens that expire within so many days are shown.
pub const TOKEN_DAYS: u32 = 7;
/// The chart of expiries covers so many weeks.
pub const CHART_WEEKS: u32 = 52;

/// A CA as the overview counts it down.
#[derive(Clone, Debug)]
pub struct CaCountdown {
    pub id: i64,
    pub role: &'static str,
    pub subject: String,
    pub not_after: NaiveDateTime,
}

/// A CRL's next update.
#[derive(Clone, Debug)]
pub struct CrlDue {
    pub issuer_id: i64,
    pub next_update: NaiveDateTime,
}

#[derive(Clone, Debug)]
pub struct Overview {
    pub now: NaiveDateTime,
    /// Active certificates expiring within each of `EXPIRY_WINDOWS`.
    pub expiring: Vec<(u32, i64)>,
    pub lapsed: i64,
    pub renewal_missed: i64,
    pub recently_revoked: i64,
    pub tokens_expiring: i64,
    pub tokens_used_up: i64,
    pub mappings_pending: i64,
    pub mappings_conflicting: i64,
    pub cas: Vec<CaCountdown>,
    pub crls: Vec<CrlDue>,
    /// The hardening checklist: lines that pass, and all lines.
    pub checklist: (usize, usize),
    /// Active certificates expiring in each of the next `CHART_WEEKS` weeks.
    pub weekly: Vec<i64>,
}

/// A certificate list filter counting everything (no page).
fn certificates(expires_within: Option<u32>, attention: Option<CertAttention>) -> CertFilter {
    CertFilter {
        q: String::new(),
        status: None,
        expires_within,
        attention,
        sort: CertSort::Issued,
        descending: true,
        offset: 0,
        limit: 0,
    }
}

fn tokens(state: Option<TokenState>, expires_within: Option<u32>) -> TokenFilter {
    TokenFilter {
        q: String::new(),
        state,
        expires_within,
        sort: TokenSort::CreatedAt,
        descending: true,
        offset: 0,
        limit: 0,
    }
}

fn expiring(c: &mut DbConn, now: NaiveDateTime) -> Result<Vec<(u32, i64)>, AppError> {
    EXPIRY_WINDOWS
        .iter()
        .map(|&d| Ok((d, Certificate::count(c, &certificates(Some(d), None), now)?)))
        .collect()
}

/// The CAs still in the trust bundle and the CRLs this process signs.
fn cas(ctx: &Ctx) -> (Vec<CaCountdown>, Vec<CrlDue>) {
    let set = ctx.pki.issuers();
    let cas = set
        .issuers
        .iter()
        .filter(|l| l.row.decommissioned_at.is_none())
        .map(|l| CaCountdown {
            id: l.row.id,
            role: l.row.role.key(),
            subject: l.row.subject.clone(),
            not_after: l.ca.not_after,
        })
        .collect();
    let crls = set
        .publishing
        .iter()
        .filter_map(|&id| {
            ctx.pki.crl_of(id).map(|crl| CrlDue {
                issuer_id: id,
                next_update: crl.next_update,
            })
        })
        .filter(|c| c.next_update != NaiveDateTime::default())
        .collect();
    (cas, crls)
}

pub fn page(ctx: &Ctx) -> Result<Overview, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let c = &mut conn;
    let now = db::now();
    let count = |c: &mut DbConn, a| Certificate::count(c, &certificates(None, Some(a)), now);
    let (cas, crls) = cas(ctx);
    let checks = super::checklist::run(ctx, ctx.tls)?;
    Ok(Overview {
        now,
        expiring: expiring(c, now)?,
        lapsed: count(c, CertAttention::Lapsed)?,
        renewal_missed: count(c, CertAttention::RenewalMissed)?,
        recently_revoked: count(c, CertAttention::RecentlyRevoked)?,
        tokens_expiring: Token::count(c, &tokens(None, Some(TOKEN_DAYS)), now)?,
        tokens_used_up: Token::count(c, &tokens(Some(TokenState::UsedUp), None), now)?,
        mappings_pending: HostMapping::count_in_state(c, MappingState::Pending)?,
        mappings_conflicting: HostMapping::conflicting_names(c)?.len() as i64,
        cas,
        crls,
        checklist: (
            checks.iter().filter(|k| k.status == "pass").count(),
            checks.len(),
        ),
        weekly: Certificate::expiring_per_week(c, now, CHART_WEEKS)?,
    })
}

/// The gauges of one `/metrics` scrape.
pub fn gauges(ctx: &Ctx) -> Result<Gauges, AppError> {
    let mut conn = db::get(&ctx.pool)?;
    let c = &mut conn;
    let now = db::now();
    let active = Certificate::count(
        c,
        &CertFilter {
            status: Some(CertStatus::Active),
            ..certificates(None, None)
        },
        now,
    )?;
    let (cas, crls) = cas(ctx);
    Ok(Gauges {
        certificates: vec![
            (CertStatus::Active, active),
            (CertStatus::Expired, Certificate::count_expired(c, now)?),
            (CertStatus::Revoked, Certificate::count_revoked(c, false)?),
            (CertStatus::Superseded, Certificate::count_revoked(c, true)?),
        ],
        expiring: expiring(c, now)?,
        ca_not_after: cas
            .iter()
            .map(|ca| (ca.id, ca.role, ca.not_after.and_utc().timestamp()))
            .collect(),
        crl_next_update: crls
            .iter()
            .map(|crl| (crl.issuer_id, crl.next_update.and_utc().timestamp()))
            .collect(),
    })
}

/// Days from `now` to `at`, rounded down (negative once past).
pub fn days_until(now: NaiveDateTime, at: NaiveDateTime) -> i64 {
    (at - now).num_days()
}

/// The start of chart week `w`.
pub fn week_start(now: NaiveDateTime, w: usize) -> NaiveDateTime {
    now + Duration::weeks(w as i64)
}
