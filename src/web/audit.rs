//! Security > Audit events: the filtered trail, one event, the CSV export, the chain.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Auth;
use super::listing::PAGE_SIZE;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::audit_event::{AuditEvent, AuditFilter};
use crate::models::kinds::{AuditCategory, Outcome};
use crate::services::audit::ChainStatus;
use crate::services::audit_log::{self as svc, AuditQuery};
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/audit", web::get().to(list))
        .route("/security/audit.csv", web::get().to(export))
        .route("/security/audit/{id}", web::get().to(details));
}

pub struct EventRow {
    pub id: i64,
    pub at: When,
    pub category: String,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub description: String,
    pub reason: String,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
    /// How many refusals an aggregated event stands for, and when the first and last came.
    pub occurrences: i64,
    pub span: String,
    /// `SHA-256` (before the audit key) or `HMAC-SHA256`.
    pub chain: &'static str,
}

impl EventRow {
    fn of(e: AuditEvent, now: chrono::NaiveDateTime) -> EventRow {
        EventRow {
            id: e.id,
            at: When::of(e.at, now),
            category: e.category.to_string(),
            action: e.action,
            actor: e.actor,
            target: e.target,
            description: e.description,
            reason: e.reason,
            outcome: e.outcome.to_string(),
            prev_hash: e.prev_hash,
            hash: e.hash,
            occurrences: e.occurrences,
            span: match (e.first_at, e.last_at) {
                (Some(a), Some(b)) => format!(
                    "{} – {} UTC",
                    a.format("%Y-%m-%d %H:%M:%S"),
                    b.format("%H:%M:%S")
                ),
                _ => String::new(),
            },
            chain: if e.chain == crate::services::audit::CHAIN_SHA256 {
                "SHA-256 (before the audit key)"
            } else {
                "HMAC-SHA256 with the audit key"
            },
        }
    }
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<EventRow>,
    query: AuditQuery,
    actors: Vec<String>,
    /// The filters' choices: key and label.
    categories: Vec<(&'static str, &'static str)>,
    outcomes: Vec<(&'static str, &'static str)>,
    chain_ok: bool,
    chain_text: String,
    total: i64,
    page_no: i64,
    pages: i64,
}

impl ListPage {
    fn q(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }

    fn href(&self, page_no: i64, csv: bool) -> String {
        let q = &self.query;
        let mut params: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("category", &q.category),
            ("user", &q.user),
            ("outcome", &q.outcome),
            ("from", &q.from),
            ("to", &q.to),
            ("q", &q.q),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                params.push((k, v.to_string()));
            }
        }
        if page_no > 1 {
            params.push(("page", page_no.to_string()));
        }
        let base = if csv {
            "/security/audit.csv"
        } else {
            "/security/audit"
        };
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }

    fn page_href(&self, n: i64) -> String {
        self.href(n, false)
    }

    fn csv_href(&self) -> String {
        self.href(1, true)
    }
}

fn chain_text(status: &ChainStatus) -> (bool, String) {
    match status {
        ChainStatus::Intact { events } => (true, format!("The audit chain verifies: {events} events, none changed or removed (each view checks the events added since the last check; the whole chain is checked hourly).")),
        ChainStatus::Broken { at_id, events_checked } => (
            false,
            format!("The audit chain is BROKEN at event {at_id}: that event or the one before it was changed or removed outside hostca ({events_checked} events verified before it)."),
        ),
    }
}

async fn list(
    auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let q = query.clone();
    let (p, chain) = web::block(move || svc::page(&ctx, &q, PAGE_SIZE)).await??;
    let (chain_ok, chain_text) = chain_text(&chain);
    view::ok(&ListPage {
        page: auth.page("Audit events", "audit"),
        rows: p
            .events
            .into_iter()
            .map(|e| EventRow::of(e, p.now))
            .collect(),
        query,
        actors: p.actors,
        categories: AuditCategory::ALL
            .iter()
            .map(|c| (c.key(), c.label()))
            .collect(),
        outcomes: Outcome::ALL.iter().map(|o| (o.key(), o.label())).collect(),
        chain_ok,
        chain_text,
        total: p.total,
        page_no: p.page_no,
        pages: p.pages,
    })
}

#[derive(Template)]
#[template(path = "audit/details.html")]
struct DetailsPage {
    page: Page,
    e: EventRow,
}

async fn details(
    auth: Auth,
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("there is no audit event {id}")))?;
    let e = web::block(move || svc::event(&ctx, id)).await??;
    view::ok(&DetailsPage {
        page: auth.page(&format!("Audit event {id}"), "audit"),
        e: EventRow::of(e, crate::db::now()),
    })
}

/// Streams the filtered events as CSV, a batch at a time, so that a million rows never
/// sit in memory.
async fn export(
    _auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let filter: AuditFilter = svc::parse(&query)?;
    struct State {
        ctx: web::Data<Ctx>,
        filter: AuditFilter,
        before: i64,
        header: bool,
        done: bool,
    }
    let state = State {
        ctx,
        filter,
        before: i64::MAX,
        header: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.header {
            st.header = true;
            return Some((
                Ok::<_, actix_web::Error>(web::Bytes::from_static(svc::CSV_HEADER.as_bytes())),
                st,
            ));
        }
        let (ctx, filter, before) = (st.ctx.clone(), st.filter.clone(), st.before);
        let batch = match web::block(move || svc::export_batch(&ctx, &filter, before)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                log::error!("audit export stopped: {e}");
                st.done = true;
                return Some((
                    Err(actix_web::error::ErrorServiceUnavailable(e.to_string())),
                    st,
                ));
            }
            Err(e) => {
                st.done = true;
                return Some((
                    Err(actix_web::error::ErrorServiceUnavailable(e.to_string())),
                    st,
                ));
            }
        };
        if batch.is_empty() {
            return None;
        }
        st.before = batch.last().map(|e| e.id).unwrap_or(0);
        let mut out = String::with_capacity(batch.len() * 200);
        for e in &batch {
            out.push_str(&svc::csv_line(e));
        }
        Some((Ok(web::Bytes::from(out)), st))
    });
    Ok(view::csv_download("audit").streaming(stream))
}
