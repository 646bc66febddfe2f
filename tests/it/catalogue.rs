//! A catalogue of bad requests against every route that changes something: CSRF missing
//! or foreign, a tampered session cookie, huge bodies, hostile text in every field, path
//! traversal, SQL metacharacters, a viewer trying every change, malformed JSON. Each gets
//! its documented 4xx, never a 500, and changes nothing.

use crate::common;

use common::{element_text, openssl_csr, spawn_app, TestApp};
use diesel::prelude::*;
use hostca::db::schema::*;

/// What the database holds, apart from the audit trail.
fn snapshot(app: &TestApp) -> Vec<String> {
    let mut c = app.conn();
    let count = |n: i64| n.to_string();
    vec![
        count(tokens::table.count().get_result(&mut *c).unwrap()),
        count(
            tokens::table
                .select(diesel::dsl::sum(tokens::uses))
                .first::<Option<i64>>(&mut *c)
                .unwrap()
                .unwrap_or(0),
        ),
        count(certificates::table.count().get_result(&mut *c).unwrap()),
        count(
            certificates::table
                .filter(certificates::revoked_at.is_not_null())
                .count()
                .get_result(&mut *c)
                .unwrap(),
        ),
        count(hosts::table.count().get_result(&mut *c).unwrap()),
        format!(
            "{:?}",
            host_mappings::table
                .select((host_mappings::name, host_mappings::state))
                .order(host_mappings::id)
                .load::<(String, String)>(&mut *c)
                .unwrap()
        ),
        format!(
            "{:?}",
            users::table
                .select((
                    users::username,
                    users::role,
                    users::disabled,
                    users::password_hash
                ))
                .order(users::id)
                .load::<(String, String, bool, String)>(&mut *c)
                .unwrap()
        ),
        count(api_keys::table.count().get_result(&mut *c).unwrap()),
        format!(
            "{:?}",
            settings::table
                .select((
                    settings::security_level,
                    settings::auto_map_host_names,
                    settings::certificate_validity_days,
                    settings::auto_reissue_minutes,
                    settings::audit_retention_days
                ))
                .first::<(String, bool, i32, i32, i32)>(&mut *c)
                .unwrap()
        ),
        format!(
            "{:?}",
            hosts::table
                .select(hosts::auto_reissue_until)
                .load::<Option<chrono::NaiveDateTime>>(&mut *c)
                .unwrap()
        ),
    ]
}

struct World {
    host_id: String,
    serial: String,
    viewer: common::Browser,
}

/// A token, a host with a certificate and a pending mapping, a viewer.
async fn world(app: &TestApp) -> World {
    app.login().await;
    let value = app.token_value("tok", "2").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "w", "w.example.com", &[]);
    let (s, b) = app.enroll("w.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let viewer = app.user(common::Role::Viewer, "viewer").await;
    World {
        host_id: b["host_id"].as_str().unwrap().into(),
        serial: b["serial"].as_str().unwrap().into(),
        viewer,
    }
}

/// Every page route that changes something, with fields that would succeed.
fn changes(w: &World) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let h = &w.host_id;
    vec![
        (
            "/security/tokens".into(),
            vec![
                ("name", "new-token"),
                ("max_uses", "1"),
                ("valid_for", "1d"),
                ("reason", "r"),
            ],
        ),
        ("/security/tokens/tok/show".into(), vec![]),
        ("/security/tokens/tok/delete".into(), vec![]),
        ("/security/tokens/delete".into(), vec![("name", "tok")]),
        ("/security/tokens/cleanup".into(), vec![]),
        (
            format!("/security/certificates/{}/revoke", w.serial),
            vec![("reason", "key_compromise")],
        ),
        (
            "/security/hosts".into(),
            vec![("name", "added.example.com")],
        ),
        (
            format!("/security/hosts/{h}/revoke"),
            vec![("reason", "unspecified")],
        ),
        (
            format!("/security/hosts/{h}/reissue-token"),
            vec![("name", "ri"), ("valid_for", "1h"), ("reason", "r")],
        ),
        (
            format!("/security/hosts/{h}/auto-reissue"),
            vec![("action", "allow")],
        ),
        (
            format!("/security/hosts/{h}/mappings"),
            vec![("name", "alias.example.com")],
        ),
        (
            format!("/security/hosts/{h}/mappings/w.example.com/reject"),
            vec![],
        ),
        (
            "/security/host-mappings/decide".into(),
            vec![("decision", "reject"), ("mapping", "x y")],
        ),
        (
            "/security/settings".into(),
            vec![
                ("security_level", "medium"),
                ("certificate_validity_days", "30"),
                ("auto_reissue_minutes", "10"),
                ("audit_retention_days", "10"),
                ("reason", "r"),
            ],
        ),
        (
            "/admin/users".into(),
            vec![
                ("username", "eve"),
                ("role", "administrator"),
                ("password", "a long password 123"),
            ],
        ),
        (
            "/admin/users/viewer/role".into(),
            vec![("role", "administrator")],
        ),
        ("/admin/users/viewer/disable".into(), vec![]),
        (
            "/admin/users/viewer/password".into(),
            vec![("password", "a long password 123")],
        ),
        (
            "/account/password".into(),
            vec![
                ("current", common::ADMIN_PASSWORD),
                ("new", "a long password 123"),
                ("confirm", "a long password 123"),
            ],
        ),
        ("/account/api-keys".into(), vec![("name", "k")]),
        ("/logout".into(), vec![]),
    ]
}

#[tokio::test]
async fn without_a_valid_csrf_token_nothing_changes() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let before = snapshot(&app);
    let other = app.new_browser();
    let foreign = common::csrf_in(&other.get_html("/login").await).unwrap();
    for (path, fields) in changes(&w) {
        let r = app.post_raw(&path, &fields).await;
        assert_eq!(r.status().as_u16(), 403, "no CSRF: {path}");
        let mut with_foreign = fields.clone();
        with_foreign.push(("csrf_token", &foreign));
        let r = app.post_raw(&path, &with_foreign).await;
        assert_eq!(r.status().as_u16(), 403, "foreign CSRF: {path}");
        let mut empty = fields.clone();
        empty.push(("csrf_token", ""));
        assert_eq!(
            app.post_raw(&path, &empty).await.status().as_u16(),
            403,
            "empty CSRF: {path}"
        );
    }
    assert_eq!(snapshot(&app), before, "nothing changed");
    assert_eq!(
        app.get("/security/tokens").await.status().as_u16(),
        200,
        "still logged in"
    );
}

#[tokio::test]
async fn a_viewer_is_refused_every_change_and_each_refusal_is_audited() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let viewer = &w.viewer;
    let before = snapshot(&app);
    let audited_before: i64 = audit_events::table
        .filter(audit_events::description.like("permission denied%"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    let mut refused = 0;
    for (path, fields) in changes(&w) {
        if path.starts_with("/account/") || path == "/logout" {
            continue; // a viewer's own account is theirs to manage
        }
        let r = viewer.post(&path, &fields).await;
        assert_eq!(r.status().as_u16(), 403, "viewer: {path}");
        refused += 1;
    }
    assert_eq!(snapshot(&app), before, "nothing changed");
    let audited_after: i64 = audit_events::table
        .filter(audit_events::description.like("permission denied%"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert!(
        audited_after - audited_before >= refused - 1,
        "{} of {refused} refusals audited",
        audited_after - audited_before
    );
}

#[tokio::test]
async fn a_tampered_or_missing_session_changes_nothing() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let before = snapshot(&app);
    let csrf = app.csrf().await;
    for (path, mut fields) in changes(&w) {
        fields.push(("csrf_token", &csrf));
        // A cookie that is not one the server issued.
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(app.url(&path))
            .header("cookie", "hostca_session=AAAAtampered%2Fcookie%3D%3D")
            .form(&fields)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        assert!(s == 303 || s == 403, "tampered cookie on {path}: {s}");
        if s == 303 {
            assert!(r.headers()["location"]
                .to_str()
                .unwrap()
                .ends_with("/login"));
        }
    }
    for page in [
        "/security/tokens",
        "/security/settings",
        "/admin/users",
        "/security/audit.csv",
    ] {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url(page))
            .header("cookie", "hostca_session=garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{page}");
    }
    assert_eq!(snapshot(&app), before);
}

#[tokio::test]
async fn hostile_text_in_every_field_gets_a_4xx_or_is_stored_escaped() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let payloads = [
        "<script>alert('x')</script>",
        "' OR '1'='1'; DROP TABLE tokens; --",
        "../../../etc/passwd",
        "名前-ünïcödé-🔐",
        "\u{202e}txt.exe",
        "%00%0d%0aSet-Cookie: x=y",
        "nul\u{0}byte",
        "",
        " ",
    ];
    for (path, fields) in changes(&w) {
        if path == "/logout" || path == "/account/password" {
            continue;
        }
        for (i, _) in fields.iter().enumerate() {
            for p in payloads {
                let mut f = fields.clone();
                f[i].1 = p;
                let r = app.post(&path, &f).await;
                let s = r.status().as_u16();
                assert!(s < 500, "{path} {}={p:?}: {s}", f[i].0);
                let body = r.text().await.unwrap_or_default();
                assert!(
                    !body.contains("<script>alert"),
                    "{path}: unescaped HTML in the answer"
                );
            }
        }
    }
    // Whatever was stored renders escaped everywhere.
    for page in [
        "/security/tokens",
        "/security/hosts",
        "/security/host-mappings?tab=all",
        "/security/audit",
        "/admin/users",
        "/security/certificates",
    ] {
        let html = app.get_html(page).await;
        assert!(!html.contains("<script>alert"), "{page}");
    }
    let tables: i64 = tokens::table.count().get_result(&mut *app.conn()).unwrap();
    assert!(tables >= 0, "the tokens table is still there");
}

#[tokio::test]
async fn path_traversal_and_odd_names_in_addresses_are_404s() {
    let app = spawn_app().await;
    let w = world(&app).await;
    for path in [
        "/security/tokens/..%2F..%2Fetc%2Fpasswd",
        "/security/tokens/%2e%2e",
        "/security/tokens/tok%00",
        "/security/tokens/%3Cscript%3E",
        "/security/certificates/..%2F..",
        "/security/certificates/'%20OR%201=1",
        "/security/hosts/..%2F..%2F",
        "/security/hosts/%27%3B--",
        "/security/audit/1%20OR%201=1",
        "/static/..%2F..%2FCargo.toml",
        "/static/../Cargo.toml",
    ] {
        let r = app.get(path).await;
        let s = r.status().as_u16();
        assert!(s == 404 || s == 400, "{path}: {s}");
        assert!(!r.text().await.unwrap().contains("<script>"), "{path}");
    }
    let before = snapshot(&app);
    for path in [
        "/security/tokens/..%2Ftok/delete",
        "/security/hosts/..%2F/revoke",
        "/security/certificates/..%2F/revoke",
    ] {
        let s = app
            .post(path, &[("reason", "unspecified")])
            .await
            .status()
            .as_u16();
        assert!(s == 404 || s == 400, "{path}: {s}");
    }
    assert_eq!(snapshot(&app), before);
    let _ = w;
}

#[tokio::test]
async fn huge_bodies_are_413_everywhere() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let big = "x".repeat(100 * 1024);
    for (path, _) in changes(&w) {
        let r = app.post(&path, &[("name", big.as_str())]).await;
        assert_eq!(r.status().as_u16(), 413, "{path}");
    }
    let html = app
        .post("/account/api-keys", &[("name", "big")])
        .await
        .text()
        .await
        .unwrap();
    let key = element_text(&html, "api-key-value").unwrap();
    let before = snapshot(&app);
    for path in [
        "/api/v1/certificates",
        "/api/v1/certificates/renew",
        "/api/v1/tokens",
        "/api/v1/hosts",
    ] {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(format!("{{\"csr\": \"{big}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413, "{path}");
    }
    assert_eq!(snapshot(&app), before);
}

#[tokio::test]
async fn the_json_apis_refuse_missing_extra_and_mistyped_fields() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let html = app
        .post("/account/api-keys", &[("name", "cat")])
        .await
        .text()
        .await
        .unwrap();
    let key = element_text(&html, "api-key-value").unwrap();
    let before = snapshot(&app);
    let bodies = [
        "",
        "not json",
        "[]",
        "null",
        "{}",
        "{\"name\": 5}",
        "{\"name\": [\"a\"], \"max_uses\": {}}",
        "{\"reason\": true}",
        "{\"names\": \"tok\"}",
        "{\"hostname\": null, \"csr\": 1}",
        "{\"host_id\": 7, \"csr\": false}",
        "{\"security_level\": 3, \"reason\": []}",
    ];
    let routes = [
        ("POST", "/api/v1/certificates".to_string()),
        ("POST", "/api/v1/certificates/renew".to_string()),
        ("POST", "/api/v1/tokens".to_string()),
        ("POST", "/api/v1/tokens/reissue".to_string()),
        ("POST", "/api/v1/tokens/delete".to_string()),
        ("POST", format!("/api/v1/certificates/{}/revoke", w.serial)),
        ("POST", "/api/v1/hosts".to_string()),
        ("POST", format!("/api/v1/hosts/{}/revoke", w.host_id)),
        ("POST", format!("/api/v1/hosts/{}/mappings", w.host_id)),
        ("PUT", "/api/v1/settings".to_string()),
    ];
    for (method, path) in &routes {
        for body in bodies {
            let r = reqwest::Client::new()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(path),
                )
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            assert!((400..500).contains(&s), "{method} {path} {body}: {s}");
            assert!(
                v["error"].is_string() && v["message"].is_string(),
                "{path} {body}: {v}"
            );
        }
    }
    // Extra fields are ignored where the rest is valid.
    let (s, _) = app
        .post_json_with_key(
            &key,
            "/api/v1/tokens",
            &serde_json::json!({"name": "extra", "colour": "red"}),
        )
        .await;
    assert_eq!(s, 201);
    let after = snapshot(&app);
    assert_ne!(
        after[0], before[0],
        "only the valid request created a token"
    );
    assert_eq!(after[2..], before[2..]);
}
