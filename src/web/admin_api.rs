//! The admin JSON API (`Authorization: Bearer <api key>`): what the pages do, for scripts
//! and the command line. Each call is checked against the key owner's role and audited
//! by the same service function as the page.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::listing::{self, ListQuery, PAGE_SIZE};
use super::Body;
use crate::error::AppError;
use crate::models::acme::{AcmeAccount, AcmeAccountStatus, AcmeBinding};
use crate::models::certificate::Certificate;
use crate::models::host_mapping::{MappingSource, MappingState};
use crate::models::kinds::IssuedVia;
use crate::models::kinds::RevocationReason;
use crate::models::kinds::{
    AuditCategory, CertAttention, CertStatus, HostSort, Outcome, Role, TokenKind, TokenState,
};
use crate::models::settings::SecurityLevel;
use crate::models::token::Token;
use crate::names::host_key;
use crate::services::audit_log::{self, AuditQuery};
use crate::services::settings::SettingsInput;
use crate::services::tokens::{ReissueInput, TokenInput};
use crate::services::{self, Actor, Ctx, FormError};
use crate::web::errors::{ApiError, ErrorBody};

/// Every admin route, for the OpenAPI document and its test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("post", "/api/v1/tokens/reissue"),
    ("post", "/api/v1/tokens/delete"),
    ("post", "/api/v1/tokens/cleanup"),
    ("get", "/api/v1/tokens/{name}"),
    ("delete", "/api/v1/tokens/{name}"),
    ("post", "/api/v1/tokens/{name}/show"),
    ("get", "/api/v1/certificates"),
    ("get", "/api/v1/certificates/{serial}"),
    ("post", "/api/v1/certificates/{serial}/revoke"),
    ("get", "/api/v1/hosts"),
    ("post", "/api/v1/hosts"),
    ("post", "/api/v1/hosts/renew-all"),
    ("get", "/api/v1/hosts/{host}"),
    ("post", "/api/v1/hosts/{host}/revoke"),
    ("post", "/api/v1/hosts/{host}/auto-reissue"),
    (
        "post",
        "/api/v1/hosts/{host}/acme-accounts/{account}/deactivate",
    ),
    ("post", "/api/v1/hosts/{host}/mappings"),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/approve"),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/reject"),
    ("delete", "/api/v1/hosts/{host}/mappings/{name}"),
    ("get", "/api/v1/settings"),
    ("put", "/api/v1/settings"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/ca"),
    ("post", "/api/v1/ca/migration/initiate"),
    ("post", "/api/v1/ca/migration/activate"),
    ("post", "/api/v1/ca/migration/complete"),
    ("post", "/api/v1/ca/migration/decommission"),
    ("post", "/api/v1/ca/migration/mark-renewal"),
    ("get", "/api/v1/ca/migration/pending-trust"),
    ("get", "/api/v1/ca/migration/pending-renewal"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list_tokens))
        .route("/tokens", web::post().to(create_token))
        .route("/tokens/reissue", web::post().to(create_reissue_token))
        .route("/tokens/delete", web::post().to(delete_tokens))
        .route("/tokens/cleanup", web::post().to(cleanup_tokens))
        .route("/tokens/{name}", web::get().to(token_details))
        .route("/tokens/{name}", web::delete().to(delete_token))
        .route("/tokens/{name}/show", web::post().to(show_token))
        .route("/certificates", web::get().to(list_certificates))
        .route("/certificates/{serial}", web::get().to(certificate_details))
        .route(
            "/certificates/{serial}/revoke",
            web::post().to(revoke_certificate),
        )
        .route("/hosts", web::get().to(list_hosts))
        .route("/hosts", web::post().to(add_host))
        .route("/hosts/renew-all", web::post().to(hosts_renew_all))
        .route("/hosts/{host}", web::get().to(host_details))
        .route("/hosts/{host}/revoke", web::post().to(revoke_host))
        .route("/hosts/{host}/auto-reissue", web::post().to(auto_reissue))
        .route(
            "/hosts/{host}/acme-accounts/{account}/deactivate",
            web::post().to(deactivate_acme_account),
        )
        .route("/hosts/{host}/mappings", web::post().to(add_mapping))
        .route(
            "/hosts/{host}/mappings/{name}/approve",
            web::post().to(approve_mapping),
        )
        .route(
            "/hosts/{host}/mappings/{name}/reject",
            web::post().to(reject_mapping),
        )
        .route(
            "/hosts/{host}/mappings/{name}",
            web::delete().to(delete_mapping),
        )
        .route("/settings", web::get().to(get_settings))
        .route("/settings", web::put().to(put_settings))
        .route("/audit", web::get().to(list_audit))
        .route("/ca", web::get().to(ca_show))
        .route("/ca/migration/initiate", web::post().to(ca_initiate))
        .route("/ca/migration/activate", web::post().to(ca_activate))
        .route("/ca/migration/complete", web::post().to(ca_complete))
        .route(
            "/ca/migration/decommission",
            web::post().to(ca_decommission),
        )
        .route(
            "/ca/migration/mark-renewal",
            web::post().to(ca_mark_renewal),
        )
        .route(
            "/ca/migration/pending-trust",
            web::get().to(ca_pending_trust),
        )
        .route(
            "/ca/migration/pending-renewal",
            web::get().to(ca_pending_renewal),
        );
}

/// The caller, from `Authorization: Bearer <api key>`.
pub struct ApiAuth(pub Actor);

impl FromRequest for ApiAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiAuth, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let ctx = req.app_data::<web::Data<Ctx>>().cloned();
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| AppError::internal("no application state"))?;
            let Some(key) = header.as_deref().and_then(bearer_key).map(str::trim) else {
                return Err(ApiError(AppError::Unauthorized(
                    "send an API key as 'Authorization: Bearer <key>'; create one at /account/api-keys".into(),
                )));
            };
            let key = key.to_string();
            let actor =
                web::block(move || services::api_keys::authenticate(&ctx, &key, &from)).await??;
            Ok(ApiAuth(actor))
        })
    }
}

/// The key from an `Authorization` value; the scheme is case-insensitive (RFC 9110 §11.1).
pub(super) fn bearer_key(header: &str) -> Option<&str> {
    let (scheme, key) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key)
}

fn iso(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn form_error(e: FormError) -> ApiError {
    match e {
        FormError::Other(e) => ApiError(e),
        FormError::Invalid(f) | FormError::Conflict(f) if f.is_empty() => {
            ApiError(AppError::BadRequest("invalid request".into()))
        }
        FormError::Conflict(f) => ApiError(AppError::Conflict(fields_text(&f))),
        FormError::Invalid(f) => ApiError(AppError::Unprocessable(fields_text(&f))),
    }
}

fn fields_text(f: &services::FieldErrors) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A JSON body: `Content-Type: application/json` (415 otherwise) holding the route's
/// request type (400 naming the field otherwise). Fields the type does not have are
/// ignored, unless the type says `deny_unknown_fields`.
fn body<T: serde::de::DeserializeOwned>(req: &HttpRequest, bytes: &Body) -> Result<T, ApiError> {
    Ok(super::json_body(req, bytes)?)
}

/// The role check of a changing route, made before its body is read: a viewer is refused
/// (403, audited) whatever they sent, and learns nothing from body validation. The service
/// checks again inside its transaction.
async fn may_change(
    ctx: &web::Data<Ctx>,
    actor: &Actor,
    category: AuditCategory,
    action: &'static str,
    target: &str,
) -> Result<(), ApiError> {
    if actor.role.at_least(Role::SecurityAdmin) {
        return Ok(());
    }
    let (ctx, actor, target) = (ctx.clone(), actor.clone(), target.to_string());
    web::block(move || {
        services::connect_as(&ctx, &actor, Role::SecurityAdmin, category, action, &target).map(drop)
    })
    .await??;
    Ok(())
}

// ---- tokens ----

/// A token as the API shows it: never its value.
#[derive(Serialize, ToSchema)]
pub struct TokenJson {
    name: String,
    kind: TokenKind,
    state: TokenState,
    uses: i32,
    max_uses: i32,
    #[schema(format = DateTime)]
    valid_until: String,
    reason: String,
    /// The host a reissue token is bound to.
    host_id: Option<String>,
    created_by: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    last_used_by: Option<String>,
}

fn token_json(t: &Token, now: NaiveDateTime) -> TokenJson {
    TokenJson {
        name: t.name.clone(),
        kind: t.kind,
        state: t.state(now),
        uses: t.uses,
        max_uses: t.max_uses,
        valid_until: iso(t.valid_until),
        reason: t.reason.clone(),
        host_id: t.host_id.clone(),
        created_by: t.created_by.clone(),
        created_at: iso(t.created_at),
        last_used_at: t.last_used_at.map(iso),
        last_used_by: t.last_used_by.clone(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenJson>,
    total: i64,
    page: i64,
    page_size: i64,
}

/// The list filters: text, state, order and page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenListParams {
    /// Text in the name, reason or creator.
    q: Option<String>,
    #[param(value_type = Option<TokenState>)]
    state: Option<String>,
    /// The column to sort by.
    sort: Option<String>,
    /// `asc` or `desc`.
    dir: Option<String>,
    /// A page number, from 1.
    page: Option<String>,
}

fn list_query(
    q: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<String>,
) -> ListQuery {
    ListQuery { q, page, sort, dir }
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "List tokens",
    params(TokenListParams),
    responses((status = 200, description = "One page of tokens", body = TokenList)),
    security(("bearer" = []))
)]
async fn list_tokens(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Query<TokenListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = p.into_inner();
    let q = list_query(p.q, p.sort, p.dir, p.page);
    let extra = super::tokens::StateQuery {
        state: p.state,
        expires_within: None,
    };
    let (paging, filter) = super::tokens::filter(&q, &extra)?;
    let (rows, total, now) = web::block(move || services::tokens::list(&ctx, &filter)).await??;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: rows.iter().map(|t| token_json(t, now)).collect(),
        total,
        page: paging.page_no,
        page_size: PAGE_SIZE,
    }))
}

/// A new authorization token. Fields other than these are ignored.
#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    /// Unique; letters, digits, `.`, `-`, `_` (not `.` or `..`).
    name: String,
    /// How many hosts may enroll with it: a JSON integer, 1 to 99999 (default 1).
    #[serde(default)]
    max_uses: Option<i64>,
    /// A duration such as `1d`, `12h`, `2d6h30m` (default 1 day).
    #[serde(default)]
    valid_for: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "Create an authorization token",
    request_body = NewToken,
    responses(
        (status = 201, description = "The new token (its value: POST .../show)", body = TokenJson),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A value the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_token(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Token, "create", "tokens").await?;
    let b: NewToken = body(&req, &bytes)?;
    let input = TokenInput {
        name: b.name,
        max_uses: b.max_uses.map(|n| n.to_string()).unwrap_or_default(),
        valid_for: b.valid_for.unwrap_or_default(),
        reason: b.reason.unwrap_or_default(),
    };
    let token = web::block(move || services::tokens::create(&ctx, &auth.0, &input))
        .await?
        .map_err(form_error)?;
    Ok(HttpResponse::Created().json(token_json(&token, crate::db::now())))
}

/// A single-use reissue token for one host: `host` (primary name) or `host_id`, exactly
/// one; `valid_for` or `valid_until`, at most one (default 1 day).
#[derive(Deserialize, ToSchema)]
pub struct NewReissueToken {
    #[serde(default)]
    host: Option<String>,
    /// A UUID, with or without `urn:uuid:` and dashes, in any case.
    #[serde(default)]
    host_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// A duration such as `1d`, `12h`, `2d6h30m`.
    #[serde(default)]
    valid_for: Option<String>,
    /// RFC 3339 (`2026-12-01T14:30:00Z`, as the API writes times), `2026-12-01T14:30`
    /// (UTC) or `2026-12-01` (the end of that day, UTC).
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/reissue",
    tag = "tokens",
    summary = "Create a reissue token for a host (by primary name or host ID)",
    request_body = NewReissueToken,
    responses(
        (status = 201, description = "The new token", body = TokenJson),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A value the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_reissue_token(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Token, "create", "tokens").await?;
    let b: NewReissueToken = body(&req, &bytes)?;
    let host = match (b.host, b.host_id) {
        (Some(h), None) | (None, Some(h)) => host_key(&h),
        _ => {
            return Err(ApiError(AppError::BadRequest(
                "give exactly one of host (primary name) and host_id".into(),
            )))
        }
    };
    let until_given = b
        .valid_until
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
        && b.valid_for.as_deref().is_none_or(|d| d.trim().is_empty());
    let input = ReissueInput {
        name: b.name.unwrap_or_default(),
        valid_for: b.valid_for.unwrap_or_default(),
        valid_until: b.valid_until.unwrap_or_default(),
        reason: b.reason.unwrap_or_default(),
    };
    let token = web::block(move || services::tokens::create_reissue(&ctx, &auth.0, &host, &input))
        .await?
        .map_err(|e| match e {
            // The form shows one validity field; the API names the one the caller sent.
            FormError::Invalid(mut f) if until_given => {
                if let Some(m) = f.remove("valid_for") {
                    f.insert("valid_until", m);
                }
                form_error(FormError::Invalid(f))
            }
            other => form_error(other),
        })?;
    Ok(HttpResponse::Created().json(token_json(&token, crate::db::now())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens/{name}",
    tag = "tokens",
    summary = "A token's details (never its value)",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, description = "The token", body = TokenJson)),
    security(("bearer" = []))
)]
async fn token_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = web::block(move || services::tokens::details(&ctx, &name)).await??;
    Ok(HttpResponse::Ok().json(token_json(&t, crate::db::now())))
}

#[derive(Serialize, ToSchema)]
pub struct TokenValue {
    name: String,
    /// 24 Crockford base32 characters in groups of four.
    value: String,
    /// The token as an ACME External Account Binding: the key ID (the token's name) and
    /// the HMAC key (the value's 120 bits, base64url), for `--eab-kid`/`--eab-hmac-key`.
    eab_kid: String,
    eab_hmac_key: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/{name}/show",
    tag = "tokens",
    summary = "Reveal a token's value (audited)",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, description = "The value", body = TokenValue)),
    security(("bearer" = []))
)]
async fn show_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (t, value) = web::block(move || services::tokens::reveal(&ctx, &auth.0, &name)).await??;
    let eab_hmac_key = crate::acme::eab_mac_key_text(&value).unwrap_or_default();
    Ok(HttpResponse::Ok().json(TokenValue {
        eab_kid: t.name.clone(),
        name: t.name,
        value,
        eab_hmac_key,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    deleted: usize,
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{name}",
    tag = "tokens",
    summary = "Delete a token",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, description = "How many were deleted", body = Deleted)),
    security(("bearer" = []))
)]
async fn delete_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let names = vec![name.into_inner()];
    let n = web::block(move || services::tokens::delete(&ctx, &auth.0, &names)).await??;
    Ok(HttpResponse::Ok().json(Deleted { deleted: n }))
}

/// Token names, all of which must exist (or nothing is deleted).
#[derive(Deserialize, ToSchema)]
pub struct Names {
    names: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/delete",
    tag = "tokens",
    summary = "Delete several tokens (all or nothing)",
    request_body = Names,
    responses((status = 200, description = "How many were deleted", body = Deleted)),
    security(("bearer" = []))
)]
async fn delete_tokens(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Token, "delete", "tokens").await?;
    let b: Names = body(&req, &bytes)?;
    let n = web::block(move || services::tokens::delete(&ctx, &auth.0, &b.names)).await??;
    Ok(HttpResponse::Ok().json(Deleted { deleted: n }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/cleanup",
    tag = "tokens",
    summary = "Delete every expired and used-up token",
    responses((status = 200, description = "How many were deleted", body = Deleted)),
    security(("bearer" = []))
)]
async fn cleanup_tokens(auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let n = web::block(move || services::tokens::cleanup(&ctx, &auth.0)).await??;
    Ok(HttpResponse::Ok().json(Deleted { deleted: n }))
}

// ---- certificates ----

#[derive(Serialize, ToSchema)]
pub struct CertificateJson {
    /// Upper-case hexadecimal.
    serial: String,
    #[schema(format = Uuid)]
    host_id: String,
    host_name: String,
    names: Vec<String>,
    subject: String,
    status: CertStatus,
    #[schema(format = DateTime)]
    not_before: String,
    #[schema(format = DateTime)]
    not_after: String,
    sha256_fingerprint: String,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    revocation_reason: Option<RevocationReason>,
    revoked_by: Option<String>,
    /// The token the host enrolled with.
    token_name: Option<String>,
    /// How it was issued.
    issued_via: IssuedVia,
    /// The ACME account that ordered it.
    acme_account_id: Option<String>,
    /// The serial of the certificate it replaced.
    replaces: Option<String>,
}

fn cert_json(c: &Certificate, now: NaiveDateTime) -> CertificateJson {
    CertificateJson {
        serial: c.serial.clone(),
        host_id: c.host_id.clone(),
        host_name: c.primary_name().to_string(),
        names: c.names.split(',').map(str::to_string).collect(),
        subject: c.subject.clone(),
        status: c.status(now),
        not_before: iso(c.not_before),
        not_after: iso(c.not_after),
        sha256_fingerprint: c.fingerprint_sha256.clone(),
        revoked_at: c.revoked_at.map(iso),
        revocation_reason: c.revocation_reason,
        revoked_by: c.revoked_by.clone(),
        token_name: c.token_name.clone(),
        issued_via: c.issued_via,
        acme_account_id: c.acme_account_id.clone(),
        replaces: c.replaces.clone(),
    }
}

/// A certificate with its PEM.
#[derive(Serialize, ToSchema)]
pub struct CertificateDetails {
    #[serde(flatten)]
    certificate: CertificateJson,
    pem: String,
}

#[derive(Serialize, ToSchema)]
pub struct CertificateList {
    certificates: Vec<CertificateJson>,
    total: i64,
    page: i64,
    page_size: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateListParams {
    /// Text in the serial, names or host ID.
    q: Option<String>,
    #[param(value_type = Option<CertStatus>)]
    status: Option<String>,
    /// Only active certificates that expire within this many days (1 to 3650).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    expires_within: Option<String>,
    /// What needs attention: `renewal-missed` (half of the renewal window gone, not
    /// renewed), `lapsed` (expired in the last 90 days, the host has no active
    /// certificate), `recently-revoked` (revoked, not superseded, in the last 7 days).
    #[param(value_type = Option<CertAttention>)]
    view: Option<String>,
    /// The column to sort by.
    sort: Option<String>,
    /// `asc` or `desc`.
    dir: Option<String>,
    /// A page number, from 1.
    page: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/certificates",
    tag = "certificates",
    summary = "List certificates",
    params(CertificateListParams),
    responses((status = 200, description = "One page of certificates", body = CertificateList),
        (status = 400, description = "A filter, sort or page that is not valid", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_certificates(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Query<CertificateListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = p.into_inner();
    let q = list_query(p.q, p.sort, p.dir, p.page);
    let extra = super::certificates::CertQuery {
        status: p.status,
        expires_within: p.expires_within,
        view: p.view,
    };
    let (paging, filter) = super::certificates::filter(&q, &extra)?;
    let (rows, total, now) =
        web::block(move || services::certificates::list(&ctx, &filter)).await??;
    Ok(HttpResponse::Ok().json(CertificateList {
        certificates: rows.iter().map(|c| cert_json(c, now)).collect(),
        total,
        page: paging.page_no,
        page_size: PAGE_SIZE,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/certificates/{serial}",
    tag = "certificates",
    summary = "A certificate's details and PEM",
    params(("serial" = String, Path, description = "The serial number, hexadecimal")),
    responses((status = 200, description = "The certificate", body = CertificateDetails)),
    security(("bearer" = []))
)]
async fn certificate_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = web::block(move || services::certificates::details(&ctx, &serial)).await??;
    Ok(HttpResponse::Ok().json(CertificateDetails {
        certificate: cert_json(&c, crate::db::now()),
        pem: c.pem,
    }))
}

/// An RFC 5280 revocation reason.
#[derive(Deserialize, ToSchema)]
pub struct Reason {
    #[schema(value_type = RevocationReason, example = "key_compromise")]
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/certificates/{serial}/revoke",
    tag = "certificates",
    summary = "Revoke a certificate with an RFC 5280 reason",
    params(("serial" = String, Path, description = "The serial number, hexadecimal")),
    request_body = Reason,
    responses(
        (status = 200, description = "The revoked certificate", body = CertificateJson),
        (status = 409, description = "Already revoked", body = ErrorBody),
        (status = 422, description = "A reason the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn revoke_certificate(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Cert, "revoke", &serial).await?;
    let b: Reason = body(&req, &bytes)?;
    let c = web::block(move || services::certificates::revoke(&ctx, &auth.0, &serial, &b.reason))
        .await??;
    Ok(HttpResponse::Ok().json(cert_json(&c, crate::db::now())))
}

// ---- hosts ----

#[derive(Serialize, ToSchema)]
pub struct MappingJson {
    name: String,
    state: MappingState,
    source: MappingSource,
    primary: bool,
    /// Host IDs of the other hosts mapped to the same name (a conflict).
    shared_with: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HostJson {
    #[schema(format = Uuid)]
    host_id: String,
    primary_name: String,
    #[schema(format = DateTime)]
    created_at: String,
    created_by: String,
    #[schema(format = DateTime)]
    auto_reissue_until: Option<String>,
    mappings: Vec<MappingJson>,
    certificates: Vec<CertificateJson>,
    acme_accounts: Vec<AcmeAccountJson>,
}

/// An ACME account of a host.
#[derive(Serialize, ToSchema)]
pub struct AcmeAccountJson {
    account_id: String,
    /// The account key's RFC 7638 thumbprint.
    thumbprint: String,
    status: AcmeAccountStatus,
    binding: AcmeBinding,
    token_name: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_order_at: Option<String>,
}

fn acme_account_json(a: &AcmeAccount) -> AcmeAccountJson {
    AcmeAccountJson {
        account_id: a.account_id.clone(),
        thumbprint: a.thumbprint.clone(),
        status: a.status,
        binding: a.binding,
        token_name: a.token_name.clone(),
        created_at: iso(a.created_at),
        last_order_at: a.last_order_at.map(iso),
    }
}

fn host_json(d: &services::hosts::HostDetails, now: NaiveDateTime) -> HostJson {
    HostJson {
        host_id: d.host.host_id.clone(),
        primary_name: d.host.primary_name.clone(),
        created_at: iso(d.host.created_at),
        created_by: d.host.created_by.clone(),
        auto_reissue_until: d.host.auto_reissue_window(now).map(iso),
        mappings: d
            .mappings
            .iter()
            .map(|m| MappingJson {
                name: m.mapping.name.clone(),
                state: m.mapping.state,
                source: m.mapping.source,
                primary: m.is_primary,
                shared_with: m.shared_with.iter().map(|(id, _)| id.clone()).collect(),
            })
            .collect(),
        certificates: d.certificates.iter().map(|c| cert_json(c, now)).collect(),
        acme_accounts: d.acme_accounts.iter().map(acme_account_json).collect(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct HostSummaryJson {
    #[schema(format = Uuid)]
    host_id: String,
    primary_name: String,
    other_names: Vec<String>,
    /// The status of the newest certificate.
    certificate_status: Option<CertStatus>,
    #[schema(format = DateTime)]
    last_issued: Option<String>,
    #[schema(format = DateTime)]
    auto_reissue_until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HostList {
    hosts: Vec<HostSummaryJson>,
    total: i64,
    page: i64,
    page_size: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostListParams {
    /// Text in the host ID or names.
    q: Option<String>,
    #[param(value_type = Option<HostSort>)]
    sort: Option<String>,
    /// `asc` or `desc`.
    dir: Option<String>,
    /// A page number, from 1.
    page: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/hosts",
    tag = "hosts-admin",
    summary = "List hosts",
    params(HostListParams),
    responses((status = 200, description = "One page of hosts", body = HostList)),
    security(("bearer" = []))
)]
async fn list_hosts(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Query<HostListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = p.into_inner();
    let q = list_query(p.q, p.sort, p.dir, p.page);
    let paging = listing::parse(&q, HostSort::Name.key(), HostSort::KEYS)?;
    let (text, by_created, desc, offset) = (
        paging.q.clone(),
        paging.sort == HostSort::Created.key(),
        paging.descending,
        paging.offset(),
    );
    let services::hosts::Page {
        hosts: rows,
        total,
        now,
    } = web::block(move || services::hosts::page(&ctx, &text, by_created, desc, offset, PAGE_SIZE))
        .await??;
    Ok(HttpResponse::Ok().json(HostList {
        hosts: rows
            .iter()
            .map(|s| HostSummaryJson {
                host_id: s.host.host_id.clone(),
                primary_name: s.host.primary_name.clone(),
                other_names: s.other_names.clone(),
                certificate_status: s.latest.as_ref().map(|c| c.status(now)),
                last_issued: s.latest.as_ref().map(|c| iso(c.not_before)),
                auto_reissue_until: s.host.auto_reissue_window(now).map(iso),
            })
            .collect(),
        total,
        page: paging.page_no,
        page_size: PAGE_SIZE,
    }))
}

/// A host name (a trailing dot is dropped).
#[derive(Deserialize, ToSchema)]
pub struct NameRequest {
    #[schema(example = "web02.example.com")]
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts",
    tag = "hosts-admin",
    summary = "Register a known host",
    request_body = NameRequest,
    responses(
        (status = 201, description = "The new host", body = HostJson),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A name the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn add_host(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Host, "add_host", "hosts").await?;
    let b: NameRequest = body(&req, &bytes)?;
    let d = web::block(move || services::hosts::add(&ctx, &auth.0, &b.name)).await??;
    Ok(HttpResponse::Created().json(host_json(&d, crate::db::now())))
}

#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}",
    tag = "hosts-admin",
    summary = "A host (by host ID or primary name) with mappings and certificates",
    params(("host" = String, Path, description = "A host ID (any UUID form) or primary name")),
    responses((status = 200, description = "The host", body = HostJson)),
    security(("bearer" = []))
)]
async fn host_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let host = host_key(&host);
    let d = web::block(move || services::hosts::details_of(&ctx, &host)).await??;
    Ok(HttpResponse::Ok().json(host_json(&d, crate::db::now())))
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    revoked: usize,
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/revoke",
    tag = "hosts-admin",
    summary = "Revoke all active certificates of a host",
    params(("host" = String, Path, description = "A host ID (any UUID form) or primary name")),
    request_body = Reason,
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 422, description = "A reason the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn revoke_host(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let host = host_key(&host);
    may_change(&ctx, &auth.0, AuditCategory::Cert, "revoke_host", &host).await?;
    let b: Reason = body(&req, &bytes)?;
    let n =
        web::block(move || services::certificates::revoke_host(&ctx, &auth.0, &host, &b.reason))
            .await??;
    Ok(HttpResponse::Ok().json(Revoked { revoked: n }))
}

/// Open (`true`) or close (`false`) the host's auto-reissue window.
#[derive(Deserialize, ToSchema)]
pub struct AutoReissue {
    allow: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AutoReissueState {
    /// When the window closes; null when it is closed.
    #[schema(format = DateTime)]
    auto_reissue_until: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/auto-reissue",
    tag = "hosts-admin",
    summary = "Open (allow: true) or close a host's auto-reissue window",
    params(("host" = String, Path, description = "A host ID (any UUID form) or primary name")),
    request_body = AutoReissue,
    responses((status = 200, description = "The window", body = AutoReissueState)),
    security(("bearer" = []))
)]
async fn auto_reissue(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let host = host_key(&host);
    may_change(
        &ctx,
        &auth.0,
        AuditCategory::Host,
        "allow_auto_reissue",
        &host,
    )
    .await?;
    let b: AutoReissue = body(&req, &bytes)?;
    let until =
        web::block(move || services::hosts::set_auto_reissue(&ctx, &auth.0, &host, b.allow))
            .await??;
    Ok(HttpResponse::Ok().json(AutoReissueState {
        auto_reissue_until: until.map(iso),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/acme-accounts/{account}/deactivate",
    tag = "hosts-admin",
    summary = "Deactivate one of a host's ACME accounts (its key signs nothing more)",
    params(
        ("host" = String, Path, description = "A host ID (any UUID form) or primary name"),
        ("account" = String, Path, description = "The ACME account ID (the last part of its URL)")
    ),
    responses((status = 200, description = "The account, deactivated", body = AcmeAccountJson)),
    security(("bearer" = []))
)]
async fn deactivate_acme_account(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, account) = path.into_inner();
    let host = host_key(&host);
    let a = web::block(move || services::acme::deactivate_by_admin(&ctx, &auth.0, &host, &account))
        .await??;
    Ok(HttpResponse::Ok().json(acme_account_json(&a)))
}

#[derive(Serialize, ToSchema)]
pub struct MappingAdded {
    /// `approved` or `pending`.
    state: MappingState,
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/mappings",
    tag = "hosts-admin",
    summary = "Map a name to a host",
    params(("host" = String, Path, description = "A host ID (any UUID form) or primary name")),
    request_body = NameRequest,
    responses(
        (status = 201, description = "The mapping's state", body = MappingAdded),
        (status = 409, description = "The host already has this name", body = ErrorBody),
        (status = 422, description = "A name the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn add_mapping(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let host = host_key(&host);
    may_change(&ctx, &auth.0, AuditCategory::Host, "add_mapping", &host).await?;
    let b: NameRequest = body(&req, &bytes)?;
    let state =
        web::block(move || services::mappings::add(&ctx, &auth.0, &host, &b.name)).await??;
    Ok(HttpResponse::Created().json(MappingAdded { state }))
}

#[derive(Serialize, ToSchema)]
pub struct Done {
    /// `approve`, `reject` or `delete`.
    done: &'static str,
}

/// A mapping's name from the path: a host name loses its root dot and case, as everywhere.
fn mapping_name(name: &str) -> String {
    services::hosts::normalize_hostname(name).unwrap_or_else(|_| name.trim().to_string())
}

async fn decide(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: String,
    name: String,
    decision: &'static str,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = (host_key(&host), mapping_name(&name));
    web::block(move || services::mappings::decide(&ctx, &auth.0, &host, &name, decision)).await??;
    Ok(HttpResponse::Ok().json(Done { done: decision }))
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/mappings/{name}/approve",
    tag = "hosts-admin",
    summary = "Approve a mapping",
    params(
        ("host" = String, Path, description = "A host ID (any UUID form) or primary name"),
        ("name" = String, Path, description = "The mapped name"),
    ),
    responses(
        (status = 200, description = "Approved", body = Done),
        (status = 409, description = "Another host has this name approved", body = ErrorBody),
        (status = 422, description = "A name the rules refuse", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn approve_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "approve").await
}

#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/mappings/{name}/reject",
    tag = "hosts-admin",
    summary = "Reject a mapping",
    params(
        ("host" = String, Path, description = "A host ID (any UUID form) or primary name"),
        ("name" = String, Path, description = "The mapped name"),
    ),
    responses(
        (status = 200, description = "Rejected", body = Done),
        (status = 409, description = "The host's primary name cannot be rejected", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn reject_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "reject").await
}

#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/mappings/{name}",
    tag = "hosts-admin",
    summary = "Delete a mapping",
    params(
        ("host" = String, Path, description = "A host ID (any UUID form) or primary name"),
        ("name" = String, Path, description = "The mapped name"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Done),
        (status = 409, description = "The host's primary name cannot be deleted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "delete").await
}

// ---- settings ----

#[derive(Serialize, ToSchema)]
pub struct SettingsJson {
    security_level: SecurityLevel,
    auto_map_host_names: bool,
    certificate_validity_days: i32,
    auto_reissue_minutes: i32,
    audit_retention_days: i32,
    renewal_interval_minutes: i32,
    allowed_domains: Vec<String>,
    reserved_names: Vec<String>,
}

fn settings_json(s: &crate::models::settings::Settings) -> SettingsJson {
    SettingsJson {
        security_level: s.security_level,
        auto_map_host_names: s.auto_map_host_names,
        certificate_validity_days: s.certificate_validity_days,
        auto_reissue_minutes: s.auto_reissue_minutes,
        audit_retention_days: s.audit_retention_days,
        renewal_interval_minutes: s.renewal_interval_minutes,
        allowed_domains: crate::names::stored_list(&s.allowed_domains),
        reserved_names: crate::names::stored_list(&s.reserved_names),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "settings",
    summary = "The global security settings",
    responses((status = 200, description = "The settings", body = SettingsJson)),
    security(("bearer" = []))
)]
async fn get_settings(_auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let s = web::block(move || services::settings::load(&ctx)).await??;
    Ok(HttpResponse::Ok().json(settings_json(&s)))
}

/// A list of names: a JSON array of strings, or one string separated by commas, spaces or
/// new lines.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NameList {
    List(Vec<String>),
    Text(String),
}

impl NameList {
    fn text(self) -> String {
        match self {
            NameList::List(items) => items.join("\n"),
            NameList::Text(s) => s,
        }
    }
}

/// The values to change (the others stay) and why. An unknown setting is refused rather
/// than ignored: a misspelt name would otherwise look like a change that was made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    #[serde(default)]
    #[schema(value_type = Option<SecurityLevel>)]
    security_level: Option<String>,
    #[serde(default)]
    auto_map_host_names: Option<bool>,
    /// Days, 1 to 825.
    #[serde(default)]
    certificate_validity_days: Option<i64>,
    /// Minutes, 0 to 43200.
    #[serde(default)]
    auto_reissue_minutes: Option<i64>,
    /// Days, 30 to 3650; lowering it needs an administrator.
    #[serde(default)]
    audit_retention_days: Option<i64>,
    /// Minutes, 0 to 10080.
    #[serde(default)]
    renewal_interval_minutes: Option<i64>,
    #[serde(default)]
    allowed_domains: Option<NameList>,
    #[serde(default)]
    reserved_names: Option<NameList>,
    /// Why; required (it goes into every audit event of the change).
    #[serde(default)]
    reason: Option<String>,
}

impl SettingsChange {
    /// The values sent, written over the settings form as it stands, and the reason.
    fn apply_to(self, input: &mut SettingsInput) {
        if let Some(v) = self.security_level {
            input.security_level = v;
        }
        if let Some(v) = self.auto_map_host_names {
            input.auto_map_host_names = v;
        }
        if let Some(v) = self.certificate_validity_days {
            input.certificate_validity_days = v.to_string();
        }
        if let Some(v) = self.auto_reissue_minutes {
            input.auto_reissue_minutes = v.to_string();
        }
        if let Some(v) = self.audit_retention_days {
            input.audit_retention_days = v.to_string();
        }
        if let Some(v) = self.renewal_interval_minutes {
            input.renewal_interval_minutes = Some(v.to_string());
        }
        if let Some(v) = self.allowed_domains {
            input.allowed_domains = v.text();
        }
        if let Some(v) = self.reserved_names {
            input.reserved_names = v.text();
        }
        input.reason = self.reason.unwrap_or_default();
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/settings",
    tag = "settings",
    summary = "Change settings (the given values; reason required)",
    request_body = SettingsChange,
    responses(
        (status = 200, description = "The settings after the change", body = SettingsJson),
        (status = 422, description = "A value out of range, or no reason", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn put_settings(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(
        &ctx,
        &auth.0,
        AuditCategory::SecConfig,
        "change_setting",
        "settings",
    )
    .await?;
    let b: SettingsChange = body(&req, &bytes)?;
    let s = web::block(move || {
        services::settings::update_with(&ctx, &auth.0, |input| b.apply_to(input))
    })
    .await?
    .map_err(form_error)?;
    Ok(HttpResponse::Ok().json(settings_json(&s)))
}

// ---- audit ----

#[derive(Serialize, ToSchema)]
pub struct AuditEventJson {
    id: i64,
    #[schema(format = DateTime)]
    at: String,
    /// TOKEN, CERT, HOST, SEC_CONFIG, LOGIN or USER.
    category: AuditCategory,
    action: String,
    user: String,
    target: String,
    description: String,
    reason: String,
    outcome: Outcome,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    events: Vec<AuditEventJson>,
    total: i64,
    page: i64,
    page_size: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// TOKEN, CERT, HOST, SEC_CONFIG, LOGIN or USER.
    category: Option<String>,
    /// The acting user.
    user: Option<String>,
    #[param(value_type = Option<Outcome>)]
    outcome: Option<String>,
    /// From this day (YYYY-MM-DD, UTC).
    from: Option<String>,
    /// To this day (YYYY-MM-DD, UTC).
    to: Option<String>,
    /// Text in the target, description or reason.
    q: Option<String>,
    /// A page number, from 1.
    page: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    summary = "Audit events, newest first",
    params(AuditParams),
    responses((status = 200, description = "One page of events", body = AuditList)),
    security(("bearer" = []))
)]
async fn list_audit(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let p = p.into_inner();
    let q = AuditQuery {
        category: p.category,
        user: p.user,
        outcome: p.outcome,
        from: p.from,
        to: p.to,
        q: p.q,
        page: p.page,
        verify: None,
    };
    let found = web::block(move || audit_log::events(&ctx, &q, PAGE_SIZE)).await??;
    let rows = found.events;
    Ok(HttpResponse::Ok().json(AuditList {
        events: rows
            .iter()
            .map(|e| AuditEventJson {
                id: e.id,
                at: iso(e.at),
                category: e.category,
                action: e.action.clone(),
                user: e.actor.clone(),
                target: e.target.clone(),
                description: e.description.clone(),
                reason: e.reason.clone(),
                outcome: e.outcome,
            })
            .collect(),
        total: found.total,
        page: found.page_no,
        page_size: PAGE_SIZE,
    }))
}

// ---- the CAs and their migration ----

/// A CA migration as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct MigrationJson {
    id: i64,
    from_issuer_id: i64,
    to_issuer_id: i64,
    phase: crate::models::issuer::MigrationPhase,
    reason: String,
    initiated_by: String,
    #[schema(format = DateTime)]
    initiated_at: String,
    #[schema(format = DateTime)]
    activated_at: Option<String>,
    #[schema(format = DateTime)]
    completed_at: Option<String>,
    forced: bool,
    #[schema(format = DateTime)]
    decommissioned_at: Option<String>,
}

impl MigrationJson {
    fn of(m: &crate::models::issuer::CaMigration) -> MigrationJson {
        MigrationJson {
            id: m.id,
            from_issuer_id: m.from_issuer_id,
            to_issuer_id: m.to_issuer_id,
            phase: m.phase,
            reason: m.reason.clone(),
            initiated_by: m.initiated_by.clone(),
            initiated_at: iso(m.initiated_at),
            activated_at: m.activated_at.map(iso),
            completed_at: m.completed_at.map(iso),
            forced: m.forced,
            decommissioned_at: m.decommissioned_at.map(iso),
        }
    }
}

/// The CAs, the migration in progress and the counts of its two lists.
#[derive(Serialize, ToSchema)]
pub struct CaState {
    issuers: Vec<services::ca_migration::IssuerView>,
    /// The SHA-256 fingerprint hosts confirm (the newest root in the trust bundle).
    root_fingerprint: String,
    migration: Option<MigrationJson>,
    pending_trust: i64,
    pending_renewal: i64,
    /// Active certificates of the migration's old CA.
    old_active: i64,
}

#[utoipa::path(get, path = "/api/v1/ca", tag = "ca-admin",
    summary = "The CAs (roots, issuing CAs), where their keys are, and the CA migration in progress with its counts",
    responses((status = 200, description = "The CAs", body = CaState)),
    security(("bearer" = [])))]
async fn ca_show(_auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let fingerprint = ctx.pki.root_fingerprint();
    let o = web::block(move || services::ca_migration::overview(&ctx)).await??;
    Ok(HttpResponse::Ok().json(CaState {
        issuers: o.issuers,
        root_fingerprint: fingerprint,
        migration: o.migration.as_ref().map(MigrationJson::of),
        pending_trust: o.pending_trust,
        pending_renewal: o.pending_renewal,
        old_active: o.old_active,
    }))
}

/// Initiate a CA migration.
#[derive(Deserialize, ToSchema)]
pub struct InitiateBody {
    /// Why (kept in the audit events).
    reason: String,
    /// A whole new root too (for a key type or algorithm change).
    #[serde(default)]
    new_root: bool,
    /// p256, p384, rsa3072 or rsa4096 (default: the current CA's).
    #[serde(default)]
    key_type: Option<String>,
    /// A PKCS#11 URI for the new issuing CA's key (default: a key file).
    #[serde(default)]
    key_uri: Option<String>,
    /// When the root key is offline: the file `hostca ca export-root` wrote, base64.
    #[serde(default)]
    root_key: Option<String>,
    /// Its passphrase.
    #[serde(default)]
    root_key_passphrase: Option<String>,
}

/// A step of a CA migration.
#[derive(Deserialize, ToSchema)]
pub struct StepBody {
    /// Why (kept in the audit events).
    reason: String,
    /// Complete even though certificates of the old CA are still active.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/api/v1/ca/migration/initiate", tag = "ca-admin",
    summary = "Initiate a CA migration: a new issuing CA (or a new root and issuing CA), pending, added to the trust bundle (administrators)",
    request_body = InitiateBody,
    responses((status = 201, description = "The migration", body = MigrationJson),
        (status = 409, description = "A migration is in progress", body = ErrorBody),
        (status = 422, description = "No reason, or the root key is offline and not given", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ca_initiate(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    may_change(
        &ctx,
        &auth.0,
        AuditCategory::Ca,
        "ca_migration_initiate",
        "CA",
    )
    .await?;
    let b: InitiateBody = body(&req, &bytes)?;
    let root_key = match (b.root_key, b.root_key_passphrase) {
        (Some(file), Some(passphrase)) => {
            use base64::Engine;
            let file = base64::engine::general_purpose::STANDARD
                .decode(file.trim())
                .map_err(|_| {
                    AppError::BadRequest("root_key: send the exported file as base64".into())
                })?;
            Some(services::ca_migration::RootKeyFile { file, passphrase })
        }
        (None, None) => None,
        _ => {
            return Err(AppError::BadRequest(
                "send root_key and root_key_passphrase together".into(),
            )
            .into())
        }
    };
    let r = services::ca_migration::InitiateRequest {
        reason: b.reason,
        new_root: b.new_root,
        key_type: b.key_type,
        key_uri: b.key_uri,
        root_key,
    };
    let m = web::block(move || services::ca_migration::initiate(&ctx, &auth.0, &r)).await??;
    Ok(HttpResponse::Created().json(MigrationJson::of(&m)))
}

/// A migration step's service, given the caller and the step's body.
type StepService =
    fn(&Ctx, &Actor, &StepBody) -> Result<crate::models::issuer::CaMigration, AppError>;

async fn ca_step(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
    action: &'static str,
    service: StepService,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, AuditCategory::Ca, action, "CA").await?;
    let b: StepBody = body(&req, &bytes)?;
    let m = web::block(move || service(&ctx, &auth.0, &b)).await??;
    Ok(HttpResponse::Ok().json(MigrationJson::of(&m)))
}

#[utoipa::path(post, path = "/api/v1/ca/migration/activate", tag = "ca-admin",
    summary = "Activate the initiated CA migration: the new CA signs new certificates (administrators)",
    request_body = StepBody,
    responses((status = 200, description = "The migration", body = MigrationJson),
        (status = 409, description = "No initiated migration", body = ErrorBody),
        (status = 422, description = "No reason given: every step is audited with its reason", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ca_activate(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    ca_step(req, auth, ctx, bytes, "ca_migration_activate", |c, a, b| {
        services::ca_migration::activate(c, a, &b.reason)
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/ca/migration/complete", tag = "ca-admin",
    summary = "Complete the activated CA migration: the old CA signs only its CRL; refused while it has active certificates unless force (administrators)",
    request_body = StepBody,
    responses((status = 200, description = "The migration", body = MigrationJson),
        (status = 409, description = "No activated migration, or the old CA still has active certificates", body = ErrorBody),
        (status = 422, description = "No reason given: every step is audited with its reason", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ca_complete(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    ca_step(req, auth, ctx, bytes, "ca_migration_complete", |c, a, b| {
        services::ca_migration::complete(c, a, &b.reason, b.force)
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/ca/migration/decommission", tag = "ca-admin",
    summary = "Decommission the completed CA migration's old CA: it leaves the trust bundle (administrators)",
    request_body = StepBody,
    responses((status = 200, description = "The migration", body = MigrationJson),
        (status = 409, description = "No completed migration", body = ErrorBody),
        (status = 422, description = "No reason given: every step is audited with its reason", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ca_decommission(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    ca_step(
        req,
        auth,
        ctx,
        bytes,
        "ca_migration_decommission",
        |c, a, b| services::ca_migration::decommission(c, a, &b.reason),
    )
    .await
}

/// How many hosts were marked.
#[derive(Serialize, ToSchema)]
pub struct Marked {
    marked: usize,
}

#[utoipa::path(post, path = "/api/v1/ca/migration/mark-renewal", tag = "ca-admin",
    summary = "Mark every host pending renewal for one early renewal",
    request_body = StepBody,
    responses((status = 200, description = "How many hosts were marked", body = Marked),
        (status = 409, description = "No activated migration", body = ErrorBody),
        (status = 422, description = "No reason given: every step is audited with its reason", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ca_mark_renewal(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let audit = (AuditCategory::Ca, "ca_migration_mark_renewal", "CA");
    mark_hosts(req, auth, ctx, bytes, audit, |c, a, r| {
        services::ca_migration::mark_all_for_renewal(c, a, r)
    })
    .await
}

/// Marks hosts for renewal with a reason (`f`), after the role check `audit` names.
async fn mark_hosts(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
    (category, action, target): (AuditCategory, &'static str, &'static str),
    f: fn(&Ctx, &Actor, &str) -> Result<usize, AppError>,
) -> Result<HttpResponse, ApiError> {
    may_change(&ctx, &auth.0, category, action, target).await?;
    let b: RenewAllBody = body(&req, &bytes)?;
    let marked = web::block(move || f(&ctx, &auth.0, &b.reason)).await??;
    Ok(HttpResponse::Ok().json(Marked { marked }))
}

/// A host a CA migration waits for.
#[derive(Serialize, ToSchema)]
pub struct PendingHostJson {
    #[schema(format = Uuid)]
    host_id: String,
    name: String,
    /// When it last fetched the trust bundle (null: never recorded).
    #[schema(format = DateTime)]
    trust_seen_at: Option<String>,
}

async fn pending(
    ctx: web::Data<Ctx>,
    which: services::ca_migration::Pending,
) -> Result<HttpResponse, ApiError> {
    let rows = web::block(move || services::ca_migration::pending_hosts(&ctx, which)).await??;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(|p| PendingHostJson {
                host_id: p.host_id,
                name: p.primary_name,
                trust_seen_at: p.trust_seen_at.map(iso),
            })
            .collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/ca/migration/pending-trust", tag = "ca-admin",
    summary = "Hosts with an active certificate that have not fetched the trust bundle since the migration began",
    responses((status = 200, description = "The hosts", body = [PendingHostJson])),
    security(("bearer" = [])))]
async fn ca_pending_trust(_auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    pending(ctx, services::ca_migration::Pending::Trust).await
}

#[utoipa::path(get, path = "/api/v1/ca/migration/pending-renewal", tag = "ca-admin",
    summary = "Hosts whose active certificate is still from the migration's old CA",
    responses((status = 200, description = "The hosts", body = [PendingHostJson])),
    security(("bearer" = [])))]
async fn ca_pending_renewal(_auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    pending(ctx, services::ca_migration::Pending::Renewal).await
}

/// Why hosts are marked to renew now (kept in the audit event).
#[derive(Deserialize, ToSchema)]
pub struct RenewAllBody {
    #[schema(example = "drill: suspected key compromise")]
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/hosts/renew-all", tag = "hosts-admin",
    summary = "Renew every host now: every host with an active certificate may renew once, at once (its renewal window opens now); agents re-key at their next poll",
    request_body = RenewAllBody,
    responses((status = 200, description = "How many hosts were marked", body = Marked),
        (status = 422, description = "No reason given: the action is audited with its reason", body = ErrorBody)),
    security(("bearer" = [])))]
async fn hosts_renew_all(
    req: HttpRequest,
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let audit = (AuditCategory::Host, "renew_all", "every host");
    mark_hosts(req, auth, ctx, bytes, audit, |c, a, r| {
        services::renewal::renew_all(c, a, r)
    })
    .await
}
