//! Login and logout.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::auth::{
    after_login, client_address, csrf_token, current_session, start_session, CsrfForm, Form,
};
use super::forms::LoginForm;
use super::view::{self, take_flash, Page};
use crate::error::AppError;
use crate::services::{users, Ctx};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(show))
        .route("/login", web::post().to(submit))
        .route("/logout", web::post().to(logout));
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    username: String,
    error: String,
}

fn login_page(session: &Session, username: String, error: String) -> LoginPage {
    let mut page = Page::bare("Log in");
    page.csrf = csrf_token(session);
    page.flash = take_flash(session);
    LoginPage {
        page,
        username,
        error,
    }
}

async fn show(session: Session) -> Result<HttpResponse, AppError> {
    view::ok(&login_page(&session, String::new(), String::new()))
}

async fn submit(
    req: HttpRequest,
    session: Session,
    ctx: web::Data<Ctx>,
    CsrfForm(LoginForm { username, password }): CsrfForm<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let from = client_address(&req);
    let result = users::login(&ctx, &username, &password, &from).await;
    match result {
        Ok(user) => {
            let next = if user.must_change_password {
                "/account/password".to_string()
            } else {
                after_login(&session)
            };
            start_session(&session, &user)?;
            view::flash(&session, "success", format!("Welcome, {}.", user.username));
            Ok(view::redirect(&next))
        }
        Err(AppError::Unauthorized(message)) => view::render(
            StatusCode::UNAUTHORIZED,
            &login_page(&session, username, message),
        ),
        Err(e) => Err(e),
    }
}

/// Ends the session on the server as well as in this browser: a copy of the cookie is
/// refused afterwards. The user's sessions in other browsers go on.
async fn logout(
    session: Session,
    ctx: web::Data<Ctx>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    if let Some((uid, sid, expires)) = current_session(&session) {
        web::block(move || users::end_session(&ctx, uid, &sid, expires)).await??;
    }
    session.purge();
    Ok(view::redirect("/login"))
}
