//! Console sections whose pages are not built yet: they say so instead of a 404.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Auth;
use super::view::{self, Page};
use crate::error::AppError;

#[derive(Template)]
#[template(path = "placeholder.html")]
struct Placeholder {
    page: Page,
}

const SECTIONS: &[(&str, &str, &str)] = &[
    ("/security/host-mappings", "Host mappings", "mappings"),
    ("/security/settings", "Global security settings", "settings"),
    ("/security/audit", "Audit events", "audit"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, title, nav) in SECTIONS {
        cfg.route(
            path,
            web::get().to(move |auth: Auth| async move { show(auth, title, nav) }),
        );
    }
}

fn show(auth: Auth, title: &str, nav: &'static str) -> Result<HttpResponse, AppError> {
    view::ok(&Placeholder {
        page: auth.page(title, nav),
    })
}
