//! Security > Hosts: the host list, a host's page, revoking a host, reissue tokens.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, CsrfForm, Form};
use super::certificates::{reasons, CertView};
use super::forms::{AutoReissueForm, NameForm, ReturnTo, RevokeForm, Switch};
use super::listing::{self, ListQuery, Listing, PAGE_SIZE};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::kinds::{CertStatus, HostSort, MappingState};
use crate::services::mappings::{self as map_svc, MappingView};
use crate::services::tokens::{self as token_svc, ReissueInput};
use crate::services::{certificates as cert_svc, hosts as svc, Ctx, FieldErrors};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/hosts", web::get().to(list))
        .route("/security/hosts", web::post().to(add))
        .route("/security/hosts/renew-all", web::post().to(renew_all))
        .route("/security/hosts/{host_id}", web::get().to(details))
        .route("/security/hosts/{host_id}/revoke", web::post().to(revoke))
        .route(
            "/security/hosts/{host_id}/reissue-token",
            web::post().to(reissue_token),
        )
        .route(
            "/security/hosts/{host_id}/auto-reissue",
            web::post().to(auto_reissue),
        )
        .route(
            "/security/hosts/{host_id}/allow-renewal",
            web::post().to(allow_renewal),
        )
        .route(
            "/security/hosts/{host_id}/acme-accounts/{account_id}/deactivate",
            web::post().to(deactivate_acme_account),
        )
        .route(
            "/security/hosts/{host_id}/mappings",
            web::post().to(add_mapping),
        )
        .route(
            "/security/hosts/{host_id}/mappings/{name}/{decision}",
            web::post().to(decide_mapping),
        )
        .route("/security/host-mappings", web::get().to(mappings_page))
        .route(
            "/security/host-mappings/decide",
            web::post().to(decide_selected),
        );
}

pub struct HostRow {
    pub host_id: String,
    pub primary_name: String,
    pub other_names: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub last_issued: Option<When>,
    pub auto_reissue_until: Option<When>,
    pub created_at: When,
}

#[derive(Template)]
#[template(path = "hosts/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<HostRow>,
    list: Listing,
}

async fn list(
    auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let paging = listing::parse(&query, HostSort::Name.key(), HostSort::KEYS)?;
    let (q, by_created, desc, offset) = (
        paging.q.clone(),
        paging.sort == HostSort::Created.key(),
        paging.descending,
        paging.offset(),
    );
    let svc::Page {
        hosts: rows,
        total,
        now,
    } = web::block(move || svc::page(&ctx, &q, by_created, desc, offset, PAGE_SIZE)).await??;
    view::ok(&ListPage {
        page: auth.page("Hosts", "hosts"),
        list: Listing::new(
            "/security/hosts",
            &paging,
            "",
            String::new(),
            total,
            rows.len(),
        ),
        rows: rows
            .into_iter()
            .map(|s| {
                let status = s.latest.as_ref().map(|c| c.status(now));
                HostRow {
                    created_at: When::of(s.host.created_at, now),
                    other_names: s.other_names.join(", "),
                    status_key: status.map(|st| st.key()).unwrap_or("none"),
                    status_label: status.map(|st| st.label()).unwrap_or("No certificate"),
                    last_issued: s.latest.as_ref().map(|c| When::of(c.not_before, now)),
                    auto_reissue_until: When::maybe(s.host.auto_reissue_window(now), now),
                    host_id: s.host.host_id,
                    primary_name: s.host.primary_name,
                }
            })
            .collect(),
    })
}

async fn add(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(NameForm { name }): CsrfForm<NameForm>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let host = web::block(move || svc::add(&ctx, &actor, &name))
        .await??
        .host;
    view::flash(
        &auth.session,
        "success",
        format!(
            "Host {} added with host ID {}.",
            host.primary_name, host.host_id
        ),
    );
    Ok(view::redirect(&format!("/security/hosts/{}", host.host_id)))
}

pub struct MappingRow {
    pub host_id: String,
    pub primary_name: String,
    pub name: String,
    pub state: String,
    pub source: String,
    pub created_at: When,
    pub is_primary: bool,
    /// `(host_id, primary name)` of the other hosts that have this name.
    pub shared_with: Vec<(String, String)>,
}

impl MappingRow {
    pub fn of(v: MappingView, now: chrono::NaiveDateTime) -> MappingRow {
        MappingRow {
            created_at: When::of(v.mapping.created_at, now),
            host_id: v.mapping.host_id,
            name: v.mapping.name,
            state: v.mapping.state.to_string(),
            source: v.mapping.source.to_string(),
            is_primary: v.is_primary,
            primary_name: v.primary_name,
            shared_with: v.shared_with,
        }
    }

    pub fn conflict(&self) -> bool {
        !self.shared_with.is_empty()
    }

    pub fn shared_text(&self) -> String {
        self.shared_with
            .iter()
            .map(|(id, name)| format!("{name} ({id})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Template)]
#[template(path = "hosts/details.html")]
struct DetailsPage {
    page: Page,
    host_id: String,
    primary_name: String,
    created: When,
    created_by: String,
    mappings: Vec<MappingRow>,
    certs: Vec<CertView>,
    acme_accounts: Vec<AcmeAccountRow>,
    active: usize,
    auto_reissue_until: Option<When>,
    renewal_allowed_until: Option<When>,
    reasons: Vec<(&'static str, &'static str)>,
    input: ReissueInput,
    errors: FieldErrors,
}

impl DetailsPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

async fn host_page(
    auth: &Auth,
    ctx: web::Data<Ctx>,
    host_id: String,
    input: ReissueInput,
    errors: FieldErrors,
) -> Result<DetailsPage, AppError> {
    let d = web::block(move || svc::details_of(&ctx, &host_id)).await??;
    let now = crate::db::now();
    let certs: Vec<CertView> = d
        .certificates
        .iter()
        .map(|c| CertView::of(c, now))
        .collect();
    Ok(DetailsPage {
        page: auth.page(&format!("Host {}", d.host.primary_name), "hosts"),
        active: certs
            .iter()
            .filter(|c| c.status_key == CertStatus::Active.key())
            .count(),
        certs,
        acme_accounts: d
            .acme_accounts
            .iter()
            .map(|a| AcmeAccountRow::of(a, now))
            .collect(),
        mappings: d
            .mappings
            .into_iter()
            .map(|m| MappingRow::of(m, now))
            .collect(),
        auto_reissue_until: When::maybe(d.host.auto_reissue_window(now), now),
        renewal_allowed_until: When::maybe(d.host.renewal_allowed_until.filter(|u| *u > now), now),
        created: When::of(d.host.created_at, now),
        created_by: d.host.created_by,
        host_id: d.host.host_id,
        primary_name: d.host.primary_name,
        reasons: reasons(),
        input,
        errors,
    })
}

async fn details(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let input = ReissueInput {
        valid_for: "1d".into(),
        ..ReissueInput::default()
    };
    let page = host_page(&auth, ctx, host_id.into_inner(), input, FieldErrors::new()).await?;
    view::ok(&page)
}

async fn revoke(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
    CsrfForm(RevokeForm { reason, .. }): CsrfForm<RevokeForm>,
) -> Result<HttpResponse, AppError> {
    let host_id = host_id.into_inner();
    let actor = auth.actor();
    let id = host_id.clone();
    let n = web::block(move || cert_svc::revoke_host(&ctx, &actor, &id, &reason)).await??;
    let message = match n {
        0 => "The host had no certificate left to revoke.".to_string(),
        1 => "1 certificate revoked. The CRL has been republished.".to_string(),
        n => format!("{n} certificates revoked. The CRL has been republished."),
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect(&format!("/security/hosts/{host_id}")))
}

async fn reissue_token(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
    CsrfForm(input): CsrfForm<ReissueInput>,
) -> Result<HttpResponse, AppError> {
    let host_key = host_id.into_inner();
    let actor = auth.actor();
    let (c, k, i) = (ctx.clone(), host_key.clone(), input.clone());
    let result = web::block(move || token_svc::create_reissue(&c, &actor, &k, &i)).await?;
    let (status, errors) = match result {
        Ok(token) => {
            view::flash(
                &auth.session,
                "success",
                format!(
                    "Reissue token {} created. Use Show to reveal its value.",
                    token.name
                ),
            );
            return Ok(view::redirect(&format!("/security/tokens/{}", token.name)));
        }
        Err(e) => view::rejected(e)?,
    };
    let mut page = host_page(&auth, ctx, host_key, input, errors).await?;
    page.page.flash.push(view::Flash {
        kind: "error".into(),
        message: "The reissue token was not created: correct the fields marked below.".into(),
    });
    view::render(status, &page)
}

async fn auto_reissue(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
    CsrfForm(form): CsrfForm<AutoReissueForm>,
) -> Result<HttpResponse, AppError> {
    let host_id = host_id.into_inner();
    let allow = form.action == Switch::Allow;
    let (actor, id) = (auth.actor(), host_id.clone());
    let until = web::block(move || svc::set_auto_reissue(&ctx, &actor, &id, allow)).await??;
    let message = match until {
        Some(u) => format!("Auto reissue allowed until {} UTC: the host may get one new certificate without a token.", u.format("%Y-%m-%d %H:%M")),
        None => "Auto reissue disallowed.".to_string(),
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect(&format!("/security/hosts/{host_id}")))
}

/// An ACME account as the host page shows it.
pub struct AcmeAccountRow {
    pub account_id: String,
    pub thumbprint: String,
    /// The element the thumbprint's Copy button copies.
    pub copy_id: String,
    pub binding: String,
    pub status_key: &'static str,
    pub status_label: &'static str,
    pub created: When,
    pub last_order: Option<When>,
    pub valid: bool,
}

impl AcmeAccountRow {
    fn of(a: &crate::models::acme::AcmeAccount, now: chrono::NaiveDateTime) -> AcmeAccountRow {
        AcmeAccountRow {
            account_id: a.account_id.clone(),
            thumbprint: a.thumbprint.clone(),
            copy_id: format!("acme-key-{}", a.account_id),
            binding: match &a.token_name {
                Some(t) => format!("{} {t}", a.binding.label()),
                None => a.binding.label().to_string(),
            },
            status_key: a.status.key(),
            status_label: a.status.label(),
            created: When::of(a.created_at, now),
            last_order: When::maybe(a.last_order_at, now),
            valid: a.status == crate::models::acme::AcmeAccountStatus::Valid,
        }
    }
}

async fn deactivate_acme_account(
    auth: Auth,
    ctx: web::Data<Ctx>,
    path: web::Path<(String, String)>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (host_id, account_id) = path.into_inner();
    let (actor, host) = (auth.actor(), host_id.clone());
    let account = web::block(move || {
        crate::services::acme::deactivate_by_admin(&ctx, &actor, &host, &account_id)
    })
    .await??;
    view::flash(
        &auth.session,
        "success",
        format!(
            "ACME account {} deactivated: its key can no longer order, revoke or change keys. The host's certificates are unchanged.",
            account.account_id
        ),
    );
    Ok(view::redirect(&format!("/security/hosts/{host_id}")))
}

async fn allow_renewal(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let host_id = host_id.into_inner();
    let (actor, id) = (auth.actor(), host_id.clone());
    let until =
        web::block(move || crate::services::renewal::allow_early_renewal(&ctx, &actor, &id))
            .await??;
    view::flash(
        &auth.session,
        "success",
        format!(
            "Early renewal allowed until {} UTC: the host's next renewal is not held back by the renewal interval.",
            until.format("%Y-%m-%d %H:%M")
        ),
    );
    Ok(view::redirect(&format!("/security/hosts/{host_id}")))
}

async fn renew_all(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(form): CsrfForm<super::ca::StepForm>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let n = web::block(move || crate::services::renewal::renew_all(&ctx, &actor, &form.reason))
        .await??;
    view::flash(
        &auth.session,
        "success",
        format!("{n} host(s) may renew once, now: their renewal window opened (agents re-key at their next poll)."),
    );
    Ok(view::redirect("/security/hosts"))
}

async fn add_mapping(
    auth: Auth,
    ctx: web::Data<Ctx>,
    host_id: web::Path<String>,
    CsrfForm(NameForm { name }): CsrfForm<NameForm>,
) -> Result<HttpResponse, AppError> {
    let (host_id, actor) = (host_id.into_inner(), auth.actor());
    let (id, n) = (host_id.clone(), name.clone());
    let state = web::block(move || map_svc::add(&ctx, &actor, &id, &n)).await??;
    let message = if state == MappingState::Approved {
        format!(
            "The name {} is mapped to this host.",
            name.trim().to_ascii_lowercase()
        )
    } else {
        format!(
            "The name {} is also mapped to another host: the mapping waits for approval.",
            name.trim().to_ascii_lowercase()
        )
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect(&format!("/security/hosts/{host_id}")))
}

async fn decide_mapping(
    auth: Auth,
    ctx: web::Data<Ctx>,
    path: web::Path<(String, String, String)>,
    CsrfForm(form): CsrfForm<ReturnTo>,
) -> Result<HttpResponse, AppError> {
    let (host_id, name, decision) = path.into_inner();
    let actor = auth.actor();
    let (id, n, d) = (host_id.clone(), name.clone(), decision.clone());
    web::block(move || map_svc::decide(&ctx, &actor, &id, &n, &d)).await??;
    view::flash(
        &auth.session,
        "success",
        format!("Mapping {name}: {decision} done."),
    );
    let back = match form.return_to.as_deref() {
        Some("mappings") => "/security/host-mappings".to_string(),
        _ => format!("/security/hosts/{host_id}"),
    };
    Ok(view::redirect(&back))
}

/// Approve or reject the selected mappings (`mapping` = `host_id name`, repeated).
async fn decide_selected(
    auth: Auth,
    ctx: web::Data<Ctx>,
    form: Form,
) -> Result<HttpResponse, AppError> {
    let decision = form.text("decision");
    if decision != "approve" && decision != "reject" {
        return Err(AppError::BadRequest(
            "decision must be approve or reject".into(),
        ));
    }
    let selected: Vec<(String, String)> = form
        .all("mapping")
        .into_iter()
        .filter_map(|v| {
            v.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let actor = auth.actor();
    let d = decision.clone();
    let n = web::block(move || map_svc::decide_many(&ctx, &actor, &selected, &d)).await??;
    view::flash(
        &auth.session,
        "success",
        format!("{n} mapping(s): {decision} done."),
    );
    Ok(view::redirect("/security/host-mappings"))
}

#[derive(serde::Deserialize)]
struct TabQuery {
    tab: Option<String>,
}

#[derive(Template)]
#[template(path = "hosts/mappings.html")]
struct MappingsPage {
    page: Page,
    tab: String,
    pending: Vec<MappingRow>,
    all: Vec<MappingRow>,
}

async fn mappings_page(
    auth: Auth,
    ctx: web::Data<Ctx>,
    q: web::Query<TabQuery>,
) -> Result<HttpResponse, AppError> {
    let tab = match q.tab.as_deref().unwrap_or("pending") {
        t @ ("pending" | "all") => t.to_string(),
        t => {
            return Err(AppError::BadRequest(format!(
                "unknown tab '{t}': use pending or all"
            )))
        }
    };
    let (pending, all) = web::block(move || map_svc::overview(&ctx)).await??;
    let now = crate::db::now();
    view::ok(&MappingsPage {
        page: auth.page("Host mappings", "mappings"),
        tab,
        pending: pending
            .into_iter()
            .map(|m| MappingRow::of(m, now))
            .collect(),
        all: all.into_iter().map(|m| MappingRow::of(m, now)).collect(),
    })
}
