//! Security > Global security settings, opened by the hardening checklist.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, CsrfForm};
use super::forms::SettingsForm;
use super::view::{self, Page};
use crate::error::AppError;
use crate::models::settings::SecurityLevel;
use crate::services::checklist::Check;
use crate::services::settings::{self as svc, SettingsInput};
use crate::services::{Ctx, FieldErrors, FormError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/settings", web::get().to(show))
        .route("/security/settings", web::post().to(save));
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: Page,
    checks: Vec<Check>,
    input: SettingsInput,
    errors: FieldErrors,
    levels: Vec<(&'static str, &'static str, &'static str)>,
    /// This server's own names, always reserved.
    server_names: String,
}

impl SettingsPage {
    fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }

    fn warnings(&self) -> usize {
        self.checks.iter().filter(|c| c.status == "warn").count()
    }
}

async fn render_page(
    auth: &Auth,
    ctx: web::Data<Ctx>,
    input: Option<SettingsInput>,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let server_names = ctx.site.server_names.join(", ");
    let (settings, checks) = web::block(move || svc::page(&ctx)).await??;
    view::render(
        status,
        &SettingsPage {
            page: auth.page("Global security settings", "settings"),
            checks,
            input: input.unwrap_or_else(|| SettingsInput::of(&settings)),
            errors,
            levels: SecurityLevel::ALL
                .iter()
                .map(|l| (l.key(), l.label(), l.description()))
                .collect(),
            server_names,
        },
    )
}

async fn show(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    render_page(&auth, ctx, None, FieldErrors::new(), StatusCode::OK).await
}

async fn save(
    auth: Auth,
    ctx: web::Data<Ctx>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Result<HttpResponse, AppError> {
    let input = SettingsInput::from(form);
    let actor = auth.actor();
    let (c, i) = (ctx.clone(), input.clone());
    match web::block(move || svc::update(&c, &actor, &i)).await? {
        Ok(changed) => {
            let message = if changed.is_empty() {
                "Nothing changed.".to_string()
            } else {
                format!(
                    "Saved: {}. The change is in effect now.",
                    changed.join(", ").replace('_', " ")
                )
            };
            view::flash(&auth.session, "success", message);
            Ok(view::redirect("/security/settings"))
        }
        Err(FormError::Invalid(errors)) | Err(FormError::Conflict(errors)) => {
            render_page(
                &auth,
                ctx,
                Some(input),
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(FormError::Other(e)) => Err(e),
    }
}
