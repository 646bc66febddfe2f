//! The OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json. It is
//! derived with utoipa from the handlers (`#[utoipa::path]`) and the request and response
//! types they use (`ToSchema`), so it cannot describe a body the code does not parse or
//! send. A test checks its operations against the routes the server really has.

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin_api, api, ca, health, public};
use crate::web::errors::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hostca API",
        description = "Hosts request and renew certificates; administrators script what they do in the console. Every error is JSON {\"error\", \"message\"}. Request bodies are JSON with Content-Type: application/json; fields a body type does not name are ignored (PUT /api/v1/settings refuses them). Host IDs are accepted as any UUID form and normalised to lower case with dashes; a host name's trailing dot is dropped."
    ),
    paths(
        api::request_certificate,
        api::renew_certificate,
        api::renewal_nonce,
        api::renewal_info,
        document,
        public::ca_pem,
        ca::ca_der,
        public::crl_der,
        public::crl_pem,
        public::issuer_crl,
        public::issuer_cert,
        health::healthz,
        health::readyz,
        health::metrics,
        super::ocsp::post,
        super::ocsp::get,
        admin_api::list_tokens,
        admin_api::create_token,
        admin_api::create_reissue_token,
        admin_api::delete_tokens,
        admin_api::cleanup_tokens,
        admin_api::token_details,
        admin_api::delete_token,
        admin_api::show_token,
        admin_api::list_certificates,
        admin_api::certificate_details,
        admin_api::revoke_certificate,
        admin_api::list_hosts,
        admin_api::add_host,
        admin_api::host_details,
        admin_api::revoke_host,
        admin_api::auto_reissue,
        admin_api::deactivate_acme_account,
        admin_api::add_mapping,
        admin_api::approve_mapping,
        admin_api::reject_mapping,
        admin_api::delete_mapping,
        admin_api::get_settings,
        admin_api::put_settings,
        admin_api::list_audit,
        admin_api::ca_show,
        admin_api::ca_initiate,
        admin_api::ca_activate,
        admin_api::ca_complete,
        admin_api::ca_decommission,
        admin_api::ca_mark_renewal,
        admin_api::hosts_renew_all,
        admin_api::ca_pending_trust,
        admin_api::ca_pending_renewal,
    ),
    components(schemas(ErrorBody, crate::models::kinds::HostSort, crate::models::kinds::CertAttention)),
    modifiers(&Edges),
    tags(
        (name = "hosts", description = "Enrollment and renewal, for hosts (no API key)"),
        (name = "public", description = "The CA certificate and the CRL, for anyone"),
        (name = "tokens", description = "Authorization and reissue tokens"),
        (name = "certificates", description = "Issued certificates and revocation"),
        (name = "hosts-admin", description = "Hosts and their name mappings"),
        (name = "settings", description = "The global security settings"),
        (name = "audit", description = "The audit trail"),
        (name = "ca-admin", description = "The CAs and CA migration"),
    )
)]
pub struct ApiDoc;

/// The answers every route shares, added to each operation from what it is: the bearer
/// scheme; 400, 404, 405 and 503 under /api; 401 and 403 where an API key is needed; 413
/// and 415 where a body is read. Each is the `Error` body `ErrorBody` renders.
struct Edges;

const SCHEME: &str = "bearer";

impl Modify for Edges {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme(
                SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An API key from /account/api-keys, sent as Authorization: Bearer <key> (the scheme is case-insensitive). A 401 answer carries WWW-Authenticate: Bearer.",
                        ))
                        .build(),
                ),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let with_body = op.request_body.is_some();
                let mut add = |status: &str, why: &str| add_error(op, status, why);
                if api {
                    add(
                        "400",
                        "Malformed input: the message names the field or parameter",
                    );
                    add("404", "No such resource (or no such API route)");
                    add(
                        "405",
                        "Not this method on this path: Allow lists the methods served",
                    );
                    add("503", "The database is busy or restarting; try again");
                }
                if secured {
                    add("401", "No API key, or one that is unknown, expired or revoked (WWW-Authenticate: Bearer)");
                    add("403", "The key owner's role may not do this (audited)");
                }
                if with_body {
                    add("413", "A body over 64 KiB");
                    add("415", "A body that is not Content-Type: application/json");
                }
            }
        }
    }
}

fn add_error(op: &mut Operation, status: &str, why: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(why)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    op.responses
        .responses
        .insert(status.to_string(), response.into());
}

/// The operations the document describes, for the test that checks them against the server.
pub fn operations() -> Vec<(String, String)> {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops
}

/// This document, built from `ApiDoc` on each request (it is small, and nobody polls it).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "public",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
