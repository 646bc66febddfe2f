//! Security > Tokens: list, add, details, show value, delete, cleanup.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::auth::{Auth, CsrfForm, Form};
use super::listing::{self, ListQuery, Listing, Paging, PAGE_SIZE};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::token::{Token, TokenFilter, TokenKind, TokenSort, TokenState};
use crate::services::tokens::{self as svc, TokenInput};
use crate::services::{Ctx, FieldErrors};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/tokens", web::get().to(list))
        .route("/security/tokens", web::post().to(create))
        .route("/security/tokens/new", web::get().to(new_form))
        .route("/security/tokens/delete", web::post().to(delete_selected))
        .route("/security/tokens/cleanup", web::post().to(cleanup))
        .route("/security/tokens/{name}", web::get().to(details))
        .route("/security/tokens/{name}/show", web::post().to(show_value))
        .route("/security/tokens/{name}/delete", web::post().to(delete_one));
}

/// A token as the pages show it.
pub struct TokenView {
    pub name: String,
    pub kind: TokenKind,
    pub kind_label: &'static str,
    pub state_key: &'static str,
    pub state_label: &'static str,
    pub uses: i32,
    pub max_uses: i32,
    pub valid_until: When,
    pub reason: String,
    pub host_id: String,
    pub created_by: String,
    pub created_at: When,
    pub last_used: Option<When>,
    pub last_used_by: String,
}

impl TokenView {
    pub fn of(t: &Token, now: NaiveDateTime) -> TokenView {
        let state = t.state(now);
        TokenView {
            name: t.name.clone(),
            kind: t.kind,
            kind_label: t.kind.label(),
            state_key: state.key(),
            state_label: state.label(),
            uses: t.uses,
            max_uses: t.max_uses,
            valid_until: When::of(t.valid_until, now),
            reason: t.reason.clone(),
            host_id: t.host_id.clone().unwrap_or_default(),
            created_by: t.created_by.clone(),
            created_at: When::of(t.created_at, now),
            last_used: When::maybe(t.last_used_at, now),
            last_used_by: t.last_used_by.clone().unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct StateQuery {
    pub state: Option<String>,
    /// Days: only active tokens that expire within so many.
    pub expires_within: Option<String>,
}

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<TokenView>,
    list: Listing,
    /// The state filter's choices: key and label.
    states: Vec<(&'static str, &'static str)>,
}

/// The token list's query (search, state, sort, page), for the page and the API.
pub fn filter(query: &ListQuery, extra: &StateQuery) -> Result<(Paging, TokenFilter), AppError> {
    let paging = listing::parse(query, TokenSort::CreatedAt.key(), TokenSort::KEYS)?;
    let filter = TokenFilter {
        q: paging.q.clone(),
        state: parse_state(extra.state.as_deref())?,
        expires_within: super::certificates::days(
            "expires_within",
            extra.expires_within.as_deref(),
            super::certificates::EXPIRES_WITHIN_MAX,
        )?,
        sort: TokenSort::parse(&paging.sort).unwrap_or(TokenSort::CreatedAt),
        descending: paging.descending,
        offset: paging.offset(),
        limit: PAGE_SIZE,
    };
    Ok((paging, filter))
}

fn parse_state(s: Option<&str>) -> Result<Option<TokenState>, AppError> {
    match s.unwrap_or("") {
        "" | "all" => Ok(None),
        s => TokenState::parse(s).map(Some).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown state '{s}': use {}",
                TokenState::choices()
            ))
        }),
    }
}

async fn list(
    auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<ListQuery>,
    state: web::Query<StateQuery>,
) -> Result<HttpResponse, AppError> {
    let (paging, filter) = filter(&query, &state)?;
    let state = filter.state;
    let kept: Vec<_> = filter
        .expires_within
        .map(Listing::expires_within)
        .into_iter()
        .collect();
    let (rows, total, now) = web::block(move || svc::list(&ctx, &filter)).await??;
    let state_key = state.map(|s| s.key().to_string()).unwrap_or_default();
    view::ok(&ListPage {
        page: auth.page("Tokens", "tokens"),
        list: Listing::new(
            "/security/tokens",
            &paging,
            "state",
            state_key,
            total,
            rows.len(),
        )
        .keeping(kept),
        rows: rows.iter().map(|t| TokenView::of(t, now)).collect(),
        states: TokenState::ALL
            .iter()
            .map(|s| (s.key(), s.label()))
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "tokens/new.html")]
struct NewPage {
    page: Page,
    input: TokenInput,
    errors: FieldErrors,
}

impl NewPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

async fn new_form(auth: Auth) -> Result<HttpResponse, AppError> {
    view::ok(&NewPage {
        page: auth.page("Add token", "tokens"),
        input: TokenInput {
            max_uses: "1".into(),
            valid_for: "1d".into(),
            ..TokenInput::default()
        },
        errors: FieldErrors::new(),
    })
}

async fn create(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(input): CsrfForm<TokenInput>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let i = input.clone();
    let result = web::block(move || svc::create(&ctx, &actor, &i)).await?;
    let (status, errors) = match result {
        Ok(token) => {
            view::flash(
                &auth.session,
                "success",
                format!(
                    "Token {} created. Use Show to reveal its value.",
                    token.name
                ),
            );
            return Ok(view::redirect(&format!("/security/tokens/{}", token.name)));
        }
        Err(e) => view::rejected(e)?,
    };
    let mut page = auth.page("Add token", "tokens");
    page.flash.push(view::Flash {
        kind: "error".into(),
        message: "The token was not created: correct the fields marked below.".into(),
    });
    view::render(
        status,
        &NewPage {
            page,
            input,
            errors,
        },
    )
}

#[derive(Template)]
#[template(path = "tokens/details.html")]
struct DetailsPage {
    page: Page,
    t: TokenView,
    value: String,
    /// The token as an ACME External Account Binding, once its value is shown.
    eab: Option<Eab>,
}

/// What an ACME client needs to bind an account with a token, and ready command lines.
pub struct Eab {
    pub kid: String,
    pub hmac_key: String,
    pub directory: String,
    pub certbot: String,
    pub lego: String,
}

impl Eab {
    fn of(name: &str, value: &str, public_url: &str) -> Option<Eab> {
        let hmac_key = crate::acme::eab_mac_key_text(value)?;
        let directory = format!("{public_url}/acme/directory");
        Some(Eab {
            certbot: format!(
                "REQUESTS_CA_BUNDLE=hostca-ca.pem certbot certonly --standalone --server {directory} --eab-kid {name} --eab-hmac-key {hmac_key} -d HOST-NAME"
            ),
            lego: format!(
                "LEGO_CA_CERTIFICATES=hostca-ca.pem lego --server {directory} --accept-tos --email ADDRESS --eab --kid {name} --hmac {hmac_key} --domains HOST-NAME --http run"
            ),
            kid: name.to_string(),
            hmac_key,
            directory,
        })
    }
}

async fn details(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let token = web::block(move || svc::details(&ctx, &name)).await??;
    let now = crate::db::now();
    view::ok(&DetailsPage {
        page: auth.page(&format!("Token {}", token.name), "tokens"),
        t: TokenView::of(&token, now),
        value: String::new(),
        eab: None,
    })
}

async fn show_value(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let name = name.into_inner();
    let actor = auth.actor();
    let public_url = ctx.site.public_url.clone();
    let (token, value) = web::block(move || svc::reveal(&ctx, &actor, &name)).await??;
    let now = crate::db::now();
    let response = view::ok(&DetailsPage {
        page: auth.page(&format!("Token {}", token.name), "tokens"),
        t: TokenView::of(&token, now),
        eab: Eab::of(&token.name, &value, &public_url),
        value,
    })?;
    Ok(response)
}

async fn delete_one(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    delete_names(auth, ctx, vec![name.into_inner()]).await
}

async fn delete_selected(
    auth: Auth,
    ctx: web::Data<Ctx>,
    form: Form,
) -> Result<HttpResponse, AppError> {
    let names = form.all("name");
    // Nothing ticked is a slip, not an attack: back to the list, saying what to do.
    if names.is_empty() && auth.role().can_change() {
        view::flash(
            &auth.session,
            "error",
            "No token was selected: tick the tokens to delete, then choose Delete again.",
        );
        return Ok(view::redirect("/security/tokens"));
    }
    delete_names(auth, ctx, names).await
}

async fn delete_names(
    auth: Auth,
    ctx: web::Data<Ctx>,
    names: Vec<String>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let list = names.clone();
    let n = web::block(move || svc::delete(&ctx, &actor, &list)).await??;
    let message = match names.as_slice() {
        [one] => format!("Token {one} deleted."),
        _ => format!("{n} tokens deleted."),
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect("/security/tokens"))
}

async fn cleanup(auth: Auth, ctx: web::Data<Ctx>, _form: Form) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let n = web::block(move || svc::cleanup(&ctx, &actor)).await??;
    let message = match n {
        0 => "Cleanup found no expired or used-up tokens.".to_string(),
        1 => "Cleanup removed 1 expired or used-up token.".to_string(),
        n => format!("Cleanup removed {n} expired or used-up tokens."),
    };
    view::flash(&auth.session, "success", message);
    Ok(view::redirect("/security/tokens"))
}
