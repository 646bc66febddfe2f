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
