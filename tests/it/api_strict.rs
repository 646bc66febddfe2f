//! The admin API as an independent client sees it: the 401 names its scheme, the scheme is
//! case-insensitive, and token names that are path segments are refused.

use crate::common;

use common::{element_text, spawn_app, TestApp};
use serde_json::Value;

/// An API key made on the account page, as a user would.
async fn api_key(app: &TestApp, name: &str) -> String {
    let html = app
        .post("/account/api-keys", &[("name", name)])
        .await
        .text()
        .await
        .unwrap();
    element_text(&html, "api-key-value").expect("the new key is shown once")
}

#[tokio::test]
async fn a_401_carries_www_authenticate_bearer() {
    let app = spawn_app().await;
    for auth in [None, Some("Bearer hca_nope"), Some("Basic dXNlcjpwYXNz")] {
        let mut req = reqwest::Client::new().get(app.url("/api/v1/tokens"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{auth:?}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "admin-key").await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = reqwest::Client::new()
            .get(app.url("/api/v1/tokens"))
            .header("Authorization", format!("{scheme} {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    // A scheme that merely starts with "bearer" is not one.
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/tokens"))
        .header("Authorization", format!("Bearerx {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn dot_and_dotdot_are_not_token_names() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "admin-key").await;
    for name in [".", ".."] {
        let r = reqwest::Client::new()
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"name": name, "max_uses": 1, "valid_for": "1d"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert!(matches!(status, 400 | 422), "{name}: {status} {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains("name"),
            "{name}: {body}"
        );
    }
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tokens"].as_array().map(Vec::len), Some(0));
    // A name with dots and letters is still fine.
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "a.b", "max_uses": 1, "valid_for": "1d"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn unknown_api_versions_and_paths_answer_json() {
    let app = spawn_app().await;
    for path in ["/api/v2/x", "/api/v2", "/api", "/api/", "/api/v1/nowhere"] {
        let r = reqwest::Client::new()
            .get(app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    // Elsewhere a missing page is still the HTML error page.
    let r = reqwest::Client::new()
        .get(app.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn max_uses_as_a_string_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "admin-key").await;
    for max_uses in [
        serde_json::json!("5"),
        serde_json::json!(true),
        serde_json::json!([5]),
    ] {
        let r = reqwest::Client::new()
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"name": "t", "max_uses": max_uses, "valid_for": "1d"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{max_uses}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap_or("").contains("max_uses"),
            "{body}"
        );
    }
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "t", "max_uses": 5, "valid_for": "1d"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// An API request with a key and a raw body of the given content type.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<(&str, String)>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        app.url(path),
    );
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some((content_type, b)) = body {
        req = req.header("Content-Type", content_type).body(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

async fn admin_key(app: &TestApp) -> String {
    app.login().await;
    api_key(app, "admin-key").await
}

/// A viewer who chose their own password, logged in on a browser of their own, and their key.
async fn viewer_key(app: &TestApp) -> String {
    let viewer = app.user(common::Role::Viewer, "vic").await;
    let html = viewer
        .post("/account/api-keys", &[("name", "vic-key")])
        .await
        .text()
        .await
        .unwrap();
    element_text(&html, "api-key-value").expect("the viewer's key is shown once")
}

const JSON: &str = "application/json";

#[tokio::test]
async fn a_wrong_method_is_a_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("PUT", "/api/v1/tokens", "GET, HEAD, POST"),
        ("PATCH", "/api/v1/hosts/h.example.com/revoke", "POST"),
        ("GET", "/api/v1/certificates/renew/nonce", "POST"),
        ("DELETE", "/api/v1/settings", "GET, HEAD, PUT"),
        ("POST", "/api/v1/openapi.json", "GET, HEAD"),
    ] {
        let (status, headers, body) = send(&app, method, path, None, None).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(
            headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        assert_eq!(json(&body)["error"], "method_not_allowed", "{body}");
        assert!(json(&body)["message"].as_str().unwrap().contains(method));
    }
    // Outside /api the answer is the HTML error page, with the same header.
    let (status, headers, body) = send(&app, "POST", "/ca.pem", None, None).await;
    assert_eq!(status, 405);
    assert_eq!(
        headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, HEAD")
    );
    assert!(body.contains("<html"), "{body}");
    // A console page too.
    let (status, headers, body) = send(&app, "DELETE", "/security/tokens", None, None).await;
    assert_eq!(status, 405);
    assert_eq!(
        headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, HEAD, POST")
    );
    assert!(body.contains("<html"), "{body}");
    // HEAD where only POST is served names HEAD.
    let r = reqwest::Client::new()
        .head(app.url("/api/v1/certificates/renew/nonce"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    // A path no route has is still a 404.
    let (status, _, _) = send(&app, "PUT", "/api/v1/nowhere", None, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    for path in [
        "/ca.pem",
        "/ca.crt",
        "/crl",
        "/crl.pem",
        "/api/v1/openapi.json",
        "/api/v1/tokens",
        "/api/v1/settings",
        "/login",
    ] {
        let get = reqwest::Client::new()
            .get(app.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let head = reqwest::Client::new()
            .head(app.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status().as_u16(), 200, "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    // Without a key, HEAD is refused like GET.
    let r = reqwest::Client::new()
        .head(app.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn an_over_long_address_is_a_414() {
    let app = spawn_app().await;
    let long = "a".repeat(hostca::web::URI_LIMIT + 1);
    let (status, _, body) =
        send(&app, "GET", &format!("/api/v1/tokens?q={long}"), None, None).await;
    assert_eq!(status, 414);
    assert_eq!(json(&body)["error"], "uri_too_long", "{body}");
    let (status, _, body) = send(
        &app,
        "GET",
        &format!("/security/tokens?q={long}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 414);
    assert!(body.contains("<html"));
    // Just under the limit is served.
    let q = "a".repeat(hostca::web::URI_LIMIT - "/ca.pem?q=".len());
    let (status, _, _) = send(&app, "GET", &format!("/ca.pem?q={q}"), None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_repeated_query_parameter_is_a_400_naming_it() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    for (path, name) in [
        ("/api/v1/tokens?page=1&page=2", "page"),
        ("/api/v1/tokens?state=active&state=expired", "state"),
        (
            "/api/v1/certificates?status=active&status=revoked",
            "status",
        ),
        ("/api/v1/hosts?q=a&q=b", "q"),
        ("/api/v1/audit?category=CERT&category=TOKEN", "category"),
    ] {
        let (status, _, body) = send(&app, "GET", path, Some(&key), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = json(&body)["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains(name), "{path}: {message}");
    }
}

#[tokio::test]
async fn bodies_must_be_json_objects_of_the_right_types() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    // An array, a string, a number where the object belongs.
    for body in ["[]", "[{\"name\": \"t\"}]", "\"t\"", "5"] {
        let (status, _, text) = send(
            &app,
            "POST",
            "/api/v1/tokens",
            Some(&key),
            Some((JSON, body.into())),
        )
        .await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            json(&text)["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{text}"
        );
    }
    for (path, method, body, field) in [
        (
            "/api/v1/tokens",
            "POST",
            r#"{"name": "t", "max_uses": "5"}"#,
            "max_uses",
        ),
        ("/api/v1/tokens", "POST", r#"{"name": 5}"#, "name"),
        (
            "/api/v1/tokens/delete",
            "POST",
            r#"{"names": "t"}"#,
            "names",
        ),
        (
            "/api/v1/settings",
            "PUT",
            r#"{"certificate_validity_days": "90", "reason": "r"}"#,
            "certificate_validity_days",
        ),
        (
            "/api/v1/settings",
            "PUT",
            r#"{"auto_map_host_names": "yes", "reason": "r"}"#,
            "auto_map_host_names",
        ),
        (
            "/api/v1/settings",
            "PUT",
            r#"{"allowed_domains": [1], "reason": "r"}"#,
            "allowed_domains",
        ),
        (
            "/api/v1/settings",
            "PUT",
            r#"{"no_such_setting": 1, "reason": "r"}"#,
            "no_such_setting",
        ),
        (
            "/api/v1/hosts/h.example.com/auto-reissue",
            "POST",
            r#"{"allow": "true"}"#,
            "allow",
        ),
    ] {
        let (status, _, text) =
            send(&app, method, path, Some(&key), Some((JSON, body.into()))).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(
            json(&text)["message"].as_str().unwrap().contains(field),
            "{body}: {text}"
        );
    }
    // Numbers as numbers work, and a setting changes.
    let (status, _, text) = send(
        &app,
        "PUT",
        "/api/v1/settings",
        Some(&key),
        Some((JSON, r#"{"certificate_validity_days": 90, "allowed_domains": ["example.com"], "reason": "r"}"#.into())),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["certificate_validity_days"], 90);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let (status, _, text) = send(
            &app,
            "POST",
            "/api/v1/tokens",
            Some(&key),
            Some((content_type, r#"{"name": "t"}"#.into())),
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {text}");
        assert_eq!(json(&text)["error"], "unsupported_media_type");
        assert!(json(&text)["message"]
            .as_str()
            .unwrap()
            .contains("application/json"));
    }
    // No Content-Type at all, on the host API too.
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/tokens",
        Some(&key),
        Some(("", "{}".into())),
    )
    .await;
    assert_eq!(status, 415, "{text}");
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/certificates",
        None,
        Some(("text/plain", "{}".into())),
    )
    .await;
    assert_eq!(status, 415, "{text}");
    // Parameters after the media type are fine.
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/tokens",
        Some(&key),
        Some(("application/json; charset=utf-8", r#"{"name": "t"}"#.into())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
}

#[tokio::test]
async fn a_viewer_is_refused_before_the_body_is_read_and_it_is_audited() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let viewer = viewer_key(&app).await;
    for (method, path, body) in [
        ("POST", "/api/v1/tokens", "[1, 2]"),
        ("POST", "/api/v1/tokens", r#"{"name": 5}"#),
        ("POST", "/api/v1/tokens/reissue", "not json"),
        ("PUT", "/api/v1/settings", r#"{"nonsense": true}"#),
        ("POST", "/api/v1/hosts", "{}"),
        ("POST", "/api/v1/certificates/AB/revoke", "{}"),
    ] {
        let (status, _, text) =
            send(&app, method, path, Some(&viewer), Some((JSON, body.into()))).await;
        assert_eq!(status, 403, "{method} {path} {body}: {text}");
        assert_eq!(json(&text)["error"], "forbidden");
    }
    let (status, _, text) = send(
        &app,
        "GET",
        "/api/v1/audit?user=vic&outcome=failure",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let events = json(&text)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e["category"] == "TOKEN"
            && e["description"]
                .as_str()
                .unwrap_or("")
                .contains("permission denied")),
        "{text}"
    );
    assert!(
        events.iter().any(|e| e["category"] == "SEC_CONFIG"),
        "{text}"
    );
    // A viewer still reads.
    let (status, _, _) = send(&app, "GET", "/api/v1/tokens", Some(&viewer), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn valid_until_takes_rfc_3339_and_its_errors_name_it() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        Some(&key),
        Some((JSON, r#"{"name": "r.example.com"}"#.into())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let in_a_week = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let in_a_day = (chrono::Utc::now() + chrono::Duration::days(1))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    for (name, until) in [
        ("r1", in_a_week.clone()),
        ("r2", in_a_day),
        ("r3", "2099-01-01".into()),
    ] {
        let body = serde_json::json!({"host": "r.example.com", "name": name, "valid_until": until});
        let (status, _, text) = send(
            &app,
            "POST",
            "/api/v1/tokens/reissue",
            Some(&key),
            Some((JSON, body.to_string())),
        )
        .await;
        if name == "r3" {
            // Too far ahead: refused, and the message names the field that was sent.
            assert_eq!(status, 422, "{text}");
            assert!(
                json(&text)["message"]
                    .as_str()
                    .unwrap()
                    .contains("valid_until"),
                "{text}"
            );
            continue;
        }
        assert_eq!(status, 201, "{until}: {text}");
        if name == "r1" {
            // What the API writes, it reads back: the same second.
            assert_eq!(json(&text)["valid_until"], in_a_week.as_str(), "{text}");
        }
    }
    let body =
        serde_json::json!({"host": "r.example.com", "name": "r4", "valid_until": "next tuesday"});
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/tokens/reissue",
        Some(&key),
        Some((JSON, body.to_string())),
    )
    .await;
    assert_eq!(status, 422, "{text}");
    let message = json(&text)["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("valid_until") && message.contains("RFC 3339"),
        "{message}"
    );
}

#[tokio::test]
async fn host_ids_are_read_in_any_uuid_form() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        Some(&key),
        Some((JSON, r#"{"name": "u.example.com"}"#.into())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let id = json(&text)["host_id"].as_str().unwrap().to_string();
    let upper = id.to_uppercase();
    let simple = id.replace('-', "");
    for form in [
        id.clone(),
        upper.clone(),
        simple.clone(),
        simple.to_uppercase(),
        format!("urn:uuid:{id}"),
        format!("urn:uuid:{upper}"),
        format!("urn:uuid:{simple}"),
    ] {
        let (status, _, text) = send(
            &app,
            "GET",
            &format!("/api/v1/hosts/{form}"),
            Some(&key),
            None,
        )
        .await;
        assert_eq!(status, 200, "{form}: {text}");
        assert_eq!(json(&text)["host_id"], id.as_str(), "{form}");
    }
    // In bodies too: a reissue token is bound to the stored form.
    let body =
        serde_json::json!({"host_id": format!("urn:uuid:{}", simple.to_uppercase()), "name": "u1"});
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/tokens/reissue",
        Some(&key),
        Some((JSON, body.to_string())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(json(&text)["host_id"], id.as_str());
    // And on the host API: a nonce for an unknown host ID in any form is a 404, not a 400.
    let unknown = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/certificates/renew/nonce",
        None,
        Some((
            JSON,
            serde_json::json!({"host_id": format!("urn:uuid:{unknown}")}).to_string(),
        )),
    )
    .await;
    assert_eq!(status, 404, "{text}");
}

#[tokio::test]
async fn one_trailing_dot_is_dropped_from_host_names_everywhere() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        Some(&key),
        Some((JSON, r#"{"name": "Dot.Example.com."}"#.into())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(json(&text)["primary_name"], "dot.example.com");
    let (status, _, text) = send(
        &app,
        "GET",
        "/api/v1/hosts/dot.example.com.",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // Mappings: added with a dot, decided with or without one.
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/hosts/dot.example.com./mappings",
        Some(&key),
        Some((JSON, r#"{"name": "alias.example.com."}"#.into())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, _, text) = send(
        &app,
        "GET",
        "/api/v1/hosts/dot.example.com",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        json(&text)["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "alias.example.com"),
        "{text}"
    );
    let (status, _, text) = send(
        &app,
        "DELETE",
        "/api/v1/hosts/dot.example.com/mappings/alias.example.com.",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // A reissue token by name with a dot.
    let body = serde_json::json!({"host": "dot.example.com.", "name": "d1"});
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/tokens/reissue",
        Some(&key),
        Some((JSON, body.to_string())),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    // Enrollment.
    let value = app.token_value("enroll", "2").await;
    let (_k, csr) = common::openssl_csr(&app.scratch(), "e", "e.example.com", &[]);
    let (status, body) = app.enroll("e.example.com.", &csr, Some(&value)).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, text) =
        send(&app, "GET", "/api/v1/hosts/e.example.com", Some(&key), None).await;
    assert_eq!(status, 200, "{text}");
    // Exactly one dot: two are a mistake, not the root.
    let (status, _, text) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        Some(&key),
        Some((JSON, r#"{"name": "two.example.com.."}"#.into())),
    )
    .await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn every_page_route_in_the_method_table_is_served() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, pattern) in hostca::web::PAGE_ROUTES {
        let path = pattern
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let r = client
            .request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                app.url(if path.is_empty() { "/" } else { &path }),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        // Served: anything but the router's own answers (no page, or not this method).
        assert!(
            status != 405 && !body.contains("there is no page"),
            "{method} {pattern}: {status}"
        );
    }
}
