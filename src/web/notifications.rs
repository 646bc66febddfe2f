//! Security > Notifications: webhook and email targets, a test button, the deliveries.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::{Auth, Form};
use super::view::{self, Page, When};
use crate::error::AppError;
use crate::models::notification::{NotifyEvent, SmtpTls, TargetKind};
use crate::models::user::Role;
use crate::services::notifications::{self as svc, TargetInput};
use crate::services::{Ctx, FieldErrors, FormError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/notifications", web::get().to(show))
        .route("/security/notifications", web::post().to(add))
        .route("/security/notifications/digest", web::post().to(digest))
        .route(
            "/security/notifications/{id}/edit",
            web::get().to(edit_form),
        )
        .route("/security/notifications/{id}/edit", web::post().to(edit))
        .route("/security/notifications/{id}/{action}", web::post().to(act));
}

/// A target's row as the page shows it.
struct Row {
    id: i64,
    kind: &'static str,
    name: String,
    destination: String,
    events: Vec<&'static str>,
    digest: String,
    enabled: bool,
    has_secret: bool,
    last_state: String,
    last_label: String,
    last_error: String,
}

struct DeliveryRow {
    id: i64,
    at: When,
    target: String,
    event: &'static str,
    subject: String,
    state: &'static str,
    state_label: &'static str,
    attempts: i32,
    error: String,
}

#[derive(Template)]
#[template(path = "notifications/page.html")]
struct NotificationsPage {
    page: Page,
    admin: bool,
    targets: Vec<Row>,
    deliveries: Vec<DeliveryRow>,
    input: TargetInput,
    errors: FieldErrors,
    events: Vec<(&'static str, &'static str)>,
    kinds: Vec<(&'static str, &'static str)>,
    tls_modes: Vec<(&'static str, &'static str)>,
    /// The shared fields (notifications/fields.html): adding, not editing.
    editing: bool,
    has_secret: bool,
}

/// One target's edit form.
#[derive(Template)]
#[template(path = "notifications/edit.html")]
struct EditPage {
    page: Page,
    id: i64,
    title_name: String,
    kind: &'static str,
    input: TargetInput,
    errors: FieldErrors,
    events: Vec<(&'static str, &'static str)>,
    tls_modes: Vec<(&'static str, &'static str)>,
    editing: bool,
    has_secret: bool,
}

macro_rules! form_helpers {
    ($t:ty) => {
        impl $t {
            fn error(&self, field: &str) -> String {
                self.errors.get(field).cloned().unwrap_or_default()
            }
            fn chosen(&self, key: &str) -> bool {
                self.input.events.iter().any(|e| e == key)
            }
        }
    };
}
form_helpers!(NotificationsPage);
form_helpers!(EditPage);

/// The events a target can subscribe to (the digest and the test are not chosen).
fn event_choices() -> Vec<(&'static str, &'static str)> {
    NotifyEvent::ALL
        .iter()
        .filter(|e| !matches!(e, NotifyEvent::Digest | NotifyEvent::Test))
        .map(|e| (e.key(), e.label()))
        .collect()
}

fn tls_choices() -> Vec<(&'static str, &'static str)> {
    SmtpTls::ALL.iter().map(|k| (k.key(), k.label())).collect()
}

fn target_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| {
        AppError::NotFound(format!("no notification target {id}: targets are numbered"))
    })
}

impl From<&Form> for TargetInput {
    fn from(f: &Form) -> TargetInput {
        let text = |k: &str| f.get(k).unwrap_or("").to_string();
        TargetInput {
            kind: text("kind"),
            name: text("name"),
            destination: text("destination"),
            secret: text("secret"),
            events: f.all("events"),
            digest: f.get("digest").is_some_and(|v| v == "on" || v == "true"),
            digest_hour: text("digest_hour"),
            smtp_host: text("smtp_host"),
            smtp_port: text("smtp_port"),
            smtp_tls: text("smtp_tls"),
            smtp_username: text("smtp_username"),
            smtp_from: text("smtp_from"),
            tls_ca_pem: text("tls_ca_pem"),
        }
    }
}

async fn render_page(
    auth: &Auth,
    ctx: web::Data<Ctx>,
    input: Option<TargetInput>,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let data = web::block(move || svc::page(&ctx)).await??;
    let now = data.now;
    let targets = data
        .targets
        .into_iter()
        .map(|r| {
            let t = r.target;
            Row {
                id: t.id,
                kind: t.kind.label(),
                events: t.event_kinds().iter().map(|e| e.label()).collect(),
                digest: if t.digest {
                    format!("Daily at {:02}:00 UTC", t.digest_hour)
                } else {
                    "Each event".into()
                },
                name: t.name,
                destination: t.destination,
                enabled: t.enabled,
                has_secret: r.has_secret,
                last_state: r
                    .last
                    .as_ref()
                    .map(|d| d.state.key().to_string())
                    .unwrap_or_default(),
                last_label: r
                    .last
                    .as_ref()
                    .map(|d| d.state.label().to_string())
                    .unwrap_or_default(),
                last_error: r.last.and_then(|d| d.last_error).unwrap_or_default(),
            }
        })
        .collect();
    let deliveries = data
        .deliveries
        .into_iter()
        .map(|(d, target)| DeliveryRow {
            id: d.id,
            at: When::of(d.sent_at.unwrap_or(d.created_at), now),
            target,
            event: d.event.label(),
            subject: d.subject,
            state: d.state.key(),
            state_label: d.state.label(),
            attempts: d.attempts,
            error: d.last_error.unwrap_or_default(),
        })
        .collect();
    view::render(
        status,
        &NotificationsPage {
            page: auth.page("Notifications", "notifications"),
            admin: auth.role().at_least(Role::Administrator),
            targets,
            deliveries,
            input: input.unwrap_or_else(|| TargetInput {
                kind: "webhook".into(),
                digest_hour: "6".into(),
                smtp_port: "587".into(),
                smtp_tls: "required".into(),
                ..Default::default()
            }),
            errors,
            events: event_choices(),
            kinds: TargetKind::ALL
                .iter()
                .map(|k| (k.key(), k.label()))
                .collect(),
            tls_modes: tls_choices(),
            editing: false,
            has_secret: false,
        },
    )
}

async fn show(auth: Auth, ctx: web::Data<Ctx>) -> Result<HttpResponse, AppError> {
    render_page(&auth, ctx, None, FieldErrors::new(), StatusCode::OK).await
}

async fn add(auth: Auth, ctx: web::Data<Ctx>, form: Form) -> Result<HttpResponse, AppError> {
    let input = TargetInput::from(&form);
    let actor = auth.actor();
    let (c, i) = (ctx.clone(), input.clone());
    match web::block(move || svc::add(&c, &actor, &i)).await? {
        Ok(name) => {
            view::flash(&auth.session, "success", format!("Target {name} added."));
            Ok(view::redirect("/security/notifications"))
        }
        Err(FormError::Invalid(errors)) | Err(FormError::Conflict(errors)) => {
            let mut input = input;
            input.secret.clear();
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

fn render_edit(
    auth: &Auth,
    id: i64,
    title_name: String,
    has_secret: bool,
    input: TargetInput,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    view::render(
        status,
        &EditPage {
            page: auth.page(&format!("Edit {title_name}"), "notifications"),
            id,
            kind: TargetKind::parse(&input.kind).map_or("", |k| k.label()),
            title_name,
            input,
            errors,
            events: event_choices(),
            tls_modes: tls_choices(),
            editing: true,
            has_secret,
        },
    )
}

async fn edit_form(
    auth: Auth,
    ctx: web::Data<Ctx>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = target_id(&path)?;
    let actor = auth.actor();
    let (id, input, has_secret) = web::block(move || svc::edit_form(&ctx, &actor, id)).await??;
    let name = input.name.clone();
    let errors = FieldErrors::new();
    render_edit(&auth, id, name, has_secret, input, errors, StatusCode::OK)
}

async fn edit(
    auth: Auth,
    ctx: web::Data<Ctx>,
    path: web::Path<String>,
    form: Form,
) -> Result<HttpResponse, AppError> {
    let id = target_id(&path)?;
    let input = TargetInput::from(&form);
    let actor = auth.actor();
    let (c, i, a) = (ctx.clone(), input.clone(), actor.clone());
    match web::block(move || svc::update(&c, &a, id, &i)).await? {
        Ok(name) => {
            view::flash(&auth.session, "success", format!("Target {name} saved."));
            Ok(view::redirect("/security/notifications"))
        }
        Err(FormError::Invalid(errors)) | Err(FormError::Conflict(errors)) => {
            // The page shows the typed values; its title and kind are the stored ones.
            let (id, stored, has_secret) =
                web::block(move || svc::edit_form(&ctx, &actor, id)).await??;
            let input = TargetInput {
                kind: stored.kind,
                secret: String::new(),
                ..input
            };
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render_edit(&auth, id, stored.name, has_secret, input, errors, status)
        }
        Err(FormError::Other(e)) => Err(e),
    }
}

async fn digest(auth: Auth, ctx: web::Data<Ctx>, _form: Form) -> Result<HttpResponse, AppError> {
    let actor = auth.actor();
    let n = web::block(move || svc::digest_now(&ctx, &actor)).await??;
    view::flash(
        &auth.session,
        "success",
        if n == 0 {
            "No digest queued: no digest target holds events, or today's digest went out already."
                .to_string()
        } else {
            format!("{n} digest(s) queued; they go out within seconds.")
        },
    );
    Ok(view::redirect("/security/notifications"))
}

async fn act(
    auth: Auth,
    ctx: web::Data<Ctx>,
    path: web::Path<(String, String)>,
    _form: Form,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    let id = target_id(&id)?;
    let actor = auth.actor();
    let (kind, message) = match action.as_str() {
        "delete" => {
            let name = web::block(move || svc::delete(&ctx, &actor, id)).await??;
            ("success", format!("Target {name} deleted."))
        }
        "enable" | "disable" => {
            let on = action == "enable";
            let name = web::block(move || svc::set_enabled(&ctx, &actor, id, on)).await??;
            (
                "success",
                format!("Target {name} {}.", if on { "enabled" } else { "disabled" }),
            )
        }
        "test" => {
            let (name, outcome) = web::block(move || svc::send_test(&ctx, &actor, id)).await??;
            match outcome {
                Ok(()) => ("success", format!("Test notification sent to {name}.")),
                Err(e) => (
                    "error",
                    format!("The test notification to {name} failed: {e}. It is retried with backoff; see the deliveries below."),
                ),
            }
        }
        other => {
            return Err(AppError::NotFound(format!(
            "no action {other} on a notification target: use edit, delete, enable, disable or test"
        )))
        }
    };
    view::flash(&auth.session, kind, message);
    Ok(view::redirect("/security/notifications"))
}
