//! Security > Certificate authority: every CA (root, issuing, and an upgraded
//! installation's one root), where its key is, its CRL, the CA migration in progress with
//! its hosts pending trust and renewal, and the server's own TLS certificates. Also
//! `/ca.crt`: the DER certificate of the CA whose CRL `/crl` serves (what certificates
//! from before the hierarchy name as their caIssuers).

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{Auth, CsrfForm};
use super::certificates::CertView;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::pki::signer::CaKeyType;
use crate::services::ca_migration::{self, InitiateRequest, IssuerView, Pending};
use crate::services::Ctx;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/ca", web::get().to(show))
        .route(crate::pki::issue::CA_ISSUERS_PATH, web::get().to(ca_der))
        .route("/security/ca/migration/initiate", web::post().to(initiate))
        .route("/security/ca/migration/{step}", web::post().to(step))
        .route(
            "/security/ca/migration/pending-trust.csv",
            web::get().to(pending_trust_csv),
        )
        .route(
            "/security/ca/migration/pending-renewal.csv",
            web::get().to(pending_renewal_csv),
        );
}

/// RFC 5280, 4.2.2.1: a caIssuers URI over HTTP names one DER certificate, served as
/// `application/pkix-cert` (RFC 2585).
#[utoipa::path(get, path = "/ca.crt", tag = "public", summary = "The certificate of the CA whose CRL /crl serves, DER (the caIssuers target of certificates from before the CA hierarchy)",
    responses((status = 200, description = "The CA certificate", content_type = "application/pkix-cert", body = super::public::Der)))]
pub async fn ca_der(ctx: web::Data<Ctx>) -> HttpResponse {
    let set = ctx.pki.issuers();
    let der = set
        .get(set.default_crl_issuer())
        .map(|l| l.ca.cert_der.clone())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("application/pkix-cert")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Content-Disposition", "inline; filename=\"ca.crt\""))
        .body(der)
}

/// One CA as the page shows it.
pub struct IssuerCard {
    pub v: IssuerView,
    pub role_label: &'static str,
    pub state_key: &'static str,
    pub state_label: &'static str,
    pub key_where: String,
    pub not_before: When,
    pub not_after: When,
    pub crl_number: Option<i64>,
    pub crl_next_update: Option<When>,
}

pub struct PendingRow {
    pub host_id: String,
    pub name: String,
    pub seen: Option<When>,
}

pub struct MigrationView {
    pub id: i64,
    pub phase_key: &'static str,
    pub phase_label: &'static str,
    pub from_id: i64,
    pub to_id: i64,
    pub reason: String,
    pub initiated_by: String,
    pub initiated_at: When,
    pub activated_at: Option<When>,
    pub completed_at: Option<When>,
    pub forced: bool,
    pub can_activate: bool,
    pub can_complete: bool,
    pub can_decommission: bool,
    pub can_mark: bool,
}

#[derive(Template)]
#[template(path = "ca.html")]
struct CaPage {
    page: Page,
    /// The root hosts confirm by its fingerprint (the newest root in the bundle).
    anchor: IssuerCard,
    issuers: Vec<IssuerCard>,
    migration: Option<MigrationView>,
    pending_trust: i64,
    pending_renewal: i64,
    old_active: i64,
    trust_rows: Vec<PendingRow>,
    renewal_rows: Vec<PendingRow>,
    sample: i64,
    key_types: Vec<(&'static str, &'static str)>,
    is_admin: bool,
    /// The server's own TLS certificates, newest first.
    tls_certs: Vec<CertView>,
    /// Where ACME clients start.
    acme_directory: String,
    /// The default CRL (`/crl`).
    crl_number: i64,
    this_update: When,
    next_update: When,
    revoked: usize,
}

fn pending_rows(
    rows: &[crate::models::issuer::PendingHost],
    now: chrono::NaiveDateTime,
) -> Vec<PendingRow> {
    rows.iter()
        .map(|p| PendingRow {
            host_id: p.host_id.clone(),
            name: p.primary_name.clone(),
            seen: When::maybe(p.trust_seen_at, now),
        })
        .collect()
}

async fn show(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let svc_ctx = ctx.clone();
    let ((tls, now), overview) = web::block(move || {
        Ok::<_, AppError>((
            crate::services::certificates::server_certificates(&svc_ctx)?,
            ca_migration::overview(&svc_ctx)?,
        ))
    })
    .await??;
    let card = |v: &IssuerView| {
        let crl = ctx.pki.crl_of(v.id);
        IssuerCard {
            role_label: v.role.label(),
            state_key: if v.in_bundle {
                v.state.key()
            } else {
                "decommissioned"
            },
            state_label: if v.in_bundle {
                v.state.label()
            } else {
                "Decommissioned"
            },
            key_where: crate::services::pki::key_location_label(&v.key_location),
            not_before: When::of(v.not_before_at, now),
            not_after: When::of(v.not_after_at, now),
            crl_number: crl.as_ref().map(|c| c.number),
            crl_next_update: crl.as_ref().map(|c| When::of(c.next_update, now)),
            v: v.clone(),
        }
    };
    let issuers: Vec<IssuerCard> = overview.issuers.iter().rev().map(card).collect();
    let anchor = overview
        .issuers
        .iter()
        .rev()
        .find(|v| v.parent_id.is_none() && v.in_bundle)
        .or(overview.issuers.first())
        .map(card)
        .ok_or_else(|| AppError::internal("no CA is loaded"))?;
    let is_admin = auth.role() == crate::models::kinds::Role::Administrator;
    let migration = overview.migration.as_ref().map(|m| {
        use crate::models::issuer::MigrationPhase as P;
        MigrationView {
            id: m.id,
            phase_key: m.phase.key(),
            phase_label: m.phase.label(),
            from_id: m.from_issuer_id,
            to_id: m.to_issuer_id,
            reason: m.reason.clone(),
            initiated_by: m.initiated_by.clone(),
            initiated_at: When::of(m.initiated_at, now),
            activated_at: When::maybe(m.activated_at, now),
            completed_at: When::maybe(m.completed_at, now),
            forced: m.forced,
            can_activate: m.phase == P::Initiated,
            can_complete: m.phase == P::Activated,
            can_decommission: m.phase == P::Completed,
            can_mark: matches!(m.phase, P::Activated | P::Completed),
        }
    });
    let crl = ctx.pki.crl();
    view::ok(&CaPage {
        page: auth.page("Certificate authority", "ca"),
        anchor,
        issuers,
        migration,
        pending_trust: overview.pending_trust,
        pending_renewal: overview.pending_renewal,
        old_active: overview.old_active,
        trust_rows: pending_rows(&overview.trust_sample, now),
        renewal_rows: pending_rows(&overview.renewal_sample, now),
        sample: ca_migration::SAMPLE,
        key_types: CaKeyType::ALL
            .iter()
            .map(|k| (k.key(), k.label()))
            .collect(),
        is_admin,
        tls_certs: tls.iter().map(|c| CertView::of(c, now)).collect(),
        acme_directory: format!("{}/acme/directory", ctx.site.public_url),
        crl_number: crl.number,
        this_update: When::of(crl.this_update, now),
        next_update: When::of(crl.next_update, now),
        revoked: crl.entries,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InitiateForm {
    pub reason: String,
    pub new_root: Option<String>,
    pub key_type: String,
    pub key_uri: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StepForm {
    pub reason: String,
    pub force: Option<String>,
}

async fn initiate(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(form): CsrfForm<InitiateForm>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let req = InitiateRequest {
        reason: form.reason,
        new_root: form.new_root.is_some(),
        key_type: Some(form.key_type).filter(|k| !k.is_empty()),
        key_uri: Some(form.key_uri.trim().to_string()).filter(|k| !k.is_empty()),
        root_key: None,
    };
    let m = web::block(move || ca_migration::initiate(&ctx, &actor, &req)).await??;
    view::flash(
        &auth.session,
        "success",
        format!(
            "CA migration #{} initiated: the new CA #{} is in the trust bundle. Activate it once hosts trust it.",
            m.id, m.to_issuer_id
        ),
    );
    Ok(view::redirect("/security/ca#migration"))
}

async fn step(
    auth: Auth,
    ctx: web::Data<Ctx>,
    step: web::Path<String>,
    CsrfForm(form): CsrfForm<StepForm>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let step = step.into_inner();
    let message = match step.as_str() {
        "activate" => {
            let m = web::block(move || ca_migration::activate(&ctx, &actor, &form.reason)).await??;
            format!("CA migration #{} activated: CA #{} signs new certificates.", m.id, m.to_issuer_id)
        }
        "complete" => {
            let force = form.force.is_some();
            let m = web::block(move || ca_migration::complete(&ctx, &actor, &form.reason, force)).await??;
            format!("CA migration #{} completed: the old CA #{} signs only its CRL.", m.id, m.from_issuer_id)
        }
        "decommission" => {
            let m = web::block(move || ca_migration::decommission(&ctx, &actor, &form.reason)).await??;
            format!("CA migration #{} decommissioned: the old CA #{} left the trust bundle.", m.id, m.from_issuer_id)
        }
        "mark-renewal" => {
            let n = web::block(move || ca_migration::mark_all_for_renewal(&ctx, &actor, &form.reason)).await??;
            format!("{n} host(s) pending renewal may renew early once within {} hours.", ca_migration::MARK_RENEWAL_HOURS)
        }
        other => {
            return Err(AppError::NotFound(format!(
                "there is no CA migration step '{}': use activate, complete, decommission or mark-renewal",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect("/security/ca#migration"))
}

async fn csv(ctx: web::Data<Ctx>, which: Pending, file: &str) -> Result<HttpResponse, AppError> {
    let rows = web::block(move || ca_migration::pending_hosts(&ctx, which)).await??;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file}\""),
        ))
        .body(ca_migration::pending_csv(&rows)))
}

async fn pending_trust_csv(_auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    csv(ctx, Pending::Trust, "hosts-pending-trust.csv").await
}

async fn pending_renewal_csv(_auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    csv(ctx, Pending::Renewal, "hosts-pending-renewal.csv").await
}
