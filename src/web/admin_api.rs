//! The admin JSON API (`Authorization: Bearer <api key>`): what the pages do, for scripts
//! and the command line. Each call is checked against the key owner's role and audited
//! by the same service function as the page.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::listing::{self, ListQuery, PAGE_SIZE};
use super::Body;
use crate::error::{ApiError, AppError};
use crate::models::certificate::Certificate;
use crate::models::token::Token;
use crate::services::audit_log::{self, AuditQuery};
use crate::services::settings::SettingsInput;
use crate::services::tokens::{ReissueInput, TokenInput};
use crate::services::{self, Actor, Ctx, FormError};

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
    ("get", "/api/v1/hosts/{host}"),
    ("post", "/api/v1/hosts/{host}/revoke"),
    ("post", "/api/v1/hosts/{host}/auto-reissue"),
    ("post", "/api/v1/hosts/{host}/mappings"),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/approve"),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/reject"),
    ("delete", "/api/v1/hosts/{host}/mappings/{name}"),
    ("get", "/api/v1/settings"),
    ("put", "/api/v1/settings"),
    ("get", "/api/v1/audit"),
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
        .route("/hosts/{host}", web::get().to(host_details))
        .route("/hosts/{host}/revoke", web::post().to(revoke_host))
        .route("/hosts/{host}/auto-reissue", web::post().to(auto_reissue))
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
        .route("/audit", web::get().to(list_audit));
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
            let ctx = ctx.ok_or_else(|| AppError::Internal("no application state".into()))?;
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
fn bearer_key(header: &str) -> Option<&str> {
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

/// A JSON body; anything else is a 4xx (in JSON) that says what was wrong.
fn body<T: serde::de::DeserializeOwned>(bytes: &Body) -> Result<T, ApiError> {
    Ok(super::parse_json(super::read_body(bytes, "body")?)?)
}

#[derive(Serialize)]
pub struct TokenJson {
    name: String,
    kind: String,
    state: &'static str,
    uses: i32,
    max_uses: i32,
    valid_until: String,
    reason: String,
    host_id: Option<String>,
    created_by: String,
    created_at: String,
    last_used_at: Option<String>,
    last_used_by: Option<String>,
}

fn token_json(t: &Token, now: NaiveDateTime) -> TokenJson {
    TokenJson {
        name: t.name.clone(),
        kind: t.kind.to_string(),
        state: t.state(now).key(),
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

async fn list_tokens(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    q: web::Query<ListQuery>,
    s: web::Query<super::tokens::StateQuery>,
) -> Result<HttpResponse, ApiError> {
    let (paging, filter) = super::tokens::filter(&q, s.state.as_deref())?;
    let (rows, total, now) = web::block(move || services::tokens::list(&ctx, &filter)).await??;
    Ok(HttpResponse::Ok().json(json!({
        "tokens": rows.iter().map(|t| token_json(t, now)).collect::<Vec<_>>(),
        "total": total,
        "page": paging.page_no,
        "page_size": PAGE_SIZE,
    })))
}

#[derive(Deserialize)]
struct NewTokenBody {
    name: String,
    #[serde(default)]
    max_uses: Option<Value>,
    #[serde(default)]
    valid_for: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn create_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: NewTokenBody = body(&bytes)?;
    let input = TokenInput {
        name: b.name,
        max_uses: match b.max_uses {
            None | Some(Value::Null) => String::new(),
            Some(Value::Number(n)) => n.to_string(),
            // A strict client contract: "5" is a string, and scripts that send one have a bug.
            Some(other) => {
                return Err(ApiError(AppError::BadRequest(format!(
                    "max_uses must be a JSON integer such as 5, not {other}"
                ))))
            }
        },
        valid_for: b.valid_for.unwrap_or_default(),
        reason: b.reason.unwrap_or_default(),
    };
    let token = web::block(move || services::tokens::create(&ctx, &auth.0, &input))
        .await?
        .map_err(form_error)?;
    Ok(HttpResponse::Created().json(token_json(&token, crate::db::now())))
}

#[derive(Deserialize)]
struct ReissueBody {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    host_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    valid_for: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn create_reissue_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: ReissueBody = body(&bytes)?;
    let host = match (b.host, b.host_id) {
        (Some(h), None) | (None, Some(h)) => h,
        _ => {
            return Err(ApiError(AppError::BadRequest(
                "give exactly one of host (primary name) and host_id".into(),
            )))
        }
    };
    let input = ReissueInput {
        name: b.name.unwrap_or_default(),
        valid_for: b.valid_for.unwrap_or_default(),
        valid_until: b.valid_until.unwrap_or_default(),
        reason: b.reason.unwrap_or_default(),
    };
    let token = web::block(move || services::tokens::create_reissue(&ctx, &auth.0, &host, &input))
        .await?
        .map_err(form_error)?;
    Ok(HttpResponse::Created().json(token_json(&token, crate::db::now())))
}

async fn token_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let t = web::block(move || services::tokens::details(&ctx, &name)).await??;
    Ok(HttpResponse::Ok().json(token_json(&t, crate::db::now())))
}

async fn show_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (t, value) = web::block(move || services::tokens::reveal(&ctx, &auth.0, &name)).await??;
    Ok(HttpResponse::Ok().json(json!({"name": t.name, "value": value})))
}

async fn delete_token(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let names = vec![name.into_inner()];
    let n = web::block(move || services::tokens::delete(&ctx, &auth.0, &names)).await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

#[derive(Deserialize)]
struct NamesBody {
    names: Vec<String>,
}

async fn delete_tokens(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: NamesBody = body(&bytes)?;
    let n = web::block(move || services::tokens::delete(&ctx, &auth.0, &b.names)).await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

async fn cleanup_tokens(auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let n = web::block(move || services::tokens::cleanup(&ctx, &auth.0)).await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

fn cert_json(c: &Certificate, now: NaiveDateTime) -> Value {
    json!({
        "serial": c.serial,
        "host_id": c.host_id,
        "host_name": c.primary_name(),
        "names": c.names(),
        "subject": c.subject,
        "status": c.status(now).key(),
        "not_before": iso(c.not_before),
        "not_after": iso(c.not_after),
        "sha256_fingerprint": c.fingerprint_sha256,
        "revoked_at": c.revoked_at.map(iso),
        "revocation_reason": c.revocation_reason,
        "revoked_by": c.revoked_by,
        "token_name": c.token_name,
    })
}

async fn list_certificates(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    q: web::Query<ListQuery>,
    s: web::Query<super::certificates::StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let (paging, filter) = super::certificates::filter(&q, s.status.as_deref())?;
    let (rows, total, now) =
        web::block(move || services::certificates::list(&ctx, &filter)).await??;
    Ok(HttpResponse::Ok().json(json!({
        "certificates": rows.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
        "total": total,
        "page": paging.page_no,
        "page_size": PAGE_SIZE,
    })))
}

async fn certificate_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = web::block(move || services::certificates::details(&ctx, &serial)).await??;
    let mut v = cert_json(&c, crate::db::now());
    v["pem"] = Value::String(c.pem);
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: String,
}

async fn revoke_certificate(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    serial: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: ReasonBody = body(&bytes)?;
    let c = web::block(move || services::certificates::revoke(&ctx, &auth.0, &serial, &b.reason))
        .await??;
    Ok(HttpResponse::Ok().json(cert_json(&c, crate::db::now())))
}

fn host_json(d: &services::hosts::HostDetails, now: NaiveDateTime) -> Value {
    json!({
        "host_id": d.host.host_id,
        "primary_name": d.host.primary_name,
        "created_at": iso(d.host.created_at),
        "created_by": d.host.created_by,
        "auto_reissue_until": d.host.auto_reissue_window(now).map(iso),
        "mappings": d.mappings.iter().map(|m| json!({
            "name": m.mapping.name,
            "state": m.mapping.state,
            "source": m.mapping.source,
            "primary": m.is_primary,
            "shared_with": m.shared_with.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "certificates": d.certificates.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
    })
}

async fn list_hosts(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = listing::parse(&q, "name", &["name", "created"])?;
    let (text, by_created, desc, offset) = (
        paging.q.clone(),
        paging.sort == "created",
        paging.descending,
        paging.offset(),
    );
    let (rows, total) = web::block(move || {
        let (hosts, total) =
            services::hosts::list(&ctx, &text, by_created, desc, offset, PAGE_SIZE)?;
        Ok::<_, AppError>((services::hosts::summaries(&ctx, hosts)?, total))
    })
    .await??;
    let now = crate::db::now();
    Ok(HttpResponse::Ok().json(json!({
        "hosts": rows.iter().map(|s| json!({
            "host_id": s.host.host_id,
            "primary_name": s.host.primary_name,
            "other_names": s.other_names,
            "certificate_status": s.latest.as_ref().map(|c| c.status(now).key()),
            "last_issued": s.latest.as_ref().map(|c| iso(c.not_before)),
            "auto_reissue_until": s.host.auto_reissue_window(now).map(iso),
        })).collect::<Vec<_>>(),
        "total": total,
        "page": paging.page_no,
        "page_size": PAGE_SIZE,
    })))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn add_host(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: NameBody = body(&bytes)?;
    let d = web::block(move || {
        let h = services::hosts::add(&ctx, &auth.0, &b.name)?;
        services::hosts::details_of(&ctx, &h.host_id)
    })
    .await??;
    Ok(HttpResponse::Created().json(host_json(&d, crate::db::now())))
}

async fn host_details(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = web::block(move || services::hosts::details_of(&ctx, &host)).await??;
    Ok(HttpResponse::Ok().json(host_json(&d, crate::db::now())))
}

async fn revoke_host(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: ReasonBody = body(&bytes)?;
    let n = web::block(move || {
        let d = services::hosts::details_of(&ctx, &host)?;
        services::certificates::revoke_host(&ctx, &auth.0, &d.host.host_id, &b.reason)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({"revoked": n})))
}

#[derive(Deserialize)]
struct AutoReissueBody {
    allow: bool,
}

async fn auto_reissue(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: AutoReissueBody = body(&bytes)?;
    let until = web::block(move || {
        let d = services::hosts::details_of(&ctx, &host)?;
        services::hosts::set_auto_reissue(&ctx, &auth.0, &d.host.host_id, b.allow)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({
        "auto_reissue_until": until.map(|u| u.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    })))
}

async fn add_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: web::Path<String>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: NameBody = body(&bytes)?;
    let state = web::block(move || {
        let d = services::hosts::details_of(&ctx, &host)?;
        services::mappings::add(&ctx, &auth.0, &d.host.host_id, &b.name)
    })
    .await??;
    Ok(HttpResponse::Created().json(json!({"state": state})))
}

async fn decide(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    host: String,
    name: String,
    decision: &'static str,
) -> Result<HttpResponse, ApiError> {
    web::block(move || {
        let d = services::hosts::details_of(&ctx, &host)?;
        services::mappings::decide(&ctx, &auth.0, &d.host.host_id, &name, decision)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({"done": decision})))
}

async fn approve_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "approve").await
}

async fn reject_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "reject").await
}

async fn delete_mapping(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    p: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (host, name) = p.into_inner();
    decide(auth, ctx, host, name, "delete").await
}

fn settings_json(s: &crate::models::settings::Settings) -> Value {
    json!({
        "security_level": s.security_level,
        "auto_map_host_names": s.auto_map_host_names,
        "certificate_validity_days": s.certificate_validity_days,
        "auto_reissue_minutes": s.auto_reissue_minutes,
        "audit_retention_days": s.audit_retention_days,
        "renewal_interval_minutes": s.renewal_interval_minutes,
        "allowed_domains": crate::names::stored_list(&s.allowed_domains),
        "reserved_names": crate::names::stored_list(&s.reserved_names),
    })
}

async fn get_settings(_auth: ApiAuth, ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let s = web::block(move || services::settings::load(&ctx)).await??;
    Ok(HttpResponse::Ok().json(settings_json(&s)))
}

/// Changes the given values; the others stay. `reason` is required.
async fn put_settings(
    auth: ApiAuth,
    ctx: web::Data<Ctx>,
    bytes: Body,
) -> Result<HttpResponse, ApiError> {
    let b: Value = body(&bytes)?;
    let Value::Object(obj) = b else {
        return Err(ApiError(AppError::BadRequest("send a JSON object".into())));
    };
    let known = [
        "security_level",
        "auto_map_host_names",
        "certificate_validity_days",
        "auto_reissue_minutes",
        "audit_retention_days",
        "reason",
        "renewal_interval_minutes",
        "allowed_domains",
        "reserved_names",
    ];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError(AppError::BadRequest(format!(
            "unknown setting '{k}': use {}",
            known.join(", ")
        ))));
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = web::block(move || {
        let current = services::settings::load(&ctx)?;
        let mut input = SettingsInput::of(&current);
        if let Some(v) = obj.get("security_level") {
            input.security_level = text(v);
        }
        if let Some(v) = obj.get("auto_map_host_names") {
            input.auto_map_host_names = v.as_bool().ok_or_else(|| {
                FormError::Other(AppError::BadRequest(
                    "auto_map_host_names must be true or false".into(),
                ))
            })?;
        }
        if let Some(v) = obj.get("certificate_validity_days") {
            input.certificate_validity_days = text(v);
        }
        if let Some(v) = obj.get("auto_reissue_minutes") {
            input.auto_reissue_minutes = text(v);
        }
        if let Some(v) = obj.get("audit_retention_days") {
            input.audit_retention_days = text(v);
        }
        if let Some(v) = obj.get("renewal_interval_minutes") {
            input.renewal_interval_minutes = Some(text(v));
        }
        for (key, field) in [
            ("allowed_domains", &mut input.allowed_domains),
            ("reserved_names", &mut input.reserved_names),
        ] {
            match obj.get(key) {
                None => {}
                Some(Value::String(s)) => *field = s.clone(),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    *field = items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                Some(_) => {
                    return Err(FormError::Other(AppError::BadRequest(format!(
                        "{key} must be a list of names, e.g. [\"example.com\"]"
                    ))))
                }
            }
        }
        input.reason = match obj.get("reason") {
            None => String::new(),
            Some(Value::String(r)) => r.clone(),
            Some(_) => {
                return Err(FormError::Other(AppError::BadRequest(
                    "reason must be a string".into(),
                )))
            }
        };
        services::settings::update(&ctx, &auth.0, &input)?;
        Ok::<_, FormError>(services::settings::load(&ctx)?)
    })
    .await?
    .map_err(form_error)?;
    Ok(HttpResponse::Ok().json(settings_json(&s)))
}

async fn list_audit(
    _auth: ApiAuth,
    ctx: web::Data<Ctx>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = audit_log::parse(&q)?;
    let page_no = match q.page.as_deref().unwrap_or("") {
        "" => 1,
        p => p
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| AppError::BadRequest(format!("page '{p}' is not a page number")))?,
    };
    let (rows, total, _) =
        web::block(move || audit_log::list(&ctx, &filter, (page_no - 1) * PAGE_SIZE, PAGE_SIZE))
            .await??;
    Ok(HttpResponse::Ok().json(json!({
        "events": rows.iter().map(|e| json!({
            "id": e.id, "at": iso(e.at), "category": e.category, "action": e.action, "user": e.actor,
            "target": e.target, "description": e.description, "reason": e.reason, "outcome": e.outcome,
        })).collect::<Vec<_>>(),
        "total": total,
        "page": page_no,
        "page_size": PAGE_SIZE,
    })))
}
