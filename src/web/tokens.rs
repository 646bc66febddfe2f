//! Security > Tokens: list, add, details, show value, delete, cleanup.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::auth::{Auth, Form};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::token::{Token, TokenFilter, TokenSort, TokenState, KIND_REISSUE};
use crate::services::tokens::{self as svc, TokenInput};
use crate::services::{Ctx, FieldErrors, FormError};

pub const PAGE_SIZE: i64 = 50;

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
    pub kind: String,
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
            kind: t.kind.clone(),
            kind_label: if t.kind == KIND_REISSUE {
                "Reissue"
            } else {
                "Authorization"
            },
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
pub struct ListQuery {
    q: Option<String>,
    state: Option<String>,
    page: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
}

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<TokenView>,
    q: String,
    state: String,
    sort: String,
    dir: String,
    page_no: i64,
    pages: i64,
    total: i64,
    first_shown: i64,
    last_shown: i64,
}

impl ListPage {
    fn href(&self, sort: &str, dir: &str, page_no: i64) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if !self.q.is_empty() {
            params.push(("q", self.q.clone()));
        }
        if !self.state.is_empty() {
            params.push(("state", self.state.clone()));
        }
        params.push(("sort", sort.to_string()));
        params.push(("dir", dir.to_string()));
        if page_no > 1 {
            params.push(("page", page_no.to_string()));
        }
        format!(
            "/security/tokens?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }

    /// The link of a column heading: sorts by it, or flips the direction if it is the
    /// current sort.
    fn sort_href(&self, column: &str) -> String {
        let dir = if self.sort == column && self.dir == "asc" {
            "desc"
        } else {
            "asc"
        };
        self.href(column, dir, 1)
    }

    fn aria_sort(&self, column: &str) -> &'static str {
        match (self.sort == column, self.dir.as_str()) {
            (true, "asc") => "ascending",
            (true, _) => "descending",
            _ => "none",
        }
    }

    fn page_href(&self, page_no: i64) -> String {
        self.href(&self.sort, &self.dir, page_no)
    }
}

fn parse_list_query(q: ListQuery) -> Result<(TokenFilter, ListQuery), AppError> {
    let state = match q.state.as_deref().unwrap_or("") {
        "" | "all" => None,
        s => Some(TokenState::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown state '{s}': use active, expired or used_up"
            ))
        })?),
    };
    let sort = match q.sort.as_deref().unwrap_or("") {
        "" => TokenSort::CreatedAt,
        s => TokenSort::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "cannot sort by '{s}': use name, kind, uses, valid_until, created_by or created_at"
            ))
        })?,
    };
    let descending = match q.dir.as_deref().unwrap_or("") {
        "" => sort == TokenSort::CreatedAt,
        "asc" => false,
        "desc" => true,
        d => {
            return Err(AppError::BadRequest(format!(
                "unknown sort direction '{d}': use asc or desc"
            )))
        }
    };
    let page_no = match q.page.as_deref().unwrap_or("") {
        "" => 1,
        p => match p.parse::<i64>() {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                return Err(AppError::BadRequest(format!(
                    "page '{p}' is not a page number"
                )))
            }
        },
    };
    let text =
        q.q.clone()
            .unwrap_or_default()
            .trim()
            .chars()
            .take(200)
            .collect::<String>();
    Ok((
        TokenFilter {
            q: text,
            state,
            sort,
            descending,
            offset: (page_no - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        },
        q,
    ))
}

async fn list(
    auth: Auth,
    ctx: web::Data<Ctx>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let (filter, raw) = parse_list_query(query.into_inner())?;
    let f = filter.clone();
    let (rows, total, now) = web::block(move || svc::list(&ctx, &f)).await??;
    let page_no = filter.offset / PAGE_SIZE + 1;
    let shown = rows.len() as i64;
    view::ok(&ListPage {
        page: auth.page("Tokens", "tokens"),
        rows: rows.iter().map(|t| TokenView::of(t, now)).collect(),
        q: filter.q.clone(),
        state: filter
            .state
            .map(|s| s.key().to_string())
            .unwrap_or_default(),
        sort: raw
            .sort
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "created_at".into()),
        dir: if filter.descending { "desc" } else { "asc" }.to_string(),
        page_no,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        total,
        first_shown: if shown == 0 { 0 } else { filter.offset + 1 },
        last_shown: filter.offset + shown,
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

async fn create(auth: Auth, ctx: web::Data<Ctx>, form: Form) -> Result<HttpResponse, AppError> {
    let input = TokenInput {
        name: form.text("name"),
        max_uses: form.text("max_uses"),
        valid_for: form.text("valid_for"),
        reason: form.text("reason"),
    };
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
        Err(FormError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(FormError::Conflict(errors)) => (StatusCode::CONFLICT, errors),
        Err(FormError::Other(e)) => return Err(e),
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
    let (token, value) = web::block(move || svc::reveal(&ctx, &actor, &name)).await??;
    let now = crate::db::now();
    let response = view::ok(&DetailsPage {
        page: auth.page(&format!("Token {}", token.name), "tokens"),
        t: TokenView::of(&token, now),
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
    delete_names(auth, ctx, form.all("name")).await
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
