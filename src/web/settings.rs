//! Security > Global security settings, opened by the hardening checklist.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, Form};
use super::view::{self, Page};
use crate::error::AppError;
use crate::models::settings::SecurityLevel;
use crate::services::checklist::{self, Check};
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
    let (settings, checks) =
        web::block(move || Ok::<_, AppError>((svc::load(&ctx)?, checklist::run(&ctx, ctx.tls)?)))
            .await??;
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

async fn save(auth: Auth, ctx: web::Data<Ctx>, form: Form) -> Result<HttpResponse, AppError> {
    let input = SettingsInput {
        security_level: form.text("security_level"),
        auto_map_host_names: form
            .get("auto_map_host_names")
            .is_some_and(|v| v == "on" || v == "true"),
        certificate_validity_days: form.text("certificate_validity_days"),
        auto_reissue_minutes: form.text("auto_reissue_minutes"),
        audit_retention_days: form.text("audit_retention_days"),
        reason: form.text("reason"),
        renewal_interval_minutes: form.get("renewal_interval_minutes").map(str::to_string),
        allowed_domains: form.text("allowed_domains"),
        reserved_names: form.text("reserved_names"),
    };
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
