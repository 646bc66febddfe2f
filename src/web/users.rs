//! Administration > Users, and Account > Password.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{start_session, Auth, CsrfForm, Form};
use super::forms::{ChangePasswordForm, NewUserForm, PasswordForm, RoleForm};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::user::Role;
use crate::services::{users as svc, Ctx, FieldErrors, FormError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list))
        .route("/admin/users", web::post().to(create))
        .route("/admin/users/{username}/role", web::post().to(change_role))
        .route("/admin/users/{username}/disable", web::post().to(disable))
        .route("/admin/users/{username}/enable", web::post().to(enable))
        .route(
            "/admin/users/{username}/password",
            web::post().to(reset_password),
        )
        .route("/account/password", web::get().to(password_form))
        .route("/account/password", web::post().to(change_password));
}

pub struct UserRow {
    pub username: String,
    pub role: String,
    pub role_label: &'static str,
    pub disabled: bool,
    pub must_change: bool,
    pub last_login: Option<When>,
    pub created: When,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Page,
    rows: Vec<UserRow>,
    roles: Vec<(&'static str, &'static str)>,
    username: String,
    role: String,
    errors: FieldErrors,
}

impl UsersPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

fn roles() -> Vec<(&'static str, &'static str)> {
    Role::ALL.iter().map(|r| (r.key(), r.label())).collect()
}

async fn users_page(
    auth: &Auth,
    ctx: web::Data<Ctx>,
    username: String,
    role: String,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let users = web::block(move || svc::list(&ctx, &actor)).await??;
    let now = crate::db::now();
    view::render(
        status,
        &UsersPage {
            page: auth.page("Users", "users"),
            rows: users
                .into_iter()
                .map(|u| UserRow {
                    role_label: u.role().label(),
                    username: u.username,
                    role: u.role.to_string(),
                    disabled: u.disabled,
                    must_change: u.must_change_password,
                    last_login: When::maybe(u.last_login_at, now),
                    created: When::of(u.created_at, now),
                })
                .collect(),
            roles: roles(),
            username,
            role,
            errors,
        },
    )
}

async fn list(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    users_page(
        &auth,
        ctx,
        String::new(),
        Role::Viewer.key().into(),
        FieldErrors::new(),
        StatusCode::OK,
    )
    .await
}

async fn create(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(NewUserForm {
        username,
        role,
        password,
    }): CsrfForm<NewUserForm>,
) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let (c, u, r) = (ctx.clone(), username.clone(), role.clone());
    match web::block(move || svc::create(&c, &actor, &u, &r, &password)).await? {
        Ok(user) => {
            view::flash(
                &auth.session,
                "success",
                format!(
                    "User {} created as {}. They must change the password at first login.",
                    user.username,
                    user.role().label()
                ),
            );
            Ok(view::redirect("/admin/users"))
        }
        Err(e) => {
            let (status, errors) = view::rejected(e)?;
            users_page(&auth, ctx, username, role, errors, status).await
        }
    }
}

async fn done(auth: &Auth, message: String) -> Result<HttpResponse, AppError> {
    view::flash(&auth.session, "success", message);
    Ok(view::redirect("/admin/users"))
}

async fn change_role(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    CsrfForm(RoleForm { role }): CsrfForm<RoleForm>,
) -> Result<HttpResponse, AppError> {
    let (name, actor) = (name.into_inner(), auth.actor());
    let (n, r) = (name.clone(), role.clone());
    web::block(move || svc::set_role(&ctx, &actor, &n, &r)).await??;
    done(
        &auth,
        format!(
            "{name} is now {}.",
            Role::parse(&role).map(|r| r.label()).unwrap_or("changed")
        ),
    )
    .await
}

async fn disable(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (name, actor) = (name.into_inner(), auth.actor());
    let n = name.clone();
    web::block(move || svc::set_disabled(&ctx, &actor, &n, true)).await??;
    done(
        &auth,
        format!("{name} is disabled; their sessions have ended."),
    )
    .await
}

async fn enable(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (name, actor) = (name.into_inner(), auth.actor());
    let n = name.clone();
    web::block(move || svc::set_disabled(&ctx, &actor, &n, false)).await??;
    done(&auth, format!("{name} is enabled.")).await
}

async fn reset_password(
    auth: Auth,
    ctx: web::Data<Ctx>,
    name: web::Path<String>,
    CsrfForm(PasswordForm { password }): CsrfForm<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let (name, actor) = (name.into_inner(), auth.actor());
    let n = name.clone();
    web::block(move || svc::reset_password(&ctx, &actor, &n, &password)).await??;
    done(
        &auth,
        format!("The password of {name} was reset; they must change it at the next login."),
    )
    .await
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage {
    page: Page,
    must_change: bool,
    errors: FieldErrors,
}

impl PasswordPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

async fn password_form(auth: Auth) -> Result<HttpResponse, AppError> {
    view::ok(&PasswordPage {
        page: auth.page("Change password", "account"),
        must_change: auth.user.must_change_password,
        errors: FieldErrors::new(),
    })
}

async fn change_password(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(ChangePasswordForm {
        current,
        new,
        confirm,
    }): CsrfForm<ChangePasswordForm>,
) -> Result<HttpResponse, AppError> {
    let id = auth.user.id;
    match web::block(move || svc::change_own_password(&ctx, id, &current, &new, &confirm)).await? {
        Ok(user) => {
            // The change ended every session of this user; this one starts again.
            start_session(&auth.session, &user)?;
            view::flash(
                &auth.session,
                "success",
                "Your password was changed. Other sessions have been logged out.",
            );
            Ok(view::redirect("/security/tokens"))
        }
        Err(FormError::Invalid(errors)) | Err(FormError::Conflict(errors)) => view::render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                page: auth.page("Change password", "account"),
                must_change: auth.user.must_change_password,
                errors,
            },
        ),
        Err(FormError::Other(e)) => Err(e),
    }
}
