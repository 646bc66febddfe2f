//! The OpenAPI 3 description of the JSON API, served at /api/v1/openapi.json. A test
//! checks it against the routes the server really has.

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

/// (method, path, tag, summary, request body schema, success status)
type Op = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
);

const OPS: &[Op] = &[
    ("post", "/api/v1/certificates", "hosts", "Request a certificate with a CSR (and a token, unless the security level lets the host in)", Some("CertificateRequest"), 201),
    ("post", "/api/v1/certificates/renew", "hosts", "Renew with a CSR for the key of the active certificate, carrying a fresh nonce in its challengePassword attribute", Some("RenewRequest"), 201),
    ("post", "/api/v1/certificates/renew/nonce", "hosts", "A single-use nonce (5 minutes) for the host's next renewal", Some("NonceRequest"), 201),
    ("get", "/api/v1/tokens", "tokens", "List tokens (q, state, sort, dir, page)", None, 200),
    ("post", "/api/v1/tokens", "tokens", "Create an authorization token", Some("NewToken"), 201),
    ("post", "/api/v1/tokens/reissue", "tokens", "Create a reissue token for a host (by primary name or host ID)", Some("NewReissueToken"), 201),
    ("post", "/api/v1/tokens/delete", "tokens", "Delete several tokens (all or nothing)", Some("Names"), 200),
    ("post", "/api/v1/tokens/cleanup", "tokens", "Delete every expired and used-up token", None, 200),
    ("get", "/api/v1/tokens/{name}", "tokens", "A token's details (never its value)", None, 200),
    ("delete", "/api/v1/tokens/{name}", "tokens", "Delete a token", None, 200),
    ("post", "/api/v1/tokens/{name}/show", "tokens", "Reveal a token's value (audited)", None, 200),
    ("get", "/api/v1/certificates", "certificates", "List certificates (q, status, sort, dir, page)", None, 200),
    ("get", "/api/v1/certificates/{serial}", "certificates", "A certificate's details and PEM", None, 200),
    ("post", "/api/v1/certificates/{serial}/revoke", "certificates", "Revoke a certificate with an RFC 5280 reason", Some("Reason"), 200),
    ("get", "/api/v1/hosts", "hosts-admin", "List hosts (q, sort, dir, page)", None, 200),
    ("post", "/api/v1/hosts", "hosts-admin", "Register a known host", Some("Name"), 201),
    ("get", "/api/v1/hosts/{host}", "hosts-admin", "A host (by host ID or primary name) with mappings and certificates", None, 200),
    ("post", "/api/v1/hosts/{host}/revoke", "hosts-admin", "Revoke all active certificates of a host", Some("Reason"), 200),
    ("post", "/api/v1/hosts/{host}/auto-reissue", "hosts-admin", "Open (allow: true) or close a host's auto-reissue window", Some("AutoReissue"), 200),
    ("post", "/api/v1/hosts/{host}/mappings", "hosts-admin", "Map a name to a host", Some("Name"), 201),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/approve", "hosts-admin", "Approve a mapping", None, 200),
    ("post", "/api/v1/hosts/{host}/mappings/{name}/reject", "hosts-admin", "Reject a mapping", None, 200),
    ("delete", "/api/v1/hosts/{host}/mappings/{name}", "hosts-admin", "Delete a mapping", None, 200),
    ("get", "/api/v1/settings", "settings", "The global security settings", None, 200),
    ("put", "/api/v1/settings", "settings", "Change settings (the given values; reason required)", Some("SettingsChange"), 200),
    ("get", "/api/v1/audit", "audit", "Audit events, newest first (category, user, outcome, from, to, q, page)", None, 200),
];

/// The operations the document describes, for the test that checks them against the server.
pub fn operations() -> Vec<(&'static str, &'static str)> {
    OPS.iter().map(|(m, p, ..)| (*m, *p)).collect()
}

fn schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required});
    let text = json!({"type": "string"});
    json!({
        "Error": s(json!({"error": text, "message": text}), &["error", "message"]),
        "CertificateRequest": s(json!({"hostname": text, "csr": {"type": "string", "description": "PEM CSR"}, "token": text}), &["hostname", "csr"]),
        "RenewRequest": s(json!({"host_id": {"type": "string", "format": "uuid"}, "csr": {"type": "string", "description": "PEM CSR for the key of the active certificate, signed by it, with a nonce from /api/v1/certificates/renew/nonce in the PKCS#9 challengePassword attribute (1.2.840.113549.1.9.7)"}}), &["host_id", "csr"]),
        "NonceRequest": s(json!({"host_id": {"type": "string", "format": "uuid"}}), &["host_id"]),
        "Nonce": s(json!({"nonce": {"type": "string", "description": "128 random bits, base64url; single use, bound to the host"}, "expires_at": {"type": "string", "format": "date-time"}}), &["nonce", "expires_at"]),
        "Certificate": s(json!({"host_id": text, "serial": text, "certificate": text, "ca_certificate": text, "not_after": {"type": "string", "format": "date-time"}}), &["host_id", "serial", "certificate", "ca_certificate", "not_after"]),
        "NewToken": s(json!({"name": text, "max_uses": {"type": "integer", "minimum": 1, "maximum": 99999}, "valid_for": {"type": "string", "example": "2d6h30m"}, "reason": text}), &["name"]),
        "NewReissueToken": s(json!({"host": text, "host_id": text, "name": text, "valid_for": text, "valid_until": text, "reason": text}), &[]),
        "Names": s(json!({"names": {"type": "array", "items": text}}), &["names"]),
        "Name": s(json!({"name": text}), &["name"]),
        "AutoReissue": s(json!({"allow": {"type": "boolean"}}), &["allow"]),
        "Reason": s(json!({"reason": {"type": "string", "enum": ["unspecified", "key_compromise", "ca_compromise", "affiliation_changed", "superseded", "cessation_of_operation"]}}), &["reason"]),
        "SettingsChange": s(json!({
            "security_level": {"type": "string", "enum": ["very_high", "high", "medium"]},
            "auto_map_host_names": {"type": "boolean"},
            "certificate_validity_days": {"type": "integer", "minimum": 1, "maximum": 825},
            "auto_reissue_minutes": {"type": "integer", "minimum": 0, "maximum": 43200},
            "audit_retention_days": {"type": "integer", "minimum": 30, "maximum": 3650},
            "renewal_interval_minutes": {"type": "integer", "minimum": 0, "maximum": 10080},
            "allowed_domains": {"type": "array", "items": {"type": "string"}},
            "reserved_names": {"type": "array", "items": {"type": "string"}},
            "reason": text
        }), &["reason"]),
    })
}

pub fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary, request, status) in OPS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.', '-'], "_")),
            "responses": {
                status.to_string(): {"description": "Success", "content": {"application/json": {"schema": match (*tag, *request) {
                    (_, Some("NonceRequest")) => json!({"$ref": "#/components/schemas/Nonce"}),
                    ("hosts", _) => json!({"$ref": "#/components/schemas/Certificate"}),
                    _ => json!({"type": "object"}),
                }}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(schema) = request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        if *tag != "hosts" {
            op["security"] = json!([{"apiKey": []}]);
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[*method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "hostca API", "version": env!("CARGO_PKG_VERSION"), "description": "Hosts request and renew certificates; administrators script what they do in the console. Errors are {\"error\", \"message\"}."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key from /account/api-keys, sent as Authorization: Bearer <key> (the scheme is case-insensitive). A 401 answer carries WWW-Authenticate: Bearer."}}
        }
    })
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(build())
}
