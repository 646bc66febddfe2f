//! Account > API keys: a user's keys for scripts and the command line.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, CsrfForm, Form};
use super::forms::ApiKeyForm;
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::api_key::ApiKey;
use crate::services::{api_keys as svc, Ctx, FieldErrors};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/api-keys", web::get().to(list))
        .route("/account/api-keys", web::post().to(create))
        .route("/account/api-keys/{name}/revoke", web::post().to(revoke))
        .route("/admin/api-keys", web::get().to(list_all))
        .route("/admin/api-keys/{id}/revoke", web::post().to(revoke_any));
}

pub struct KeyRow {
    pub name: String,
    pub prefix: String,
    pub created: When,
    pub expires: Option<When>,
    pub last_used: Option<When>,
    pub state: &'static str,
}

impl KeyRow {
    /// A key as its owner's page and the administrators' list both show it.
    fn of(k: ApiKey, now: chrono::NaiveDateTime) -> KeyRow {
        KeyRow {
            state: k.state(now).key(),
            created: When::of(k.created_at, now),
            expires: When::maybe(k.expires_at, now),
            last_used: When::maybe(k.last_used_at, now),
            name: k.name,
            prefix: k.prefix,
        }
    }
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    page: Page,
    rows: Vec<KeyRow>,
    new_value: String,
    name: String,
    valid_for: String,
    errors: FieldErrors,
}

impl KeysPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

async fn page(
    auth: &Auth,
    ctx: web::Data<Ctx>,
    new_value: String,
    (name, valid_for): (String, String),
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let id = auth.user.id;
    let keys = web::block(move || svc::list(&ctx, id)).await??;
    let now = crate::db::now();
    view::render(
        status,
        &KeysPage {
            page: auth.page("API keys", "api-keys"),
            rows: keys.into_iter().map(|k| KeyRow::of(k, now)).collect(),
            new_value,
            name,
            valid_for,
            errors,
        },
    )
}

async fn list(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    page(
        &auth,
        ctx,
        String::new(),
        Default::default(),
        FieldErrors::new(),
        StatusCode::OK,
    )
    .await
}

async fn create(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(ApiKeyForm { name, valid_for }): CsrfForm<ApiKeyForm>,
) -> Result<HttpResponse, AppError> {
    let (c, u, n, v) = (
        ctx.clone(),
        auth.user.clone(),
        name.clone(),
        valid_for.clone(),
    );
    match web::block(move || svc::create(&c, &u, &n, &v)).await? {
        Ok((key, value)) => {
            let flash = format!(
                "API key {} created. Copy it now: it is shown only once.",
                key.name
            );
            view::flash(&auth.session, "success", flash);
            page(
                &auth,
                ctx,
                value,
                Default::default(),
                FieldErrors::new(),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let (status, errors) = view::rejected(e)?;
            page(&auth, ctx, String::new(), (name, valid_for), errors, status).await
        }
    }
}

async fn revoke(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (user, n) = (auth.user.clone(), name.into_inner());
    let shown = n.clone();
    web::block(move || svc::revoke(&ctx, &user, &n)).await??;
    view::flash(
        &auth.session,
        "success",
        format!("API key {shown} revoked."),
    );
    Ok(view::redirect("/account/api-keys"))
}

pub struct OwnedKeyRow {
    pub id: i64,
    pub owner: String,
    pub key: KeyRow,
}

#[derive(Template)]
#[template(path = "admin_api_keys.html")]
struct AllKeysPage {
    page: Page,
    rows: Vec<OwnedKeyRow>,
}

/// Administration > API keys: every user's keys, to revoke one left behind.
async fn list_all(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let keys = web::block(move || svc::list_all(&ctx, &actor)).await??;
    let now = crate::db::now();
    view::ok(&AllKeysPage {
        page: auth.page("All API keys", "users"),
        rows: keys
            .into_iter()
            .map(|(k, owner)| OwnedKeyRow {
                id: k.id,
                owner,
                key: KeyRow::of(k, now),
            })
            .collect(),
    })
}

async fn revoke_any(
    auth: Auth,
    ctx: web::Data<Ctx>,
    id: web::Path<i64>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (actor, id) = (auth.actor(), id.into_inner());
    let (key, owner) = web::block(move || svc::revoke_any(&ctx, &actor, id)).await??;
    view::flash(
        &auth.session,
        "success",
        format!("API key {} of {owner} revoked.", key.name),
    );
    Ok(view::redirect("/admin/api-keys"))
}
