//! Security > Hosts: the host list, a host's page, revoking a host, reissue tokens.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, Form};
use super::certificates::{reasons, CertView};
use super::listing::{self, ListQuery, Listing, PAGE_SIZE};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::services::tokens::{self as token_svc, ReissueInput};
use crate::services::{certificates as cert_svc, hosts as svc, Ctx, FieldErrors, FormError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/hosts", web::get().to(list))
        .route("/security/hosts", web::post().to(add))
        .route("/security/hosts/{host_id}", web::get().to(details))
        .route("/security/hosts/{host_id}/revoke", web::post().to(revoke))
        .route(
            "/security/hosts/{host_id}/reissue-token",
            web::post().to(reissue_token),
        );
}

pub struct HostRow {
    pub host_id: String,
    pub primary_name: String,
    pub created_at: When,
    pub created_by: String,
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
    let paging = listing::parse(&query, "name", &["name", "created"])?;
    let (q, by_created, desc, offset) = (
        paging.q.clone(),
        paging.sort == "created",
        paging.descending,
        paging.offset(),
    );
    let (rows, total) =
        web::block(move || svc::list(&ctx, &q, by_created, desc, offset, PAGE_SIZE)).await??;
    let now = crate::db::now();
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
            .map(|h| HostRow {
                created_at: When::of(h.created_at, now),
                host_id: h.host_id,
                primary_name: h.primary_name,
                created_by: h.created_by,
            })
            .collect(),
    })
}

async fn add(auth: Auth, ctx: web::Data<Ctx>, form: Form) -> Result<HttpResponse, AppError> {
    let name = form.text("name");
    let actor = auth.actor();
    let host = web::block(move || svc::add(&ctx, &actor, &name)).await??;
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
    pub name: String,
    pub state: String,
    pub source: String,
    pub created_at: When,
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
    active: usize,
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
        active: certs.iter().filter(|c| c.status_key == "active").count(),
        certs,
        mappings: d
            .mappings
            .into_iter()
            .map(|m| MappingRow {
                created_at: When::of(m.created_at, now),
                name: m.name,
                state: m.state,
                source: m.source,
            })
            .collect(),
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
    form: Form,
) -> Result<HttpResponse, AppError> {
    let host_id = host_id.into_inner();
    let reason = form.text("reason");
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
    form: Form,
) -> Result<HttpResponse, AppError> {
    let host_key = host_id.into_inner();
    let input = ReissueInput {
        name: form.text("name"),
        valid_for: form.text("valid_for"),
        valid_until: form.text("valid_until"),
        reason: form.text("reason"),
    };
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
        Err(FormError::Invalid(e)) => (StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(FormError::Conflict(e)) => (StatusCode::CONFLICT, e),
        Err(FormError::Other(e)) => return Err(e),
    };
    let mut page = host_page(&auth, ctx, host_key, input, errors).await?;
    page.page.flash.push(view::Flash {
        kind: "error".into(),
        message: "The reissue token was not created: correct the fields marked below.".into(),
    });
    view::render(status, &page)
}
