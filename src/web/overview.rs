//! The overview (`/`): what needs attention, each number a link to the list it counts,
//! and a chart of expiries per week drawn on the server as SVG (no script needed).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Auth;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::services::overview::{self as svc, Overview};
use crate::services::Ctx;

/// One number of the page: what it counts, the count, the list it links to and that
/// list's CSV (when it has one), and whether a non-zero count is a warning.
pub struct Tile {
    pub label: String,
    pub count: i64,
    pub href: String,
    pub csv: String,
    pub warn: bool,
}

fn tile(label: impl Into<String>, count: i64, href: &str, csv: bool, warn: bool) -> Tile {
    Tile {
        label: label.into(),
        count,
        href: href.to_string(),
        csv: if csv {
            href.replacen("/security/certificates", "/security/certificates.csv", 1)
        } else {
            String::new()
        },
        warn: warn && count > 0,
    }
}

/// A CA or CRL with the time it runs out.
pub struct Countdown {
    pub label: String,
    pub at: When,
    pub days: i64,
    pub href: String,
    /// `active`, `expired` (within 90 days) or `revoked` (past): the badge's colour.
    pub badge: &'static str,
}

/// One bar of the chart, in the SVG's coordinates.
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub height: i64,
    pub count: i64,
    pub week: String,
}

/// The chart's drawing area.
const CHART_WIDTH: i64 = 728;
const CHART_HEIGHT: i64 = 160;
const BAR_STEP: i64 = 14;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    page: Page,
    certificates: Vec<Tile>,
    hosts: Vec<Tile>,
    tokens: Vec<Tile>,
    mappings: Vec<Tile>,
    cas: Vec<Countdown>,
    crls: Vec<Countdown>,
    checklist: (usize, usize),
    bars: Vec<Bar>,
    chart_max: i64,
    chart_total: i64,
}

fn countdown(
    label: String,
    at: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
    href: &str,
) -> Countdown {
    let days = svc::days_until(now, at);
    Countdown {
        label,
        at: When::of(at, now),
        days,
        href: href.to_string(),
        badge: match days {
            d if at <= now || d < 0 => "revoked",
            d if d < 90 => "expired",
            _ => "active",
        },
    }
}

fn bars(o: &Overview) -> (Vec<Bar>, i64) {
    let max = o.weekly.iter().copied().max().unwrap_or(0).max(1);
    let bars = o
        .weekly
        .iter()
        .enumerate()
        .map(|(w, &count)| {
            let height = if count == 0 {
                0
            } else {
                (count * CHART_HEIGHT / max).max(2)
            };
            Bar {
                x: w as i64 * BAR_STEP,
                y: CHART_HEIGHT - height,
                height,
                count,
                week: svc::week_start(o.now, w).format("%Y-%m-%d").to_string(),
            }
        })
        .collect();
    (bars, max)
}

fn render(auth: &Auth, o: &Overview) -> OverviewPage {
    let certs = "/security/certificates";
    let certificates = o
        .expiring
        .iter()
        .map(|(d, n)| {
            tile(
                format!("Expire within {d} days"),
                *n,
                &format!("{certs}?expires_within={d}&sort=expires&dir=asc"),
                true,
                *d <= 7,
            )
        })
        .chain([tile(
            "Revoked in the last 7 days",
            o.recently_revoked,
            &format!("{certs}?view=recently-revoked"),
            true,
            false,
        )])
        .collect();
    let hosts = vec![
        tile(
            "Expired, not renewed (active hosts)",
            o.lapsed,
            &format!("{certs}?view=lapsed&sort=expires&dir=desc"),
            true,
            true,
        ),
        tile(
            "Missed their renewal window",
            o.renewal_missed,
            &format!("{certs}?view=renewal-missed&sort=expires&dir=asc"),
            true,
            true,
        ),
    ];
    let tokens = vec![
        tile(
            format!("Expire within {} days", svc::TOKEN_DAYS),
            o.tokens_expiring,
            &format!(
                "/security/tokens?expires_within={}&sort=valid_until&dir=asc",
                svc::TOKEN_DAYS
            ),
            false,
            false,
        ),
        tile(
            "Used up",
            o.tokens_used_up,
            "/security/tokens?state=used_up",
            false,
            false,
        ),
    ];
    let mappings = vec![
        tile(
            "Waiting for approval",
            o.mappings_pending,
            "/security/host-mappings?tab=pending",
            false,
            true,
        ),
        tile(
            "Names shared by several hosts",
            o.mappings_conflicting,
            "/security/host-mappings?tab=all",
            false,
            true,
        ),
    ];
    let (bars, chart_max) = bars(o);
    OverviewPage {
        page: auth.page("Overview", "overview"),
        certificates,
        hosts,
        tokens,
        mappings,
        cas: o
            .cas
            .iter()
            .map(|c| {
                countdown(
                    format!("CA {} · {}", c.id, c.subject),
                    c.not_after,
                    o.now,
                    "/security/ca",
                )
            })
            .collect(),
        crls: o
            .crls
            .iter()
            .map(|c| {
                countdown(
                    format!("CRL of CA {}", c.issuer_id),
                    c.next_update,
                    o.now,
                    &format!("/crl/{}.pem", c.issuer_id),
                )
            })
            .collect(),
        checklist: o.checklist,
        chart_total: o.weekly.iter().sum(),
        bars,
        chart_max,
    }
}

pub async fn home(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let o = web::block(move || svc::page(&ctx)).await??;
    view::ok(&render(&auth, &o))
}

impl OverviewPage {
    pub fn chart_width(&self) -> i64 {
        CHART_WIDTH
    }
    pub fn chart_height(&self) -> i64 {
        CHART_HEIGHT
    }
    pub fn bar_width(&self) -> i64 {
        BAR_STEP - 3
    }
}
