//! The stylesheet and script, compiled into the binary so that one file is the product.

use actix_web::{web, HttpResponse};

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/app.js");
const ICON: &str = include_str!("../../static/favicon.svg");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/style.css", web::get().to(style))
        .route("/static/app.js", web::get().to(script))
        .route("/static/favicon.svg", web::get().to(icon))
        .route("/favicon.ico", web::get().to(icon));
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}
